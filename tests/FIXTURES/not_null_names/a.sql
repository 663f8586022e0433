CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, name text CONSTRAINT people_name_required NOT NULL);
