CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount int);
-- old rows are not checked: only new and updated ones
ALTER TABLE payments ADD CONSTRAINT payments_amount_positive CHECK (amount > 0) NOT VALID;
ALTER TABLE payments ADD CONSTRAINT payments_account FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;
ALTER TABLE payments ADD CONSTRAINT payments_amount_small CHECK (amount < 1000000);
