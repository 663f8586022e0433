CREATE TABLE c (id int NOT NULL, code text NOT NULL);
CREATE UNIQUE INDEX c_code_idx ON c (code);
