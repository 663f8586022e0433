CREATE TABLE learner_analytics (
    id               text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    user_id          text NOT NULL REFERENCES users (id),
    role_id          text NOT NULL,
    user_role        text NOT NULL,
    organization_id  text NOT NULL REFERENCES organizations (id),
    data             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX learner_analytics_user_id_role_id_idx ON learner_analytics (user_id, role_id);
CREATE INDEX learner_analytics_organization_id_idx ON learner_analytics (organization_id);
