"""ignore: in reconcile.yaml: objects in the managed schemas (and everything that belongs to them) that
are never compared, planned or dropped, nor reported by drift; stated in every not_compared list."""

import json

import pytest

from reconcile_engine.diff.migra_diff import diff
from reconcile_engine.inspection.migra_view import inspect_database
from reconcile_engine.inspection.snapshot import Scope, not_compared, read_snapshot

AS_OF = "2026-06-01"
GLOBS = ("public._prisma_migrations", "public.*_backup")

# What another tool keeps beside the declared schema: Prisma's migration table (a key, an index, a
# comment, a sequence of its own) and a backup copy of a declared table.
FOREIGN_OBJECTS = """
    CREATE TABLE _prisma_migrations (
        id varchar(36) PRIMARY KEY,
        checksum varchar(64) NOT NULL,
        migration_name varchar(255) NOT NULL,
        applied_steps_count serial
    );
    CREATE INDEX _prisma_migrations_name_idx ON _prisma_migrations (migration_name);
    COMMENT ON TABLE _prisma_migrations IS 'managed by prisma migrate';
    COMMENT ON COLUMN _prisma_migrations.checksum IS 'sha256';
    INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ('1', 'x', 'init');
    CREATE TABLE audit_backup (id int PRIMARY KEY, note text);
"""


def with_ignore(project, *globs):
    config = project / "reconcile.yaml"
    config.write_text(config.read_text() + f"\nignore: {json.dumps(list(globs))}\n")


def plan_json(cli, *extra):
    code, out, err = cli("plan", "--as-of", AS_OF, "--dry-run", "--format", "json", *extra)
    assert code == 0, err
    return json.loads(out)


def drift_json(cli):
    code, out, err = cli("drift", "--as-of", AS_OF, "--format", "json")
    assert code in (0, 2), err
    return code, json.loads(out)


# --- the inspection stage: both views of a database leave the same objects out ---------------------

SHARED = """
    CREATE TABLE users (id int PRIMARY KEY, org text NOT NULL);
    ALTER TABLE users ENABLE ROW LEVEL SECURITY;
    CREATE POLICY by_org ON users USING (org = current_setting('app.org', true));
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
"""

EXTRA = """
    CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, steps serial, name text);
    CREATE INDEX _prisma_migrations_name_idx ON _prisma_migrations (name);
    COMMENT ON TABLE _prisma_migrations IS 'prisma';
    COMMENT ON INDEX _prisma_migrations_name_idx IS 'by name';
    ALTER TABLE _prisma_migrations ENABLE ROW LEVEL SECURITY;
    ALTER TABLE _prisma_migrations FORCE ROW LEVEL SECURITY;
    CREATE POLICY everyone ON _prisma_migrations USING (true);
    CREATE TRIGGER touch BEFORE UPDATE ON _prisma_migrations FOR EACH ROW EXECUTE FUNCTION touch();
    GRANT SELECT ON _prisma_migrations TO PUBLIC;
    CREATE TABLE events_backup (at date NOT NULL, id int, UNIQUE (at, id)) PARTITION BY RANGE (at);
    CREATE TABLE events_2024 PARTITION OF events_backup FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    CREATE VIEW users_backup AS SELECT id FROM users;
    CREATE FUNCTION purge_backup() RETURNS int LANGUAGE sql AS 'SELECT 1';
    CREATE TYPE mood_backup AS ENUM ('sad', 'happy');
    CREATE TABLE "odd.name" ("we""ird" int PRIMARY KEY);
    CREATE TABLE "we""ird" (id int);
"""
UNIT_GLOBS = GLOBS + ("public.odd.name", 'public.we"ird')


def test_the_snapshot_and_migras_view_leave_out_what_ignore_matches(new_database, sql):
    plain, extra = new_database(), new_database()
    sql(plain, SHARED)
    sql(extra, SHARED + EXTRA)
    everything = Scope(("public",), privileges=True)
    ignoring = Scope(("public",), privileges=True, ignore=UNIT_GLOBS)

    seen = read_snapshot(extra, everything)
    assert ("table", "public.events_2024") in seen.objects and ("sequence", "public._prisma_migrations_steps_seq") \
        in seen.objects and ("table", 'public.we"ird') in seen.objects

    kept = read_snapshot(extra, ignoring)
    # Everything that belongs to an ignored object went with it: columns, keys, indexes, comments, the
    # RLS flags and policy, the trigger, the grant, the owned sequence, a partition not named by the glob.
    assert kept.fingerprint == read_snapshot(plain, ignoring).fingerprint == read_snapshot(plain, everything).fingerprint
    assert not read_snapshot(plain, everything).differences(kept)
    leftovers = [key for kind, key in kept.objects if "prisma" in key or "backup" in key or "2024" in key
                 or "odd" in key or "ird" in key]
    assert leftovers == []
    for name, values in kept.facts.items():
        assert not [key for key in values if "prisma" in key or "backup" in key or "2024" in key], name
    assert {"public._prisma_migrations", "public._prisma_migrations_steps_seq", "public.events_2024",
            "public.events_2024_at_id_key", "public.odd.name", 'public.we"ird'} <= kept.ignored_relations

    # migra's view of the same database agrees: nothing to do against the database without them ...
    assert diff(inspect_database(extra, ignoring), inspect_database(plain, ignoring)).statements == ()
    # ... while without ignore it drops every one of them
    statements = " ".join(s.sql for s in diff(inspect_database(extra, everything),
                                             inspect_database(plain, everything)).statements)
    for dropped in ("_prisma_migrations", "events_backup", "users_backup", "purge_backup", "mood_backup",
                    '"odd.name"', '"we""ird"'):
        assert dropped in statements


