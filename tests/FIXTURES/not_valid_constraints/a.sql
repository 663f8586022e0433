CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount int);
