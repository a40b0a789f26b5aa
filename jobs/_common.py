"""Shared plumbing for the CLI jobs: options, one-line errors, the command line."""
from __future__ import annotations

import functools
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from retcore.errors import RetcoreError, Terminated

__all__ = ["DbOption", "ResultsOption", "RunResultsOption", "command_line", "friendly_errors", "path_error", "results_dir"]

F = TypeVar("F", bound=Callable[..., Any])

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Results database (default: $RETCORE_DB or ./results.duckdb).", show_default=False),
]
ResultsOption = Annotated[
    Path | None,
    typer.Option("--results", help="Folder for checkpoints and heatmaps (default: results/ next to the database).",
                 show_default=False),
]


RunResultsOption = Annotated[
    Path | None,
    typer.Option("--results", help="Folder for this job's files (maps, logs, shards) (default: the fine-tuning "
                                   "run's own results folder, else results/ next to the database).",
                 show_default=False),
]


def results_dir(db: Path | None, results: Path | None) -> Path:
    """Where run artefacts go: ``--results`` or ``results/`` beside the database."""
    if results is not None:
        return Path(results)
    from retcore.storage import resolve_db_path

    return resolve_db_path(db).resolve().parent / "results"


def command_line() -> str:
    """The command as the user typed it, for the ``runs.command`` column."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", ".py")):
        return " ".join(["python -m", "jobs." + Path(argv[0]).stem, *map(shlex.quote, argv[1:])])
    return " ".join(["retcore", *map(shlex.quote, argv[1:])]) if argv else "retcore"


def friendly_errors(fn: F) -> F:
    """Turn :class:`RetcoreError` into ``error: <one line>`` and exit code 2; Ctrl-C into exit code 130.

    The run's log (full traceback) is named when the job recorded one.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = _catch_sigterm()
        try:
            return fn(*args, **kwargs)
        except RetcoreError as exc:
            _fail(str(exc).splitlines()[0], exc)
        except OSError as exc:
            if exc.filename is None:  # not about a path the user gave: a bug, keep the traceback
                raise
            _fail(path_error(exc), exc)
        except KeyboardInterrupt as exc:
            _close_progress_bars()
            log = getattr(exc, "retcore_log_path", None)
            status = getattr(exc, "retcore_status", None) or (
                "interrupted: rerun the same command to continue (fine-tuning: `retcore finetune --resume RUN`)")
            typer.secho(status + (f" (log: {log})" if log else ""), err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def _fail(line: str, exc: BaseException) -> None:
    """Print ``error: <line>`` (and the run's log, when one was recorded) and exit with code 2."""
    _close_progress_bars()
    typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
    log = getattr(exc, "retcore_log_path", None)
    if log:
        typer.secho(f"details: {log}", err=True)
    raise typer.Exit(code=2) from None


def _close_progress_bars() -> None:
    """End every open tqdm bar, so the error that follows starts on a line of its own."""
    try:
        from tqdm.std import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"signal {signum}")


def _catch_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` (a KeyboardInterrupt: the run is recorded as interrupted)
    while a job runs in the main thread with the default handler; returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def path_error(exc: OSError) -> str:
    """One line for a file-system error on a path (a folder that cannot be created, a file in the way)."""
    path = exc.filename
    if isinstance(exc, FileExistsError):
        return f"{path} exists and is not a folder: pass another path (or move that file away)"
    if isinstance(exc, NotADirectoryError):
        return f"{path}: part of this path is a file, not a folder: pass another path"
    if isinstance(exc, PermissionError):
        return f"no permission to write {path}: pass a path in a folder you can write"
    if isinstance(exc, FileNotFoundError):
        return f"{path} cannot be created or read (its folder does not exist and cannot be made): pass another path"
    return f"{path}: {exc.strerror or exc}: pass another path"


def set_threads() -> None:
    """Use every core for torch intra-op work unless the user set OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(os.cpu_count() or 1, 1))


def launch_torchrun(job: str, nproc: int, argv: list[str]) -> int:
    """Run ``retcore <job> argv`` in ``nproc`` processes on this machine under ``torchrun
    --standalone`` (each rank reads its place from torchrun's environment); return the exit code.
    ``--nproc`` options are dropped from ``argv`` (the ranks must not launch again); the arguments
    reach the ranks through ``RETCORE_RANK_ARGV`` (:mod:`jobs._rank`)."""
    import json
    import subprocess

    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "jobs._rank"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, RETCORE_RANK_ARGV=json.dumps([job, *kept])))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the ranks by itself; SIGTERM is passed on, so they record it
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise


def job_argv(job: str) -> list[str]:
    """The arguments after the job's name on this process's command line (``retcore finetune
    --data X`` -> ``['--data', 'X']``; ``python -m jobs.finetune --data X`` -> the same)."""
    return sys.argv[sys.argv.index(job) + 1:] if job in sys.argv[1:2] else sys.argv[1:]
