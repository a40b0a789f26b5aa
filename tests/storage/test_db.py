from contextlib import contextmanager

import duckdb
import pytest

from retcore.errors import DatabaseError
from retcore.storage import SCHEMA_VERSION, connect, current_version, migrate, transaction


@contextmanager
def _held_by_a_thread(db, *, read_only: bool):
    """Another thread holds a connection to ``db`` (a writer inserts a row) until the yielded event is set."""
    import threading

    opened, release = threading.Event(), threading.Event()

    def hold():
        with connect(db, read_only=read_only) as con:
            if not read_only:
                con.execute("INSERT INTO ingest_errors (path, reason) VALUES ('x', 'y')")
            opened.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert opened.wait(5)
        yield release
    finally:
        release.set()
        thread.join()

def test_migrate_creates_public_tables_and_is_idempotent(tmp_path):
    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        assert current_version(con) == 0
        assert migrate(con) == SCHEMA_VERSION
        assert migrate(con) == SCHEMA_VERSION
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        versions = con.execute("SELECT count(*) FROM schema_version").fetchone()[0]
    assert {"schema_version", "runs", "images", "predictions", "epochs", "metrics", "ingest_errors"} <= tables
    assert versions == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        migrate(con)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 5])
        with pytest.raises(DatabaseError, match="newer than this retcore"):
            migrate(con)


def test_read_only_missing_database_says_how_to_create_it(tmp_path):
    with pytest.raises(DatabaseError, match="retcore pipeline --demo"):
        with connect(tmp_path / "none.duckdb", read_only=True):
            pass


def test_transaction_rolls_back_on_error(tmp_path):
    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(RuntimeError):
            with transaction(con):
                con.execute("INSERT INTO t VALUES (1)")
                raise RuntimeError("boom")
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_lock_held_by_another_process_times_out_with_clear_error(tmp_path):
    import subprocess
    import sys
    import time

    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        migrate(con)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        with pytest.raises(DatabaseError, match="locked by another process"):
            with connect(db, read_only=True, timeout_s=0.5):
                pass
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    with connect(db, read_only=True) as con:  # released: readable again
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_corrupt_file_is_a_database_error(tmp_path):
    db = tmp_path / "bad.duckdb"
    db.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(DatabaseError, match="cannot open database .*: pass the results database a job wrote"):
        with connect(db):
            pass
    assert duckdb  # module imported for the error types


def test_read_only_and_read_write_threads_of_one_process_take_turns(tmp_path):
    """DuckDB refuses a read-only connection while the same process has a read-write one
    open; connect() waits for it instead (a job's heartbeat thread writes while it reads)."""
    import threading
    import time

    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        migrate(con)
    with _held_by_a_thread(db, read_only=False) as release:
        threading.Timer(0.3, release.set).start()
        t0 = time.monotonic()
        with connect(db, read_only=True, timeout_s=5) as con:
            assert con.execute("SELECT count(*) FROM ingest_errors").fetchone()[0] == 1
        assert time.monotonic() - t0 >= 0.2, "waited for the writer to close"


def test_a_thread_holding_the_other_mode_too_long_gets_a_lock_error(tmp_path):
    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        migrate(con)
    with _held_by_a_thread(db, read_only=True):
        with pytest.raises(DatabaseError, match="locked"):
            with connect(db, timeout_s=0.3):
                pass
    with connect(db) as con:  # free again
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
