"""The command that reruns a recorded run, built from the job's own CLI and the run's config.

Every job that records runs (``ingest``, ``finetune``, ``predict``, ``explain``,
``sanity``, ``study``) builds its ``runs.config`` from its command-line options with a
function of its own module (``options_run_config``). This module inverts that:
it turns a stored config back into option values, then writes only those that
differ from the defaults of the ``retcore`` command's parameters (read from the
typer app, never copied here). Each command is checked by parsing it back with
the same app and rebuilding the config: a setting the command line cannot
express (a field set from Python, a recipe default changed since) is listed in
:attr:`Rerun.differences` instead of being dropped silently.

A run started by ``retcore pipeline`` or ``retcore study`` records that command
line; its rerun command is the job's own (``retcore finetune ...``), and the
recorded line is kept in :attr:`Rerun.recorded`.
"""
from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JOB_COMMANDS", "JobCommand", "Rerun", "command_argv", "parse_options", "rerun"]

Options = dict[str, Any]


@dataclass(frozen=True)
class JobCommand:
    """How a job's stored config maps to its ``retcore`` command.

    path: the subcommand, e.g. ``("finetune",)`` or ``("study", "shortcut")``.
    options: stored config -> option values by parameter name (the inverse of ``config``).
    config: option values -> the config the job records (the job module's ``options_run_config``).
    always: options written even at their default (they name what is rerun).
    outputs: config keys a job adds after it ran (results, not settings).
    """

    path: tuple[str, ...]
    options: Callable[[Mapping[str, Any]], Options]
    config: Callable[[Mapping[str, Any]], dict]
    always: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rerun:
    """The command that reruns a run.

    command: a shell command line.
    source: ``"config"`` (built from the run's config), ``"recorded"`` (the
        recorded command line: no builder for this job or an unreadable config)
        or ``"none"`` (neither; the command shows the job's help).
    differences: settings of the run this command would record differently,
        one line each (empty when it reproduces the config exactly).
    recorded: the command line recorded with the run when it is not ``command``
        (e.g. the ``retcore pipeline`` line that started a fine-tuning run).
    """

    command: str
    source: str
    differences: tuple[str, ...] = ()
    recorded: str | None = None


# ----------------------------------------------------------------- per job


def _finetune_options(config: Mapping[str, Any]) -> Options:
    from retcore.data import DEFAULT_PATIENT_REGEX
    from retcore.train.config import FinetuneConfig

    cfg = FinetuneConfig.from_dict(config.get("finetune", {})).to_dict()
    options = {k: v for k, v in cfg.items() if k not in ("auto_augment", "crop_scale")}
    options["auto_augment"] = cfg["auto_augment"] if cfg["auto_augment"] is not None else "none"
    options["crop_scale_min"] = cfg["crop_scale"][0]
    regex = config.get("patient_regex")
    options["nproc"] = config.get("world_size") or 1  # a data-parallel run: its process count
    options.update(data=config.get("data"), val=config.get("val"), test=config.get("test"),
                   split_seed=config.get("split_seed"),
                   patient_regex=None if regex == DEFAULT_PATIENT_REGEX else regex)
    return options


def _ingest_options(config: Mapping[str, Any]) -> Options:
    from retcore.data import DEFAULT_PATIENT_REGEX

    options = {k: config.get(k) for k in ("data", "val", "test", "split_seed", "strict")}
    regex = config.get("patient_regex")
    options["patient_regex"] = None if regex == DEFAULT_PATIENT_REGEX else regex
    return options


def _predict_options(config: Mapping[str, Any]) -> Options:
    return {**{k: config.get(k) for k in ("run", "split", "batch_size", "device")},
            "nproc": config.get("world_size") or 1}


def _explain_options(config: Mapping[str, Any]) -> Options:
    options = {k: config.get(k) for k in ("run", "split", "target", "start_layer", "batch_size",
                                          "faithfulness_images")}
    options["methods"] = ",".join(config.get("methods") or [])
    # explain runs recorded before the faithfulness settings were stored used the defaults
    options["faithfulness_baseline"] = config.get("faithfulness_baseline") or "blur"
    options["faithfulness_units"] = config.get("faithfulness_units") or "token,pixel"
    return options


def _sanity_options(config: Mapping[str, Any]) -> Options:
    if config.get("mode") == "data" or "shuffled_run" in config:
        raise ValueError("a data randomisation run (mode 'data') is started by "
                         "`retcore study shortcut --shuffled-labels`, not by `retcore sanity`")
    options = {k: config.get(k) for k in ("run", "split", "images", "mode", "seed", "batch_size")}
    options["methods"] = ",".join(config.get("methods") or [])
    return options


def _study_options(config: Mapping[str, Any]) -> Options:
    arms = config.get("finetune", {})
    guided = arms.get("guided", {})
    demo = config.get("demo") or {}
    data = config.get("data")
    warm = config.get("warm_start") or {}
    return {
        "seeds": ",".join(str(s) for s in config.get("seeds") or []), "method": config.get("method"),
        "shortcut_class": config.get("shortcut"), "data_dir": str(Path(data).parent) if data else None,
        "n_images": demo.get("n_images"), "epochs": arms.get("baseline", guided).get("epochs"),
        **{k: guided.get(k) for k in ("guide", "guide_form", "guide_weight", "guide_radius")},
        "shuffled_labels": bool(config.get("shuffled_labels", False)),
        "warm_start": warm.get("epochs"), "control": bool(warm.get("control", True)),
    }


def _job_config(module: str) -> Callable[[Mapping[str, Any]], dict]:
    def config(options: Mapping[str, Any]) -> dict:
        import importlib

        return importlib.import_module(module).options_run_config(options)

    return config


