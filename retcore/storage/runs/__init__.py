"""The ``runs`` table: one row per job invocation, with status, live progress and a log.

A run is inserted as ``running`` and ends ``succeeded``, ``failed`` (an
exception) or ``interrupted`` (Ctrl-C, or a process killed without a chance
to say so). While it runs, a background thread refreshes ``heartbeat_at``
every :data:`HEARTBEAT_EVERY_S` seconds, so even a step longer than
:data:`STALE_AFTER_S` (a ViT-L epoch on a CPU) keeps the run alive. A killed
job leaves ``running`` with a stale heartbeat: readers show it as
``interrupted`` at once (:func:`live_status`, nothing written), and the next
job records it so (:func:`mark_stale_runs`) with an error saying how to resume.

Each run keeps a log file, ``<results>/logs/<run_id>.log`` (``runs.log_path``,
schema v4): a header, the outcome and, for a failed or interrupted run, the
full traceback; ``runs.error`` keeps the one-line summary.

The code is split by concern; import every name from this package
(``from retcore.storage.runs import record_run``), not from its modules:

- :mod:`~retcore.storage.runs.lifecycle`: :func:`record_run`, :class:`RunRecorder`,
  :func:`new_run_id`, :func:`open_db`.
- :mod:`~retcore.storage.runs.status`: heartbeat and staleness (:func:`live_status`,
  :func:`stale_cutoff`, :func:`mark_stale_runs`, the heartbeat thread).
- :mod:`~retcore.storage.runs.logs`: :func:`results_root`, :func:`log_dirs`, :func:`log_tail`.
- :mod:`~retcore.storage.runs.resume`: :func:`resume_hint`, :func:`interrupted_error`.

The settings below live here only, and the modules read them at call time,
so setting ``retcore.storage.runs.STALE_AFTER_S`` (as tests do) takes effect.
"""
from __future__ import annotations

#: A ``running`` run whose heartbeat is older than this is interrupted.
STALE_AFTER_S = 120.0
#: How often the background thread of :func:`record_run` refreshes the heartbeat
#: (at most a quarter of :data:`STALE_AFTER_S`).
HEARTBEAT_EVERY_S = 30.0
#: Every value of ``runs.status``.
STATUSES = ("running", "succeeded", "failed", "interrupted")
#: Runs that ended without finishing: a rerun or ``--resume`` continues them.
UNFINISHED = ("failed", "interrupted")

# The submodules import nothing from this namespace at import time, so they load after the settings.
from retcore.storage.runs.lifecycle import RunRecorder, new_run_id, open_db, record_run  # noqa: E402
from retcore.storage.runs.logs import log_dirs, log_tail, results_root  # noqa: E402
from retcore.storage.runs.resume import interrupted_error, resume_hint  # noqa: E402
from retcore.storage.runs.status import _Heartbeat, live_status, mark_stale_runs, stale_cutoff  # noqa: E402,F401

__all__ = [
    "HEARTBEAT_EVERY_S",
    "STALE_AFTER_S",
    "STATUSES",
    "UNFINISHED",
    "RunRecorder",
    "interrupted_error",
    "live_status",
    "log_dirs",
    "log_tail",
    "mark_stale_runs",
    "new_run_id",
    "open_db",
    "record_run",
    "resume_hint",
    "results_root",
    "stale_cutoff",
]
