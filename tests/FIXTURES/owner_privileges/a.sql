CREATE TABLE ledger (id bigint PRIMARY KEY, amount numeric);
CREATE TABLE journal (id bigint PRIMARY KEY);
REVOKE ALL ON journal FROM CURRENT_USER;
CREATE FUNCTION balance() RETURNS numeric LANGUAGE sql AS $$ SELECT 0::numeric $$;
