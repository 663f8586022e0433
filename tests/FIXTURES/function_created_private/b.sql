CREATE TABLE notes (id int PRIMARY KEY);
-- created, then not executable by everyone (PostgreSQL's default for a new function)
CREATE FUNCTION secret_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM notes $$;
REVOKE ALL ON FUNCTION secret_count() FROM PUBLIC;
