CREATE TABLE events (
    id bigint NOT NULL,
    happened_on date NOT NULL,
    code text NOT NULL,
    PRIMARY KEY (id, happened_on),
    UNIQUE (code, happened_on)
) PARTITION BY RANGE (happened_on);
CREATE INDEX events_code_idx ON events (code);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_default PARTITION OF events DEFAULT;
