CREATE TABLE users (
    id               text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    email            text NOT NULL UNIQUE,
    organization_id  text NOT NULL REFERENCES organizations (id),
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_organization_id_idx ON users (organization_id);
