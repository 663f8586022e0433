CREATE TABLE docs (id int PRIMARY KEY, org text NOT NULL);
