"""The CLI command that reruns a recorded job.

A job records the command line it was started with (``runs.command``); runs
started from Python (tests, the pipeline's stages before it recorded its
command) have none, so the command is rebuilt from the stored ``config``.
"""
from __future__ import annotations

import json
import shlex
from typing import Any

__all__ = ["rerun_command"]

# finetune: config key in ``config['finetune']`` -> (flag, default of the CLI)
_FINETUNE_FLAGS: list[tuple[str, str, Any]] = [
    ("model", "--model", "retfound_mae"),
    ("checkpoint", "--checkpoint", None),
    ("epochs", "--epochs", 50),
    ("batch_size", "--batch-size", 16),
    ("blr", "--blr", 5e-3),
    ("lr", "--lr", None),
    ("min_lr", "--min-lr", 1e-6),
    ("warmup_epochs", "--warmup-epochs", 10.0),
    ("weight_decay", "--weight-decay", 0.05),
    ("layer_decay", "--layer-decay", 0.65),
    ("drop_path", "--drop-path", 0.2),
    ("smoothing", "--smoothing", 0.1),
    ("re_prob", "--re-prob", 0.25),
    ("img_size", "--img-size", 224),
    ("global_pool", "--global-pool", "avg"),
    ("eye", "--eye", "both"),
    ("seed", "--seed", 0),
    ("num_workers", "--num-workers", 2),
    ("device", "--device", "auto"),
]


def _num_equal(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def _flag(parts: list[str], flag: str, value: Any, default: Any = None) -> None:
    if value is None or _num_equal(value, default):
        return
    parts += [flag, shlex.quote(str(value))]


def _finetune(cfg: dict) -> list[str]:
    ft = cfg.get("finetune", {})
    parts = ["retcore", "finetune", "--data", shlex.quote(str(cfg.get("data", "DATA")))]
    for key, flag, default in _FINETUNE_FLAGS:
        _flag(parts, flag, ft.get(key), default)
    aa = ft.get("auto_augment", "rand-m9-mstd0.5-inc1")
    if aa != "rand-m9-mstd0.5-inc1":
        parts += ["--auto-augment", shlex.quote(str(aa or "none"))]
    scale = ft.get("crop_scale") or [0.08, 1.0]
    _flag(parts, "--crop-scale-min", scale[0], 0.08)
    for key, flag in (("freeze_backbone", "--freeze-backbone"), ("include_conflicting", "--include-conflicting")):
        if ft.get(key):
            parts.append(flag)
    _flag(parts, "--val", cfg.get("val"), 0.15)
    _flag(parts, "--test", cfg.get("test"), 0.15)
    _flag(parts, "--split-seed", cfg.get("split_seed"), 0)
    return parts


def _predict(cfg: dict) -> list[str]:
    parts = ["retcore", "predict", "--run", shlex.quote(str(cfg.get("run", "latest"))),
             "--split", shlex.quote(str(cfg.get("split", "test")))]
    _flag(parts, "--batch-size", cfg.get("batch_size"), 32)
    _flag(parts, "--device", cfg.get("device"), "auto")
    return parts


def _explain(cfg: dict) -> list[str]:
    methods = cfg.get("methods") or []
    parts = ["retcore", "explain", "--run", shlex.quote(str(cfg.get("run", "latest"))),
             "--methods", shlex.quote(",".join(methods)), "--split", shlex.quote(str(cfg.get("split", "test")))]
    _flag(parts, "--target", cfg.get("target"), "pred")
    _flag(parts, "--batch-size", cfg.get("batch_size"), 8)
    _flag(parts, "--start-layer", cfg.get("start_layer"), 0)
    _flag(parts, "--faithfulness-images", cfg.get("faithfulness_images"), 32)
    return parts


def rerun_command(job: str, config: str | dict | None, command: str | None, run_id: str, db: str | None = None) -> str:
    """The command that reruns a job: the recorded one, else one rebuilt from its config.

    Args:
        job: ``runs.job``.
        config: ``runs.config`` (JSON text or dict).
        command: ``runs.command`` as recorded ('' or None when started from Python).
        run_id: the run's id (unused by the rebuilt commands: a rerun is a new run).
        db: database path to add as ``--db`` to a rebuilt command.
    """
    if command and command.strip():
        return command.strip()
    try:
        cfg = json.loads(config) if isinstance(config, str) else dict(config or {})
    except (TypeError, ValueError):
        cfg = {}
    builders = {"finetune": lambda: _finetune(cfg), "predict": lambda: _predict(cfg),
                "explain": lambda: _explain(cfg)}
    if job not in builders:
        return f"retcore {job} --help  # no command recorded for this run"
    parts = builders[job]()
    if db:
        parts += ["--db", shlex.quote(str(db))]
    return " ".join(parts)
