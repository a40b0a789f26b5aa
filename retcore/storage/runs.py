"""The ``runs`` table: one row per job invocation, with status and live progress.

A run is inserted as ``running`` and ends ``succeeded`` or ``failed``. A job
killed without a chance to say so leaves ``running`` with a stale heartbeat;
:func:`mark_stale_runs` (called when any job starts) turns those into
``failed`` so no killed run is ever reported as finished.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retcore.storage.db import connect, transaction
from retcore.storage.migrations import migrate

__all__ = [
    "STALE_AFTER_S",
    "RunRecorder",
    "mark_stale_runs",
    "new_run_id",
    "open_db",
    "record_run",
]

STALE_AFTER_S = 120.0


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_run_id(job: str) -> str:
    """A readable, unique run id such as ``finetune-20261125-183000-a1b2``."""
    return f"{job}-{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def open_db(db: str | os.PathLike[str] | None) -> Path:
    """Create/migrate the database at ``db`` and return its path (jobs call this first)."""
    with connect(db) as con:
        migrate(con)
        path = Path(con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0])
    return path


def mark_stale_runs(db: str | os.PathLike[str] | None, *, stale_after_s: float = STALE_AFTER_S) -> int:
    """Mark ``running`` runs whose heartbeat is older than ``stale_after_s`` as failed."""
    with connect(db) as con, transaction(con):
        rows = con.execute(
            "UPDATE runs SET status = 'failed', finished_at = current_timestamp, "
            "error = coalesce(error, 'interrupted: no heartbeat (process killed?)') "
            "WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < "
            "current_timestamp - to_seconds(?) RETURNING run_id",
            [stale_after_s],
        ).fetchall()
    return len(rows)


@dataclass
class RunRecorder:
    """Handle of a running job: progress updates and the final status.

    Progress writes are throttled to one every ``min_interval_s`` seconds so a
    tight loop costs nothing; each write is its own short transaction.
    """

    db: Path
    run_id: str
    min_interval_s: float = 2.0
    _last: float = field(default=0.0, repr=False)

    def progress(self, fraction: float, note: str = "", *, force: bool = False) -> None:
        """Record progress in [0, 1] with a short note (throttled unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        with connect(self.db) as con:
            con.execute(
                "UPDATE runs SET progress = ?, progress_note = ?, heartbeat_at = ? WHERE run_id = ?",
                [float(min(max(fraction, 0.0), 1.0)), note, _now(), self.run_id],
            )

    def update(self, **columns: Any) -> None:
        """Set other ``runs`` columns (e.g. ``checkpoint``, ``dataset_id``)."""
        if not columns:
            return
        names = ", ".join(f"{name} = ?" for name in columns)
        values = [json.dumps(v) if isinstance(v, dict) else v for v in columns.values()]
        with connect(self.db) as con:
            con.execute(f"UPDATE runs SET {names} WHERE run_id = ?", [*values, self.run_id])


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("retcore", "torch", "timm", "numpy", "duckdb", "scikit-learn", "streamlit"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _code_version() -> str:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return version("retcore")


@contextmanager
def record_run(
    db: str | os.PathLike[str] | None,
    job: str,
    *,
    config: dict[str, Any],
    command: str = "",
    run_id: str | None = None,
    parent_run_id: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    out_dir: str | None = None,
) -> Iterator[RunRecorder]:
    """Insert a ``running`` row, yield a :class:`RunRecorder`, then mark the outcome.

    Any exception (including Ctrl-C) marks the run ``failed`` with a one-line
    error and is re-raised. An existing ``run_id`` (resume) is reset to running.
    """
    path = open_db(db)
    mark_stale_runs(path)
    run_id = run_id or new_run_id(job)
    now = _now()
    with connect(path) as con, transaction(con):
        exists = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
        if exists:
            con.execute(
                "UPDATE runs SET status = 'running', heartbeat_at = ?, finished_at = NULL, "
                "error = NULL, command = ? WHERE run_id = ?",
                [now, command, run_id],
            )
        else:
            con.execute(
                "INSERT INTO runs (run_id, job, status, started_at, heartbeat_at, progress, "
                "parent_run_id, config, command, model, code_version, package_versions, seed, out_dir) "
                "VALUES (?, ?, 'running', ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, job, now, now, parent_run_id, json.dumps(config, default=str), command,
                 model, _code_version(), json.dumps(_package_versions()), seed, out_dir],
            )
    recorder = RunRecorder(path, run_id)
    try:
        yield recorder
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        with connect(path) as con:
            con.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, heartbeat_at = ?, error = ? "
                "WHERE run_id = ?",
                [_now(), _now(), message, run_id],
            )
        raise
    with connect(path) as con:
        con.execute(
            "UPDATE runs SET status = 'succeeded', finished_at = ?, heartbeat_at = ?, progress = 1 "
            "WHERE run_id = ?",
            [_now(), _now(), run_id],
        )
