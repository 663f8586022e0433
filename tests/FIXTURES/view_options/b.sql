CREATE TABLE secrets (id int PRIMARY KEY, org text);
CREATE VIEW org_secrets WITH (security_invoker = true) AS SELECT id, org FROM secrets;
CREATE VIEW guarded WITH (security_barrier = true) AS SELECT id FROM secrets WHERE org IS NOT NULL;
