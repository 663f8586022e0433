CREATE TABLE scores (org text NOT NULL, role text NOT NULL, points numeric NOT NULL);
CREATE MATERIALIZED VIEW score_stats AS
    SELECT org, role, avg(points) AS avg_points FROM scores GROUP BY org, role;
CREATE UNIQUE INDEX score_stats_org_role_idx ON score_stats (org, role);
CREATE INDEX score_stats_avg_idx ON score_stats (avg_points);
COMMENT ON MATERIALIZED VIEW score_stats IS 'per org and role';
CREATE VIEW top_scores AS SELECT * FROM score_stats WHERE avg_points > 10;
