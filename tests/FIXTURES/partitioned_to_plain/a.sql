CREATE TABLE visits (id bigint NOT NULL, day date NOT NULL, page text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE visits_2025 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE visits_2026 PARTITION OF visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO visits VALUES (1, '2025-03-01', '/a'), (2, '2026-03-01', '/b');
CREATE VIEW daily_visits AS SELECT day, count(*) AS n FROM visits GROUP BY day;
