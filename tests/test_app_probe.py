"""The app probe (tests/app_probe.py) sees a table lock as a long round, and without one its rounds are short
and its inserts all land."""

import time

import psycopg2

from app_probe import AppProbe

STATEMENTS = ["SELECT count(*) FROM t", "INSERT INTO t (v) VALUES ('r{n}') RETURNING id"]


def test_probe_measures_a_held_lock_and_nothing_without_one(target_url, sql):
    sql(target_url, "CREATE TABLE t (id serial PRIMARY KEY, v text NOT NULL)")

    holder = psycopg2.connect(target_url)
    try:
        with AppProbe(target_url, STATEMENTS, interval=0.05) as locked:
            assert locked.rounds >= 1  # already issuing queries
            with holder.cursor() as cur:
                cur.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            time.sleep(0.5)
            holder.commit()
            time.sleep(0.1)
    finally:
        holder.close()
    assert locked.longest_wait >= 0.4, locked.latencies
    assert not locked.errors

    with AppProbe(target_url, STATEMENTS, interval=0.05) as free:
        time.sleep(0.5)
    assert free.longest_wait < 0.4, free.latencies
    assert free.rounds >= 3 and not free.errors
    assert free.returned[0] and all(isinstance(count, int) for count in free.returned[0])
    stored = {id_: v for id_, v in sql(target_url, "SELECT id, v FROM t")}
    assert len(free.returned[1]) == free.rounds
    assert {stored[id_] for id_ in free.returned[1]} == {f"r{n}" for n in range(free.rounds)}
    assert len(stored) == locked.rounds + free.rounds
