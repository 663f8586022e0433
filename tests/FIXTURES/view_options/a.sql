CREATE TABLE secrets (id int PRIMARY KEY, org text);
CREATE VIEW org_secrets AS SELECT id, org FROM secrets;
CREATE VIEW guarded AS SELECT id FROM secrets WHERE org IS NOT NULL;
