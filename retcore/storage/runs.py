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
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from retcore.errors import DatabaseError, RetcoreError
from retcore.storage.db import connect, resolve_db_path, transaction
from retcore.storage.migrations import migrate

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

#: A ``running`` run whose heartbeat is older than this is interrupted.
STALE_AFTER_S = 120.0
#: How often the background thread of :func:`record_run` refreshes the heartbeat
#: (at most a quarter of :data:`STALE_AFTER_S`).
HEARTBEAT_EVERY_S = 30.0
#: Every value of ``runs.status``.
STATUSES = ("running", "succeeded", "failed", "interrupted")
#: Runs that ended without finishing: a rerun or ``--resume`` continues them.
UNFINISHED = ("failed", "interrupted")

_LOG_TAIL_BYTES = 64 * 1024
# Writes to ``runs`` rows from this process (the job's thread and its heartbeat
# threads) take turns: DuckDB fails the second of two concurrent updates of a row.
_RUNS_WRITE = threading.RLock()


def _now() -> datetime:
    """The current time as naive UTC (how every ``runs`` timestamp is stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _stale_after(stale_after_s: float | None) -> float:
    return float(STALE_AFTER_S if stale_after_s is None else stale_after_s)


def new_run_id(job: str) -> str:
    """A readable, unique run id such as ``finetune-20261125-183000-a1b2``."""
    return f"{job}-{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def open_db(db: str | os.PathLike[str] | None) -> Path:
    """Create/migrate the database at ``db`` and return its path (jobs call this first)."""
    with connect(db) as con:
        migrate(con)
        path = Path(con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0])
    return path


# --------------------------------------------------------------------- status


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


def _db_flag(command: str | None) -> list[str]:
    """``['--db', PATH]`` when the recorded command line names a database."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        return []
    for i, word in enumerate(words):
        if word == "--db" and i + 1 < len(words):
            return ["--db", words[i + 1]]
        if word.startswith("--db="):
            return ["--db", word[5:]]
    return []


def resume_hint(job: str, run_id: str, config: str | dict | None = None, command: str | None = None) -> str:
    """How to continue an unfinished run of ``job``, as one clause (``"resume with `...`"``).

    Fine-tuning resumes from its last checkpoint (``--resume``); explain, predict
    and sanity skip what they already stored, and the pipeline and the study reuse
    finished stages, so for them the recorded command is simply rerun (without
    one, a command built from the run's config; a data randomisation test, mode
    'data', is rerun by the study that started it).
    """
    if job == "finetune":
        return "resume with `" + shlex.join(["retcore", "finetune", "--resume", run_id, *_db_flag(command)]) + "`"
    if command and command.strip():
        rerun = command.strip()
    else:
        try:
            cfg = json.loads(config) if isinstance(config, str) else dict(config or {})
        except (TypeError, ValueError):
            cfg = {}
        if job == "explain":
            rerun = shlex.join(["retcore", "explain", "--run", str(cfg.get("run", "latest")), "--methods",
                                ",".join(cfg.get("methods") or []), "--split", str(cfg.get("split", "test"))])
        elif job == "predict":
            rerun = shlex.join(["retcore", "predict", "--run", str(cfg.get("run", "latest")),
                                "--split", str(cfg.get("split", "test"))])
        elif job == "sanity" and (cfg.get("mode") == "data" or "shuffled_run" in cfg):
            return ("rerun the study that started it (`retcore study shortcut --shuffled-labels` with its "
                    "seeds; finished runs are reused and the test continues where it stopped)")
        elif job == "sanity":
            words = ["retcore", "sanity", "--run", str(cfg.get("run", "latest")), "--methods",
                     ",".join(cfg.get("methods") or []), "--split", str(cfg.get("split", "test"))]
            for key in ("images", "mode", "seed"):
                if cfg.get(key) is not None:
                    words += [f"--{key}", str(cfg[key])]
            rerun = shlex.join(words)
        elif job == "pipeline":
            rerun = "retcore pipeline --demo"
        else:
            return f"rerun the {job} job"
    why = {"explain": " (it continues where it stopped)", "predict": " (it continues where it stopped)",
           "sanity": " (it continues where it stopped)", "pipeline": " (finished stages are reused)",
           "study": " (finished runs are reused)"}.get(job, "")
    return f"rerun `{rerun}`{why}"


