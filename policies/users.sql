ALTER TABLE users ENABLE ROW LEVEL SECURITY;
-- FORCE: the table owner is isolated too, so a mistake in the app's connection role cannot leak rows.
ALTER TABLE users FORCE ROW LEVEL SECURITY;

-- missing_ok = true: with no app.current_org_id set, the policy sees nothing rather than erroring.
CREATE POLICY org_isolation ON users
    USING (organization_id = current_setting('app.current_org_id', true))
    WITH CHECK (organization_id = current_setting('app.current_org_id', true));
