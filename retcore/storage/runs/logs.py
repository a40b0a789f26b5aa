"""Run logs: ``<results>/logs/<run_id>.log``, where it lies, its tail, and appending to it."""
from __future__ import annotations

import os
from pathlib import Path

from retcore.storage.db import resolve_db_path
from retcore.storage.runs._common import _now

__all__ = ["log_dirs", "log_tail", "results_root"]

_LOG_TAIL_BYTES = 64 * 1024


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
