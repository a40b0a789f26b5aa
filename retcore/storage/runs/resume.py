"""How to continue an unfinished run: the resume hint and the ``runs.error`` of an interrupted run."""
from __future__ import annotations

import json
import shlex
from datetime import datetime

__all__ = ["interrupted_error", "resume_hint"]


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
