CREATE FUNCTION next_code() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'T-' || floor(random() * 1000)::int $$;
CREATE TABLE tickets (id int PRIMARY KEY, code text DEFAULT next_code());
