"""Short-lived DuckDB connections with retry on the file lock.

DuckDB lets one process hold a database read-write *or* many hold it
read-only. Jobs therefore never keep a connection while computing: they open,
write one transaction and close. Readers and writers that meet a lock retry
with backoff for ``timeout_s`` seconds before giving up with a
:class:`~retcore.errors.DatabaseError` naming the file and the fix.

Within one process DuckDB shares one database instance between connections of
the same mode and refuses a read-only connection while a read-write one is
open (and vice versa). A job's background heartbeat thread writes while the
job's own thread may be reading, so :func:`connect` waits (up to ``timeout_s``)
until no connection of the other mode to the same file is open in this process.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from retcore.errors import DatabaseError, DatabaseLockedError

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


@dataclass
class _Opened:
    read_only: bool
    threads: Counter = field(default_factory=Counter)


_OPENED: dict[str, _Opened] = {}  # file -> mode and holders of this process's open connections
_OPENED_CHANGED = threading.Condition()


def _claim(key: str, read_only: bool, deadline: float) -> bool:
    """Wait until this process holds no connection of the other mode to ``key``, then register one.

    Returns False (not registered) for a thread that itself holds the other
    mode: it would wait for itself, so DuckDB refuses the connection as before.
    Raises ``TimeoutError`` when another thread keeps the other mode past ``deadline``.
    """
    me = threading.get_ident()
    with _OPENED_CHANGED:
        while True:
            held = _OPENED.get(key)
            if held is None or held.read_only == read_only:
                break
            if held.threads[me]:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(key)
            _OPENED_CHANGED.wait(min(left, 0.5))
        if held is None:
            held = _OPENED[key] = _Opened(read_only)
        held.threads[me] += 1
        return True


def _release(key: str) -> None:
    me = threading.get_ident()
    with _OPENED_CHANGED:
        held = _OPENED.get(key)
        if held is not None:
            held.threads[me] -= 1
            if held.threads[me] <= 0:
                del held.threads[me]
            if not held.threads:
                del _OPENED[key]
        _OPENED_CHANGED.notify_all()


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
    key = str(path.resolve())
    try:
        registered = _claim(key, read_only, deadline)
    except TimeoutError:
        raise DatabaseLockedError(
            f"database {path} is locked by another connection of this process; "
            "retry, or pass another --db"
        ) from None
    try:
        con = _open(path, read_only, deadline)
    except BaseException:
        if registered:
            _release(key)
        raise
    try:
        yield con
    finally:
        con.close()
        if registered:
            _release(key)


def _open(path: Path, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` retried with backoff while the file is locked, until ``deadline``."""
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not is_lock_error(exc):
                raise DatabaseError(f"cannot open database {path}: {str(exc).splitlines()[0].rstrip('!. ')}: pass the results "
                                    "database a job wrote (--db), or a new file name to start one") from exc
            if time.monotonic() >= deadline:
                raise DatabaseLockedError(
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
