CREATE TABLE tickets (id int PRIMARY KEY, code text);
