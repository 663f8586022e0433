"""Stage 6, before the rehearsal: a scratch copy of the target's schema (no data) to rehearse on, made
from the target's own inspection: the statements that build it from an empty database, run in parts.

Not one pg_dump of the target: pg_dump takes a lock on every table it dumps, in one transaction, and
at some thousands of tables (10,000 with their partitions) that is more than a server's lock table
holds on default settings (max_locks_per_transaction 64), which hosted servers do not let users raise.
The copy is checked against the target with our own catalog snapshot (not migra's re-diff, which cannot
see what migra ignores); where the statements do not reproduce the target exactly, the copy falls back
to pg_dump, whose error then names the setting to raise.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from ..config import Config
from ..diff.corrections.privileges import grants, revokes
from ..diff.migra_diff import diff
from ..inspection.migra_view import InspectedDatabase, inspect_database
from ..inspection.snapshot import CatalogSnapshot, take_snapshot
from ..planning.build import WHOLE_SCHEMA_PART
from ..process_memory import give_back_freed
from ..runner import PlanStatementFailed, run_on_scratch, runner_facts
from ..scratch.databases import ScratchDatabase
from ..scratch.layers import LayerStore

log = logging.getLogger(__name__)

LABEL = "the copy of the target"


def copy_target(copy: ScratchDatabase, target_url: str, target_snapshot: CatalogSnapshot, config: Config,
                target_inspection: Callable[[], InspectedDatabase], states: LayerStore | None = None) -> bool:
    """Fill a scratch database with the target's schema (no data), to rehearse on. Independent of the
    declared state, so it can be made while the desired database is being built; `target_inspection()`
    returns the target's inspection (it may wait for it). The target's extensions come first, in their
    schemas: the statements use their types. With `states` (scratch/layers.py), a copy kept by an
    earlier rehearsal that reached the state the target is in now is used instead, when it shows
    exactly the target's snapshot.

    Returns whether the copy was read here and shows exactly `target_snapshot` (made from the
    inspection, or kept): the rehearsal then need not read it again (at thousands of tables a second
    or more). An empty copy, or one made with pg_dump, is not read here."""
    if states is not None and _from_kept_state(copy, target_snapshot, config, states):
        return True
    copy.copy_target_extensions(config)
    present = tuple(s for s in config.scope.schemas if ("schema", s) in target_snapshot.objects)
    copy.create_schemas(present, target_snapshot.of_kind("comment"))
    if holds_only_schemas(target_snapshot):
        if config.privileges:
            copy_grants(copy, target_snapshot, config)
        return False  # nothing in the schemas
    target = target_inspection()
    copy.adopt_default_privileges()  # for what the statements (and then the plan) create in its schemas
    problem = _build_from_inspection(copy, target, config)
    if problem is None:
        return target.snapshot.fingerprint == target_snapshot.fingerprint
    log.info("the copy of the target built from its inspection %s: copying it with pg_dump instead", problem)
    copy.start_over()
    copy.copy_target_extensions(config)
    copy.load_schema_of(target_url, present)
    if config.privileges:
        copy_grants(copy, target_snapshot, config)
    return False


def holds_only_schemas(snapshot: CatalogSnapshot) -> bool:
    """Whether the managed schemas hold nothing (a copy of it is only CREATE SCHEMA)."""
    return all(kind == "schema" or (kind == "comment" and key.startswith("SCHEMA ")) for kind, key in snapshot.objects)


def _from_kept_state(copy: ScratchDatabase, target_snapshot: CatalogSnapshot, config: Config,
                     states: LayerStore) -> bool:
    key = states.state_key(target_snapshot.fingerprint, copy.server.environment)
    if not copy.start_from(states, key):
        return False
    if not copy.differences_from(target_snapshot, config.scope):
        return True
    log.info("a kept copy of the target no longer shows the catalog it was kept with: made again")
    states.forget(key)
    copy.start_over()
    return False


def _build_from_inspection(copy: ScratchDatabase, target: InspectedDatabase, config: Config) -> str | None:
    """Diff an empty database (the copy as it is: extensions and schemas) against the target and run
    the statements there, committed in parts as a plan from an empty schema is (planning/build.py), so
    no transaction locks more than a part's relations. None when the copy is then the target, as our own
    snapshot sees it; else what went wrong (migra cannot write every object: a partition that is
    itself partitioned, say)."""
    empty = inspect_database(copy.url, config.scope, config.timeouts.connect_timeout_s)
    operations = diff(empty, target, current_used_once=True).statements
    del empty
    # Not classified as a plan is (nothing here is live): only cut into parts. Each statement keeps
    # only what the runner reads of its facts: the rest of its parse tree (about 600 bytes a statement)
    # would be held while they run, beside the declared state's load and then its inspection.
    statements = [dataclasses.replace(op, facts=runner_facts(op.facts),
                                      commit_after=op.commit_after or number % WHOLE_SCHEMA_PART == 0)
                  for number, op in enumerate(operations, 1)]
    del operations
    parts = _cut_at_commits(statements)
    del statements
    # The target's view the diff thawed, and the statements' facts, are unreachable now, the view in
    # cycles: freed now, not at some later full collection (at 10,000 tables both were still held,
    # some 200 MB, when the declared state's inspection peaked beside these statements).
    give_back_freed()
    conn = copy.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            # The target's functions are its own reviewed code, valid where they are: not validated
            # again here, where migra may create one before the table its body reads.
            cur.execute("SET check_function_bodies = off")
        first = 1
        while parts:  # each part let go once it ran: the declared state is inspected beside the last ones
            part = parts.pop()
            run_on_scratch(conn, part, LABEL, copy.inert, first=first)
            first += len(part)
            del part
        copy.inert.restore(conn)
        conn.commit()
    except PlanStatementFailed as failed:
        return f"failed ({failed})"
    finally:
        conn.close()
    give_back_freed()
    if config.privileges:
        copy_grants(copy, target.snapshot, config)
    differences = copy.differences_from(target.snapshot, config.scope)
    if not differences:
        return None
    return f"differs from it ({differences[0].describe('copy', 'target')})"


def _cut_at_commits(statements: list) -> list[list]:
    """The statements in parts, each ending at a commit point (or the end): run one after the other,
    they run as the whole would. Last part first, for the caller to pop them in order."""
    parts, part = [], []
    for statement in statements:
        part.append(statement)
        if statement.commit_after:
            parts.append(part)
            part = []
    if part:
        parts.append(part)
    parts.reverse()
    return parts


def copy_grants(copy: ScratchDatabase, target_snapshot: CatalogSnapshot, config: Config) -> None:
    """Grants are managed, so the copy must hold the target's: the statements (and a dump) make none
    (objects there belong to the build role, not the target's owner), so they are made from the
    target's snapshot, as the plan makes grants: what the copy has that the target has not revoked, the
    target's granted, the owner's own as the role that owns the copy's objects."""
    conn = copy.connect(autocommit=False)
    try:
        had, wanted = take_snapshot(conn, config.scope).of_kind("grant"), target_snapshot.of_kind("grant")
        with conn.cursor() as cur:
            for sql in revokes(had, wanted) + grants(had, wanted):
                cur.execute(sql)
        conn.commit()
    finally:
        conn.close()
