CREATE TABLE notes (id int PRIMARY KEY);
-- created with a MINVALUE above 1: a new sequence starts where declared
CREATE SEQUENCE ticket_numbers MINVALUE 1000 START WITH 1000;
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY (START WITH 500 MINVALUE 500) PRIMARY KEY, note text);
