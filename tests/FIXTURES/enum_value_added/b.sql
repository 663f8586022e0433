CREATE TYPE mood AS ENUM ('sad', 'ok', 'it''s great');
CREATE TABLE people (id int PRIMARY KEY, feeling mood NOT NULL DEFAULT 'it''s great');
CREATE FUNCTION is_happy(m mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT m = 'it''s great' $$;
INSERT INTO people VALUES (1, 'sad');
