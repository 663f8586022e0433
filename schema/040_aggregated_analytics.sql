-- Long-term aggregates, kept seven years. Range-partitioned by year on period_start;
-- the yearly partitions themselves are declared in partitions/aggregated_analytics.yaml.
-- The primary key must include the partition key: PostgreSQL enforces uniqueness per partition.
CREATE TABLE aggregated_analytics (
    id               text NOT NULL DEFAULT gen_random_uuid()::text,
    organization_id  text NOT NULL REFERENCES organizations (id),
    user_role        text NOT NULL,
    period_start     date NOT NULL,
    period_end       date NOT NULL,
    metrics          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, period_start),
    CHECK (period_end > period_start)
) PARTITION BY RANGE (period_start);

CREATE INDEX aggregated_analytics_organization_id_period_start_idx
    ON aggregated_analytics (organization_id, period_start);
