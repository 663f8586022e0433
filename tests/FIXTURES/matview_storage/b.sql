CREATE TABLE t (id int PRIMARY KEY, v int);
CREATE MATERIALIZED VIEW mv WITH (fillfactor = 70, autovacuum_enabled = false) AS SELECT id, v FROM t;
CREATE MATERIALIZED VIEW mv_reset AS SELECT id FROM t;
