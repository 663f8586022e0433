CREATE EXTENSION IF NOT EXISTS hstore;
CREATE TABLE profiles (id int PRIMARY KEY, attrs hstore);
CREATE FUNCTION attr(p profiles, k text) RETURNS text LANGUAGE sql AS $$ SELECT p.attrs -> k $$;
