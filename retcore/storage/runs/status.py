"""Heartbeat and staleness: a ``running`` run silent for longer than ``STALE_AFTER_S`` is interrupted.

:func:`live_status` says so to readers without writing; :func:`mark_stale_runs`
records it; :class:`_Heartbeat` keeps a live run's ``heartbeat_at`` fresh.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from retcore.errors import DatabaseError
from retcore.storage.db import connect, transaction
from retcore.storage.runs._common import _RUNS_WRITE, _now
from retcore.storage.runs.logs import _append_log
from retcore.storage.runs.resume import interrupted_error

__all__ = ["live_status", "mark_stale_runs", "stale_cutoff"]


def _stale_after(stale_after_s: float | None) -> float:
    from retcore.storage import runs  # at call time, so a patched ``runs.STALE_AFTER_S`` is seen

    return float(runs.STALE_AFTER_S if stale_after_s is None else stale_after_s)


def stale_cutoff(now: datetime | None = None, stale_after_s: float | None = None) -> datetime:
    """Naive-UTC time before which a ``running`` run's last heartbeat means it is interrupted."""
    return (_now() if now is None else now) - timedelta(seconds=_stale_after(stale_after_s))


def live_status(status: str, heartbeat_at: datetime | None, started_at: datetime | None, *,
                now: datetime | None = None, stale_after_s: float | None = None) -> str:
    """The status a reader should show: ``running`` with a stale heartbeat is ``interrupted``.

    Parameters:
        status: ``runs.status`` as stored.
        heartbeat_at, started_at: ``runs`` timestamps (naive UTC); the heartbeat
            falls back to the start.
        now: naive UTC (default: the current time).
        stale_after_s: default :data:`STALE_AFTER_S`.

    Returns:
        ``status``, or ``'interrupted'`` for a ``running`` run silent for longer
        than ``stale_after_s``.
    """
    if status != "running":
        return status
    last = heartbeat_at if heartbeat_at is not None else started_at
    if last is None:
        return status
    return "interrupted" if last < stale_cutoff(now, stale_after_s) else status


def mark_stale_runs(db: str | os.PathLike[str] | None, *, stale_after_s: float | None = None) -> int:
    """Record ``running`` runs silent for longer than ``stale_after_s`` (default
    :data:`STALE_AFTER_S`) as ``interrupted``; return how many.

    ``finished_at`` becomes the last heartbeat (when the process was last seen
    alive); the error names that time and how to resume; the run's log gets a line.
    """
    cutoff = stale_cutoff(None, stale_after_s)
    with _RUNS_WRITE, connect(db) as con, transaction(con):
        rows = con.execute(
            "SELECT run_id, job, config, command, coalesce(heartbeat_at, started_at), log_path FROM runs "
            "WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < ?", [cutoff]).fetchall()
        for run_id, job, config, command, last, _ in rows:
            con.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ? "
                "WHERE run_id = ? AND status = 'running'",
                [last, interrupted_error(job, run_id, since=last, config=config, command=command), run_id])
    for run_id, job, config, command, last, log_path in rows:
        _append_log(log_path, f"== {_now():%Y-%m-%d %H:%M:%S} UTC recorded as interrupted by a later job: "
                              + interrupted_error(job, run_id, since=last, config=config, command=command))
    return len(rows)


class _Heartbeat:
    """A daemon thread that refreshes ``heartbeat_at`` of one run until stopped.

    Each beat is a short connection of its own; a database locked by another
    process (or a write conflict) skips that beat quietly and tries again at
    the next one. A run that a later job wrongly recorded as ``interrupted``
    while this process was blocked is set back to ``running``.
    """

    def __init__(self, db: Path, run_id: str, every_s: float) -> None:
        self.db, self.run_id, self.every_s = db, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{run_id}", daemon=True)

    def start(self) -> _Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self.every_s, 5.0))

    def beat(self) -> bool:
        """One heartbeat; True when it was written."""
        try:
            with _RUNS_WRITE, connect(self.db, timeout_s=max(min(self.every_s / 2, 10.0), 0.2)) as con:
                con.execute(
                    "UPDATE runs SET heartbeat_at = ?, status = 'running', finished_at = NULL, "
                    "error = CASE WHEN status = 'interrupted' THEN NULL ELSE error END "
                    "WHERE run_id = ? AND status IN ('running', 'interrupted')",
                    [_now(), self.run_id])
            return True
        except (DatabaseError, duckdb.Error):
            return False

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()
