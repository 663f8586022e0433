CREATE TABLE notes (id int PRIMARY KEY);
CREATE TYPE mood AS ENUM ('sad', 'it''s fine', 'ok');
CREATE TABLE moods (id int PRIMARY KEY, m mood NOT NULL DEFAULT 'it''s fine');
