"""Short-lived DuckDB connections with retry on the file lock.

DuckDB lets one process hold a database read-write *or* many hold it
read-only. Jobs therefore never keep a connection while computing: they open,
write one transaction and close. Readers and writers that meet a lock retry
with backoff for ``timeout_s`` seconds before giving up with a
:class:`~retcore.errors.DatabaseError` naming the file and the fix.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from retcore.errors import DatabaseError

__all__ = ["DEFAULT_DB", "connect", "is_lock_error", "resolve_db_path", "transaction"]

DEFAULT_DB = "results.duckdb"


def resolve_db_path(db: str | os.PathLike[str] | None = None) -> Path:
    """Return the database path: ``db``, else ``$RETCORE_DB``, else ``results.duckdb``."""
    return Path(db or os.environ.get("RETCORE_DB") or DEFAULT_DB).expanduser()


def is_lock_error(exc: BaseException) -> bool:
    """True when ``exc`` is DuckDB refusing a file another process holds."""
    text = str(exc).lower()
    return isinstance(exc, (duckdb.IOException, duckdb.ConnectionException)) and (
        "lock" in text or "conflicting" in text or "already open" in text
    )


@contextmanager
def connect(
    db: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    timeout_s: float = 30.0,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``db`` (see :func:`resolve_db_path`), yield the connection, close it.

    Retries while another process holds the lock. A read-only open of a missing
    file raises ``DatabaseError`` telling the user how to create one.
    """
    path = resolve_db_path(db)
    if read_only and not path.exists():
        raise DatabaseError(
            f"database {path} does not exist; create it with `retcore pipeline --demo` "
            "or run a job with --db pointing at it"
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not is_lock_error(exc):
                raise DatabaseError(f"cannot open database {path}: {exc}".splitlines()[0]) from exc
            if time.monotonic() >= deadline:
                raise DatabaseError(
                    f"database {path} is locked by another process (a job is writing); "
                    "wait for it to finish or pass another --db"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 1.6, 1.0)
        except duckdb.Error as exc:
            raise DatabaseError(
                f"cannot open database {path}: {str(exc).splitlines()[0]}; "
                "is it a DuckDB 2.x file? move it aside and rerun the job"
            ) from exc
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: all its writes land, or none do."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
