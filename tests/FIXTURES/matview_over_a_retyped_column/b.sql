CREATE TABLE events (id bigint PRIMARY KEY, organization_id text NOT NULL, kind text NOT NULL, score bigint, note text);
CREATE MATERIALIZED VIEW event_counts AS SELECT organization_id, kind, count(*) AS n FROM events GROUP BY organization_id, kind;
CREATE UNIQUE INDEX event_counts_key ON event_counts (organization_id, kind);
COMMENT ON MATERIALIZED VIEW event_counts IS 'per organization and kind';
CREATE VIEW busy_organizations AS SELECT organization_id FROM event_counts WHERE n > 10;
CREATE MATERIALIZED VIEW event_scores AS SELECT organization_id, sum(score) AS total FROM events GROUP BY organization_id;