def interrupted_error(job: str, run_id: str, *, since: datetime | None, config: str | dict | None = None,
                      command: str | None = None, cause: str = "no heartbeat") -> str:
    """The one-line ``runs.error`` of an interrupted run: what happened, when, and how to resume."""
    when = f" since {since:%Y-%m-%d %H:%M:%S} UTC" if cause == "no heartbeat" and since is not None else \
        (f" at {since:%Y-%m-%d %H:%M:%S} UTC" if since is not None else "")
    text = f"interrupted: {cause}{when}; {resume_hint(job, run_id, config, command)}"
    return text[:500]


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


# ------------------------------------------------------------------------ logs


def results_root(db: str | os.PathLike[str] | None, out_dir: str | None = None,
                 parent_out_dir: str | None = None) -> Path:
    """The results folder a run's artefacts (and its log) belong to.

    The run's ``out_dir`` (``<results>/runs/<run_id>`` gives ``<results>``;
    any other folder is its own root), else its parent run's, else ``results/``
    beside the database (as ``jobs._common.results_dir``).
    """
    for folder in (out_dir, parent_out_dir):
        if folder:
            path = Path(folder).expanduser().resolve()
            return path.parents[1] if path.parent.name == "runs" else path
    return resolve_db_path(db).expanduser().resolve().parent / "results"


def log_dirs(db: str | os.PathLike[str] | None, out_dir: str | None = None,
             parent_out_dir: str | None = None) -> list[Path]:
    """The ``logs/`` folders a run's log may lie in (for readers that check a recorded path)."""
    out: list[Path] = []
    for root in (results_root(db, out_dir), results_root(db, None, parent_out_dir), results_root(db)):
        if root / "logs" not in out:
            out.append(root / "logs")
    return out


def log_tail(path: str | None, run_id: str, allowed: list[Path], lines: int = 40) -> str | None:
    """The last ``lines`` lines of run ``run_id``'s log, or None.

    Read only when ``path`` resolves (links followed) to an existing file named
    ``<run_id>.log`` inside one of the ``allowed`` folders; at most the last
    64 KiB are read.
    """
    if not path:
        return None
    try:
        file = Path(str(path)).expanduser().resolve()
        inside = any(file.is_relative_to(Path(folder).resolve()) for folder in allowed)
        if not inside or file.name != f"{run_id}.log" or not file.is_file():
            return None
        with file.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(size - _LOG_TAIL_BYTES, 0))
            text = fh.read().decode("utf-8", errors="replace")
    except (OSError, RuntimeError, ValueError):
        return None
    return "\n".join(text.splitlines()[-lines:])


def _append_log(path: str | os.PathLike[str] | None, text: str) -> None:
    """Append ``text`` to a run's log; a log that cannot be written never stops a job."""
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text.rstrip("\n") + "\n")
    except OSError:
        pass


def _start_log(root: Path, run_id: str, job: str, command: str, resumed: bool) -> Path | None:
    path = root / "logs" / f"{run_id}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    verb = "resumed" if resumed else "started"
    _append_log(path, f"== {_now():%Y-%m-%d %H:%M:%S} UTC {job} run {run_id} {verb} (pid {os.getpid()})"
                      + (f": {command}" if command else ""))
    return path if path.is_file() else None


# ------------------------------------------------------------------- recorder


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
        """Record progress in [0, 1] with a short note (throttled unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        with _RUNS_WRITE, connect(self.db) as con:
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
        with _RUNS_WRITE, connect(self.db) as con:
            con.execute(f"UPDATE runs SET {names} WHERE run_id = ?", [*values, self.run_id])


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
            raise RetcoreError(f"run {run_id} is still running (heartbeat at {seen:%H:%M:%S} UTC); "
                               "wait for it to finish, or stop its process first")
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
    heartbeat = _Heartbeat(path, run_id, min(HEARTBEAT_EVERY_S, _stale_after(None) / 4)).start()
    try:
        yield recorder
    except BaseException as exc:
        heartbeat.stop()
        if isinstance(exc, KeyboardInterrupt):
            status = "interrupted"
            row_config = json.dumps(config, default=str)
            message = interrupted_error(job, run_id, since=_now(), config=row_config, command=command,
                                        cause="stopped by Ctrl-C")
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