#: Every job that records runs, by ``runs.job``.
JOB_COMMANDS: dict[str, JobCommand] = {
    "ingest": JobCommand(("ingest",), _ingest_options, _job_config("jobs.ingest"), always=("data",)),
    "finetune": JobCommand(("finetune",), _finetune_options, _job_config("jobs.finetune"), always=("data",)),
    "predict": JobCommand(("predict",), _predict_options, _job_config("jobs.predict"), always=("run", "split")),
    "explain": JobCommand(("explain",), _explain_options, _job_config("jobs.explain"),
                          always=("run", "methods", "split")),
    "sanity": JobCommand(("sanity",), _sanity_options, _job_config("jobs.sanity"),
                         always=("run", "methods", "split"), outputs=("seconds_per_image",)),
    "study": JobCommand(("study", "shortcut"), _study_options, _job_config("jobs.study"), outputs=("summary",)),
}


# ----------------------------------------------------------------- generic


@functools.cache
def _root():
    """The click group of the ``retcore`` app (built once)."""
    import typer.main

    from jobs.cli import app

    return typer.main.get_command(app)


def _command(path: Sequence[str]):
    """The click command of ``retcore <path>``."""
    command = _root()
    for name in path:
        command = command.commands[name]
    return command


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, bool) or isinstance(default, bool) or value is None or default is None:
        return value is default or value == default
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return str(value) == str(default)


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def command_argv(path: Sequence[str], options: Mapping[str, Any], always: Sequence[str] = ()) -> list[str]:
    """``retcore <path>`` with the options whose value differs from the parameter's default.

    Names, spellings (``--no-amp``, ``--shortcut``) and defaults come from the
    typer app; options in ``always`` are written even at their default. A value
    the option cannot take (None where the default is not) is left out, and
    :func:`rerun` reports it.
    """
    argv = ["retcore", *path]
    for param in _command(path).params:
        if param.param_type_name != "option" or param.name not in options:
            continue
        value = options[param.name]
        if value is None or (param.name not in always and _same(value, param.default)):
            continue
        if param.is_flag:
            flag = param.opts[0] if value else (param.secondary_opts or [None])[0]
            if flag is not None:
                argv.append(flag)
        elif param.multiple:
            for item in value:
                argv += [param.opts[0], _text(item)]
        else:
            argv += [param.opts[0], _text(value)]
    return argv


def parse_options(argv: Sequence[str]) -> tuple[tuple[str, ...], Options]:
    """``(subcommand path, option values by parameter name)`` of a ``retcore ...`` command line.

    Parses with the typer app (types converted, defaults filled) without running the job.
    """
    args = list(argv)
    if args and args[0] == "retcore":
        args = args[1:]
    command, path = _root(), []
    while hasattr(command, "commands") and args and args[0] in command.commands:
        path.append(args[0])
        command = command.commands[args.pop(0)]
    ctx = command.make_context(" ".join(["retcore", *path]), args)
    return tuple(path), dict(ctx.params)


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


_MISSING = object()


def _differences(recorded: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> list[str]:
    """One line per setting that differs; settings missing from ``recorded`` (an older run) in one line."""
    old, new = _flat(_normal(dict(recorded))), _flat(_normal(dict(rebuilt)))
    lines, unrecorded = [], []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a == b:
            continue
        if a is _MISSING:
            unrecorded.append(key)
        elif b is _MISSING:
            lines.append(f"{key}: {a!r} recorded, not settable from the command line")
        else:
            lines.append(f"{key}: {a!r} recorded, {b!r} with this command")
    if unrecorded:
        shown = ", ".join(unrecorded[:6]) + (f" and {len(unrecorded) - 6} more" if len(unrecorded) > 6 else "")
        lines.append(f"not recorded with the run (the command uses today's defaults): {shown}")
    return lines


def rerun(job: str, config: str | Mapping[str, Any] | None, command: str | None = None, *,
          db: str | None = None) -> Rerun:
    """The command that reruns a run of ``job`` with ``config`` (``runs.config``, JSON text or dict).

    Parameters:
        job: ``runs.job``.
        config: the run's stored config.
        command: ``runs.command`` as recorded ('' or None when started from Python).
        db: database path added as ``--db``.

    Returns:
        A :class:`Rerun`: built from the config for every job in
        :data:`JOB_COMMANDS`, checked by parsing it back; else the recorded
        command line; else ``retcore <job> --help``.
    """
    recorded = command.strip() if isinstance(command, str) and command.strip() else None
    spec = JOB_COMMANDS.get(job)
    try:
        cfg = json.loads(config) if isinstance(config, str) else dict(config or {})
    except (TypeError, ValueError):
        cfg = {}
    if spec is None or not cfg:
        if recorded:
            return Rerun(recorded, "recorded")
        return Rerun(f"retcore {job} --help  # no command recorded for this run", "none")
    try:
        argv = command_argv(spec.path, spec.options(cfg), spec.always)
    except Exception as exc:  # a config this version cannot read (say, from an older schema)
        why = (f"the stored config cannot be turned into options: {str(exc).splitlines()[0] if str(exc) else exc!r}",)
        if recorded:
            return Rerun(recorded, "recorded", why)
        return Rerun(f"retcore {' '.join(spec.path)} --help  # no command recorded for this run", "none", why)
    try:
        rebuilt = spec.config(parse_options(argv)[1])
        wanted = {k: v for k, v in cfg.items() if k not in spec.outputs}
        differences = tuple(_differences(wanted, rebuilt))
    except Exception as exc:  # the command does not parse back (e.g. a value its option rejects)
        differences = (f"this command does not parse back to the run's config: {str(exc).splitlines()[0]}",)
    if db:
        argv += ["--db", str(db)]
    text = shlex.join(argv)
    return Rerun(text, "config", differences, recorded if recorded and recorded != text else None)
