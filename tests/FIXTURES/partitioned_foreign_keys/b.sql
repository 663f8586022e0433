CREATE TABLE orgs (id text PRIMARY KEY);
CREATE TABLE facts (
    id bigint NOT NULL,
    day date NOT NULL,
    org_id text NOT NULL REFERENCES orgs (id),
    PRIMARY KEY (id, day),
    CHECK (day >= '2000-01-01')
) PARTITION BY RANGE (day);
CREATE TABLE facts_2025 PARTITION OF facts FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE facts_2026 PARTITION OF facts FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE notes (
    id bigint PRIMARY KEY,
    fact_id bigint NOT NULL,
    fact_day date NOT NULL,
    FOREIGN KEY (fact_id, fact_day) REFERENCES facts (id, day)
);
