CREATE TABLE base (id int PRIMARY KEY);
CREATE FUNCTION zz_rate(x int) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT x * 1.5 $$;
CREATE TABLE zz_orders (id int PRIMARY KEY);
CREATE TABLE aa_priced (id int PRIMARY KEY REFERENCES zz_orders(id), price numeric DEFAULT zz_rate(2) CHECK (zz_rate(1) > 0));
CREATE VIEW zz_view AS SELECT id, zz_rate(id) AS r FROM zz_orders;
CREATE VIEW aa_view AS SELECT * FROM zz_view;
CREATE FUNCTION aa_total() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT count(*) FROM zz_orders; END;
CREATE TABLE aa_typed (id int, r zz_orders);
