CREATE TABLE events (id bigint NOT NULL, day date NOT NULL, region text NOT NULL, PRIMARY KEY (id, day, region))
    PARTITION BY RANGE (day);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
