CREATE TABLE contacts (id int NOT NULL, name text, email text);
-- inherits every column: none of them its own
CREATE TABLE customers (plan text) INHERITS (contacts);
-- declares name itself too: inherited and its own
CREATE TABLE suppliers (name text, terms int) INHERITS (contacts);
