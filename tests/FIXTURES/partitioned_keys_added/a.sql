CREATE TABLE events (
    id bigint NOT NULL,
    happened_on date NOT NULL,
    code text NOT NULL
) PARTITION BY RANGE (happened_on);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
