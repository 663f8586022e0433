CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE people (id int PRIMARY KEY, m mood);
CREATE TYPE unused AS ENUM ('x');
