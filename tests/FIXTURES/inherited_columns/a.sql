CREATE TABLE contacts (id int NOT NULL, name text, email text);
