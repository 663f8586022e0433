CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL);
CREATE TABLE invoices (id int PRIMARY KEY, account_code text);
