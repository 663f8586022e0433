CREATE TABLE prices (id int PRIMARY KEY, p int, q int);
