CREATE FUNCTION rate(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$;
CREATE FUNCTION doubled(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT rate(x) $$;
CREATE TABLE prices (id int PRIMARY KEY, p int DEFAULT rate(1), q int CHECK (rate(q) > 0));
CREATE VIEW rated AS SELECT id, rate(p) AS r FROM prices;
CREATE INDEX prices_rate ON prices (rate(p));
