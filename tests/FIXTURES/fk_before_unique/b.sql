CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL, CONSTRAINT accounts_code_key UNIQUE (code));
CREATE TABLE invoices (id int PRIMARY KEY, account_code text REFERENCES accounts(code));
CREATE UNIQUE INDEX accounts_id_code ON accounts (id, code);
CREATE TABLE lines (invoice int, account int, code text, FOREIGN KEY (account, code) REFERENCES accounts (id, code));
