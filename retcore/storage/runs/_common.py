"""What every module of :mod:`retcore.storage.runs` shares: the clock and the write lock."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

# Writes to ``runs`` rows from this process (the job's thread and its heartbeat
# threads) take turns: DuckDB fails the second of two concurrent updates of a row.
_RUNS_WRITE = threading.RLock()


def _now() -> datetime:
    """The current time as naive UTC (how every ``runs`` timestamp is stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