def test_ignore_is_named_in_not_compared():
    assert not any("ignore" in item for item in not_compared(Scope(("public",))))
    [line] = [item for item in not_compared(Scope(("public",), ignore=GLOBS)) if "ignore" in item]
    assert line.startswith("objects matching ignore: public._prisma_migrations, public.*_backup")


# --- through the command line -----------------------------------------------------------------------

def test_without_ignore_the_foreign_objects_are_planned_for_removal(cli, sql, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, FOREIGN_OBJECTS)

    summaries = [s["summary"] for s in plan_json(cli)["statements"]]
    assert any(s.startswith("drop table public._prisma_migrations") for s in summaries)
    assert any(s.startswith("drop table public.audit_backup") for s in summaries)
    assert drift_json(cli)[0] == 2


def test_ignored_objects_are_never_compared_planned_or_dropped(cli, project, sql, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    assert drift_json(cli)[1]["declared_state"] == "cached"
    sql(target_url, FOREIGN_OBJECTS)
    with_ignore(project, *GLOBS)

    code, report = drift_json(cli)
    assert code == 0 and report["in_sync"] and report["differences"] == [] and report["fix_sql"] == []
    assert not report["changed_outside_reconcile"]  # the ignored objects are not in the fingerprint either
    assert report["declared_state"] == "built"  # the ignore globs are part of the cache key
    assert any(item.startswith("objects matching ignore: public._prisma_migrations, public.*_backup")
               for item in report["not_compared"])
    code, out, err = cli("plan", "--as-of", AS_OF, "--dry-run", "--detailed-exitcode", "--no-cache")
    assert code == 0 and "No changes" in out, err

    # What another tool does to its own objects is none of drift's business.
    sql(target_url, "ALTER TABLE _prisma_migrations ADD COLUMN rolled_back_at timestamptz; "
                    "DROP INDEX _prisma_migrations_name_idx; ALTER TABLE audit_backup DROP COLUMN note")
    code, report = drift_json(cli)
    assert code == 0 and report["declared_state"] == "cached" and not report["changed_outside_reconcile"]
    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 0 and "In sync" in out


def test_a_first_deploy_beside_ignored_objects_keeps_them_and_their_rows(cli, project, sql, target_url):
    sql(target_url, FOREIGN_OBJECTS)
    with_ignore(project, *GLOBS)

    code, out, err = cli("plan", "--as-of", AS_OF, "--format", "json")
    assert code == 0, err
    planned = json.loads(out)
    assert planned["statements"] and not [s for s in planned["statements"]
                                          if "_prisma_migrations" in s["sql"] or "audit_backup" in s["sql"]]
    assert any(item.startswith("objects matching ignore: public._prisma_migrations, public.*_backup")
               for item in planned["not_compared"])
    assert "objects matching ignore: public._prisma_migrations" in (project / planned["file"]).read_text()
    assert cli("apply")[0] == 0
    assert sql(target_url, "SELECT count(*) FROM _prisma_migrations")[0][0] == 1
    assert drift_json(cli)[0] == 0


def test_a_declared_object_matching_ignore_is_ignored_on_both_sides(cli, project, sql, target_url):
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    with_ignore(project, "public.users")
    sql(target_url, "ALTER TABLE users ADD COLUMN nickname text")

    code, report = drift_json(cli)
    assert code == 0 and report["in_sync"]
    code, out, _ = cli("plan", "--as-of", AS_OF, "--dry-run")
    assert code == 0 and "No changes" in out


def test_a_glob_that_ignores_everything_is_allowed_but_never_silent(cli, project, sql, target_url):
    """'*.*' ignores every object of the managed schemas: allowed, but drift and plan name it, in sync too."""
    glob = "*.*"
    assert cli("plan", "--as-of", AS_OF)[0] == 0 and cli("apply")[0] == 0
    sql(target_url, "CREATE TABLE sneaky (id int)")
    with_ignore(project, glob)

    code, report = drift_json(cli)
    assert report["ignore"] == [glob]
    assert any(item.startswith(f"objects matching ignore: {glob}") for item in report["not_compared"])
    summaries = [s["summary"] for s in plan_json(cli)["statements"]]
    assert code == 0 and report["differences"] == [] and summaries == []
    code, out, _ = cli("drift", "--as-of", AS_OF)
    assert code == 0 and out.startswith("In sync") and f"objects matching {glob}" in out
    code, out, _ = cli("plan", "--as-of", AS_OF, "--dry-run")
    assert code == 0 and "No changes" in out and f"objects matching {glob}" in out


@pytest.mark.parametrize("glob", ["pg_catalog.*", "auth.users", "Public.users"])
def test_a_glob_outside_the_managed_schemas_is_refused_as_a_typo(cli, project, sql, target_url, glob):
    """A glob on a schema that is not managed would ignore nothing: refused, naming it, nothing done."""
    sql(target_url, "CREATE TABLE sneaky (id int)")
    with_ignore(project, glob)
    code, out, err = cli("drift", "--as-of", AS_OF)
    assert code == 1 and f"ignore[1]: {glob!r} is in no managed schema (public)" in err
    assert sql(target_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'sneaky'") == [(1,)]
