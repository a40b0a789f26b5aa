"""Run lifecycle: :func:`record_run` inserts a run, keeps it alive and records its outcome."""
from __future__ import annotations

import json
import os
import secrets
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from retcore.errors import DatabaseError, DatabaseLockedError, RetcoreError, Terminated
from retcore.storage.db import connect, transaction
from retcore.storage.migrations import migrate
from retcore.storage.runs._common import _RUNS_WRITE, _now
from retcore.storage.runs.logs import _append_log, _start_log, results_root
from retcore.storage.runs.resume import interrupted_error
from retcore.storage.runs.status import _Heartbeat, _stale_after, live_status, mark_stale_runs

__all__ = ["RunRecorder", "new_run_id", "open_db", "record_run"]


def new_run_id(job: str) -> str:
    """A readable, unique run id such as ``finetune-20261125-183000-a1b2``."""
    return f"{job}-{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def open_db(db: str | os.PathLike[str] | None, *, must_exist: bool = False) -> Path:
    """Create/migrate the database at ``db`` and return its path (jobs call this first).

    ``must_exist``: for jobs that read earlier runs (predict, explain, sanity, merge, relocate,
    summarize) a missing file is an error naming it, not a new empty database left behind.
    """
    if must_exist:
        from retcore.storage.db import resolve_db_path

        path = resolve_db_path(db)
        if not path.exists():
            raise DatabaseError(
                f"database {path} does not exist: pass the --db your fine-tuning run wrote to "
                "(`retcore finetune` or `retcore pipeline` creates one)"
            )
    with connect(db) as con:
        migrate(con)
        path = Path(con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0])
    return path


@dataclass
class RunRecorder:
    """Handle of a running job: progress updates and the final status.

    Progress writes are throttled to one every ``min_interval_s`` seconds so a
    tight loop costs nothing; each write is its own short transaction. The
    heartbeat is also kept fresh by :func:`record_run`'s background thread.
    """

    db: Path
    run_id: str
    min_interval_s: float = 2.0
    log_path: Path | None = None
    _last: float = field(default=0.0, repr=False)

    def progress(self, fraction: float, note: str = "", *, force: bool = False) -> None:
        """Record progress in [0, 1] with a short note (throttled unless ``force``).

        Progress is a courtesy to whoever watches: while another process holds the database (a
        long read-write session, another job's transaction) an unforced update waits at most
        ``min_interval_s`` and is then skipped, so the job goes on; results and the final status
        are written with the full wait of :func:`~retcore.storage.db.connect`.
        """
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        try:
            with _RUNS_WRITE, connect(self.db, timeout_s=30.0 if force else self.min_interval_s) as con:
                con.execute(
                    "UPDATE runs SET progress = ?, progress_note = ?, heartbeat_at = ? WHERE run_id = ?",
                    [float(min(max(fraction, 0.0), 1.0)), note, _now(), self.run_id],
                )
        except DatabaseLockedError:
            if force:
                raise

    def update(self, **columns: Any) -> None:
        """Set other ``runs`` columns (e.g. ``checkpoint``, ``dataset_id``)."""
        if not columns:
            return
        names = ", ".join(f"{name} = ?" for name in columns)
        values = [json.dumps(v) if isinstance(v, dict) else v for v in columns.values()]
        with _RUNS_WRITE, connect(self.db) as con:
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

    root = Path(__file__).resolve().parents[3]
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


