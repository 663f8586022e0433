-- Tenants. Every other table carries organization_id and is isolated by RLS (policies/).
CREATE TABLE organizations (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
