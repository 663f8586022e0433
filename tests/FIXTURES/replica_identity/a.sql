CREATE TABLE events (id int PRIMARY KEY, body text);
CREATE TABLE keyed (id int NOT NULL, code text NOT NULL);
CREATE UNIQUE INDEX keyed_code_key ON keyed (code);
CREATE TABLE quiet (id int PRIMARY KEY);
ALTER TABLE quiet REPLICA IDENTITY NOTHING;
CREATE TABLE measures (id int NOT NULL, day date NOT NULL, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE measures_2026 PARTITION OF measures FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