def _finish(path: Path, run_id: str, status: str, error: str | None) -> None:
    now = _now()
    with _RUNS_WRITE, connect(path) as con:
        if status == "succeeded":
            con.execute("UPDATE runs SET status = 'succeeded', finished_at = ?, heartbeat_at = ?, progress = 1, "
                        "error = NULL WHERE run_id = ?", [now, now, run_id])
        else:
            con.execute("UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ?, error = ? WHERE run_id = ?",
                        [status, now, now, error, run_id])


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
    results: str | os.PathLike[str] | None = None,
) -> Iterator[RunRecorder]:
    """Insert a ``running`` row, keep its heartbeat fresh, yield a :class:`RunRecorder`, mark the outcome.

    Parameters:
        db: the database (created and migrated if needed).
        job: ``runs.job`` (``finetune``, ``predict``, ``explain``, ...).
        config, command, parent_run_id, model, seed, out_dir: stored in the row.
        run_id: an existing id resumes that run (reset to ``running``); a run
            that is still alive (fresh heartbeat) is refused.
        results: the results folder for the log (``<results>/logs/<run_id>.log``);
            default: see :func:`results_root`.

    Ctrl-C marks the run ``interrupted``, any other exception ``failed``; both
    keep a one-line ``error`` and write the full traceback to the log, then
    re-raise (with ``retcore_log_path`` and ``retcore_status``, the one-line
    error, set on the exception when it allows).
    Before starting, runs left ``running`` by killed jobs are marked ``interrupted``.
    """
    path = open_db(db)
    mark_stale_runs(path)
    run_id = run_id or new_run_id(job)
    now = _now()
    with _RUNS_WRITE, connect(path) as con, transaction(con):
        existing = con.execute("SELECT status, heartbeat_at, started_at FROM runs WHERE run_id = ?",
                               [run_id]).fetchone()
        parent_out = None
        if parent_run_id and results is None and not out_dir:
            row = con.execute("SELECT out_dir FROM runs WHERE run_id = ?", [parent_run_id]).fetchone()
            parent_out = row[0] if row else None
        if existing is not None and live_status(*existing, now=now) == "running":
            seen = existing[1] or existing[2]
            stale = seen + timedelta(seconds=_stale_after(None))
            raise RetcoreError(f"run {run_id} is still running (heartbeat at {seen:%H:%M:%S} UTC): wait for it "
                               "to finish, or stop its process; if it was killed (kill -9, a crash), its "
                               f"heartbeat goes stale at {stale:%H:%M:%S} UTC, then run this again")
        root = Path(results).expanduser().resolve() if results is not None else \
            results_root(path, out_dir, parent_out)
        log = _start_log(root, run_id, job, command, resumed=existing is not None)
        if existing is not None:
            con.execute(
                "UPDATE runs SET status = 'running', heartbeat_at = ?, finished_at = NULL, "
                "error = NULL, command = ?, log_path = coalesce(?, log_path) WHERE run_id = ?",
                [now, command, None if log is None else str(log), run_id],
            )
        else:
            con.execute(
                "INSERT INTO runs (run_id, job, status, started_at, heartbeat_at, progress, "
                "parent_run_id, config, command, model, code_version, package_versions, seed, out_dir, log_path) "
                "VALUES (?, ?, 'running', ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, job, now, now, parent_run_id, json.dumps(config, default=str), command,
                 model, _code_version(), json.dumps(_package_versions()), seed, out_dir,
                 None if log is None else str(log)],
            )
    recorder = RunRecorder(path, run_id, log_path=log)
    from retcore.storage import runs  # at call time, so patched settings are seen

    heartbeat = _Heartbeat(path, run_id, min(runs.HEARTBEAT_EVERY_S, _stale_after(None) / 4)).start()
    try:
        yield recorder
    except BaseException as exc:
        heartbeat.stop()
        if isinstance(exc, KeyboardInterrupt):
            status = "interrupted"
            row_config = json.dumps(config, default=str)
            message = interrupted_error(job, run_id, since=_now(), config=row_config, command=command,
                                        cause="stopped by SIGTERM" if isinstance(exc, Terminated)
                                        else "stopped by Ctrl-C")
        else:
            status = "failed"
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        _append_log(log, f"== {_now():%Y-%m-%d %H:%M:%S} UTC {status}: {message}\n{traceback.format_exc()}")
        try:
            _finish(path, run_id, status, message)
        except (DatabaseError, duckdb.Error) as db_exc:  # keep the job's own error; the run goes stale
            _append_log(log, f"could not record the status: {db_exc}")
        try:  # for the CLI's one-line message (the outermost run wins)
            exc.retcore_log_path = None if log is None else str(log)  # type: ignore[attr-defined]
            exc.retcore_status = message  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        raise
    heartbeat.stop()
    _append_log(log, f"== {_now():%Y-%m-%d %H:%M:%S} UTC succeeded")
    _finish(path, run_id, "succeeded", None)
