-- Per-organization, per-role comparison figures for the analytics dashboard.
-- A materialized view does not apply RLS: see policies/ for how it is kept from the app role.
CREATE MATERIALIZED VIEW mv_comparison_aggregates AS
SELECT
    organization_id,
    user_role,
    count(*)                                                          AS learners,
    avg((data ->> 'skillsAcquired')::numeric)                         AS avg_skills,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY (data ->> 'skillsAcquired')::numeric) AS p50_skills
FROM learner_analytics
GROUP BY organization_id, user_role;

-- Unique, so that REFRESH MATERIALIZED VIEW CONCURRENTLY works.
CREATE UNIQUE INDEX mv_comparison_aggregates_org_role_idx
    ON mv_comparison_aggregates (organization_id, user_role);
