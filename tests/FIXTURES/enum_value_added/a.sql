CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE people (id int PRIMARY KEY, feeling mood NOT NULL DEFAULT 'ok');
CREATE FUNCTION is_happy(m mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT m = 'ok' $$;
INSERT INTO people VALUES (1, 'sad');
