CREATE TABLE docs (id int PRIMARY KEY, body text, tags text[], score int);
ALTER TABLE docs ALTER COLUMN score SET STATISTICS 200;
ALTER TABLE docs ALTER COLUMN tags SET STORAGE MAIN;
CREATE TABLE events (id int, kind text) PARTITION BY LIST (kind);
CREATE TABLE events_a PARTITION OF events FOR VALUES IN ('a');
