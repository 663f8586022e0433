-- PostgreSQL 18 names NOT NULL constraints: a declared name is part of the schema
CREATE TABLE people (id int PRIMARY KEY, email text CONSTRAINT people_email_required NOT NULL,
                     name text NOT NULL, nick text CONSTRAINT people_nick_required NOT NULL);
CREATE TABLE pets (id int PRIMARY KEY, name text CONSTRAINT pets_name_required NOT NULL);
