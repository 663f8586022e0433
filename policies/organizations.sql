ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;

-- An organization sees only its own row.
CREATE POLICY org_isolation ON organizations
    USING (id = current_setting('app.current_org_id', true))
    WITH CHECK (id = current_setting('app.current_org_id', true));
