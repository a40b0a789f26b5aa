"""``retcore study shortcut``: does guided fine-tuning remove a planted shortcut?

On the demo set with the shortcut marker (correlated with one class in
train/val, independent of the class in test), for each seed: fine-tune a
baseline and a guided model with the same recipe and seed, predict the test
split, explain it, and measure accuracy, the relevance share on the marker,
zone scores and localisation. Per-(arm, seed) figures and the paired tests go
to the ``study_results`` table; a summary table is printed. Finished
fine-tuning runs with identical settings are reused, so an interrupted study
resumes where it stopped.

``--shuffled-labels`` adds the data randomisation test (Adebayo et al. 2018) per
seed: the baseline recipe fine-tuned once more on the demo data with its train and
val labels permuted (``jobs.sanity.shuffled_manifest``), and every explanation
method's maps of the baseline and of that model compared on the test images
(``jobs.sanity.run_data_randomisation``, ``sanity_checks`` rows with mode ``data``).
It costs one more fine-tuning run per seed (as long as the baseline's) plus two
maps per test image and method.

``--warm-start E`` makes an arm cheap: the guided arm starts from the same seed's
baseline checkpoint (the model that learnt the shortcut) and fine-tunes ``E`` more
epochs with the guide (1 warm-up epoch, then the recipe's cosine), instead of the
recipe's full schedule from scratch. The baseline runs are the same as without it.
A ``continued`` arm (the same ``E`` epochs from the same checkpoint, no guide) is the
control that separates the guide's effect from that of more training; ``--no-control``
leaves it out. Paired tests then compare every pair of arms.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors, set_threads
from retcore.errors import RetcoreError

__all__ = ["ARM_PAIRS", "app", "options_run_config", "run_shortcut_study", "shortcut_inputs", "study_run_config"]

app = typer.Typer(help="Studies that compare fine-tuning arms on the demo data.", no_args_is_help=True)



ARM_PAIRS: tuple[tuple[str, str], ...] = (("baseline", "guided"), ("baseline", "continued"), ("continued", "guided"))
"""Pairs ``(a, b)`` of arms tested on the same images; ``study_results.arm`` of the tests is ``'<b>_vs_<a>'``."""


def _arms(base, warm_start: int | None = None, control: bool = True) -> dict:
    """The study's arms: the guided ``base`` and the same config without a guide. The baseline's
    guide fields are the defaults whatever the guided arm uses, so studies of different guides, forms
    and weights with the same recipe and seeds share (reuse) the same baseline runs.

    ``warm_start`` (epochs): the guided arm (and, with ``control``, a ``continued`` arm without a
    guide) runs ``warm_start`` epochs with 1 warm-up epoch; its ``checkpoint`` (the same seed's
    baseline checkpoint) is set per seed by :func:`run_shortcut_study`.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(base) if f.name.startswith("guide")}
    baseline = dataclasses.replace(base, **{**defaults, "guide": None})
    if warm_start is not None and warm_start < 1:
        raise RetcoreError(f"--warm-start {warm_start}: pass a number of epochs >= 1 (or leave it out)")
    if not warm_start:
        return {"baseline": baseline, "guided": base}
    short = {"epochs": int(warm_start), "warmup_epochs": min(1.0, warm_start / 2)}
    arms = {"baseline": baseline, "guided": dataclasses.replace(base, **short)}
    if control:
        arms["continued"] = dataclasses.replace(baseline, **short)
    return arms


def study_run_config(base, demo_cfg, *, seeds: list[int], method: str, manifest: Path,
                     shuffled_labels: bool = False, warm_start: int | None = None, control: bool = True) -> dict:
    """The ``runs.config`` of a shortcut study (before its ``summary`` is added at the end).

    ``demo`` holds every field of the demo data's config that shapes the images
    (:func:`~retcore.demo.config.config_fingerprint`), so a rerun can rebuild them.
    """
    from retcore.demo.config import config_fingerprint

    return {"study": "shortcut", "seeds": list(seeds), "method": method, "data": str(Path(manifest).resolve()),
            "shortcut": demo_cfg.shortcut, "demo": config_fingerprint(demo_cfg),
            "finetune": {arm: cfg.to_dict() for arm, cfg in _arms(base, warm_start, control).items()},
            **({"shuffled_labels": True} if shuffled_labels else {}),
            **({"warm_start": {"epochs": int(warm_start), "from": "baseline", "control": bool(control)}}
               if warm_start else {})}


def shortcut_inputs(options: Mapping[str, Any]):
    """``(guided FinetuneConfig, DemoConfig, seeds, data folder)`` of ``retcore study shortcut`` options.

    The guided arm is the demo recipe (``jobs.pipeline.DEMO_FINETUNE``) with the
    ``--guide*`` options and ``--epochs``.
    """
    from jobs.pipeline import DEMO_FINETUNE
    from retcore.demo import DemoConfig
    from retcore.train.config import FinetuneConfig

    seeds = options["seeds"]
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise RetcoreError(f"--seeds {seeds!r} is not a comma-separated list of integers, e.g. 0,1,2") from None
    params = dict(DEMO_FINETUNE, guide=options["guide"], guide_form=options["guide_form"],
                  guide_weight=options["guide_weight"], guide_radius=options["guide_radius"])
    if options["epochs"] is not None:
        params["epochs"] = options["epochs"]
    shortcut_class = options["shortcut_class"]
    demo_cfg = DemoConfig(n_images=options["n_images"], shortcut=shortcut_class)
    data_dir = options["data_dir"] or Path(f"data/demo-{shortcut_class}")
    return FinetuneConfig(**params), demo_cfg, seed_list, Path(data_dir)


def options_run_config(options: Mapping[str, Any]) -> dict:
    """The ``runs.config`` that ``retcore study shortcut`` with ``options`` records (without its ``summary``)."""
    from retcore.demo import DEMO_MANIFEST

    base, demo_cfg, seeds, data_dir = shortcut_inputs(options)
    return study_run_config(base, demo_cfg, seeds=seeds, method=options["method"], manifest=data_dir / DEMO_MANIFEST,
                            shuffled_labels=bool(options.get("shuffled_labels", False)),
                            warm_start=options.get("warm_start"), control=bool(options.get("control", True)))


def run_shortcut_study(base, demo_cfg, *, seeds: list[int], method: str = "lrp_pixels", data_dir: Path,
                       db: Path | None = None, results: Path | None = None, force: bool = False,
                       batch_size: int = 32, shuffled_labels: bool = False, warm_start: int | None = None,
                       control: bool = True, command: str = "") -> str:
    """Run the study; return the study's run id.

    ``base``: the :class:`~retcore.train.config.FinetuneConfig` of the guided arm
    (its ``guide*`` fields set); the baseline is the same with ``guide=None``.
    ``demo_cfg``: the :class:`~retcore.demo.DemoConfig` of the data (its
    ``shortcut`` names the shortcut class). ``shuffled_labels``: also run the data
    randomisation test per seed (see the module docstring). ``warm_start``: epochs of the guided (and,
    with ``control``, the ``continued``) arm started from the same seed's baseline checkpoint.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from jobs._runs import find_trained_run
    from jobs.explain import run_explain
    from jobs.pipeline import finetune_demo
    from jobs.predict import run_predict
    from retcore.demo import make_demo_dataset
    from retcore.results.study import per_image
    from retcore.storage import connect
    from retcore.storage.runs import open_db, record_run
    from retcore.storage.writes import write_study_results
    from retcore.study import arm_metrics, paired_tests, seed_summary

    if base.guide is None:
        raise RetcoreError("the study needs a guide for its guided arm: pass --guide center|anatomy|mask")
    if demo_cfg.shortcut is None:
        raise RetcoreError("the shortcut study needs a planted shortcut: pass --shortcut <class>")
    if not seeds:
        raise RetcoreError("--seeds is empty: pass e.g. --seeds 0,1,2")
    arms = _arms(base, warm_start, control)  # validates --warm-start before anything is built
    db_path = open_db(db)
    manifest = make_demo_dataset(data_dir, demo_cfg, progress=True)
    config = study_run_config(base, demo_cfg, seeds=seeds, method=method, manifest=manifest,
                              shuffled_labels=shuffled_labels, warm_start=warm_start, control=control)
    frames: list[pd.DataFrame] = []
    result_rows: list[dict] = []
    with record_run(db_path, "study", config=config, command=command, seed=seeds[0]) as rec:
        total = len(seeds) * (len(arms) + int(shuffled_labels))
        checked: dict[int, str] = {}
        done = 0
        bar = tqdm(total=total, desc="study", unit="run", file=sys.stderr)
        for seed in seeds:
            for arm, arm_cfg in arms.items():  # the baseline first: a warm start needs its checkpoint
                cfg = dataclasses.replace(arm_cfg, seed=seed)
                if warm_start and arm != "baseline":
                    cfg = dataclasses.replace(cfg, checkpoint=str(find_trained_run(db_path, checked[seed]).checkpoint))
                tqdm.write(f"study: seed {seed} {arm}")
                bar.set_postfix(seed=seed, arm=arm)
                run_id = finetune_demo(cfg, manifest, db_path, results=results, force=force, command=command,
                                       label=f"study seed {seed} {arm}")
                run_predict(run_id, "test", db=db_path, batch_size=batch_size, device=cfg.device,
                            num_workers=cfg.num_workers, command=command)
                explain_id = run_explain(run_id, [method], "test", db=db_path, results=results, device=cfg.device,
                                         faithfulness_images=0, command=command)
                if arm == "baseline":
                    checked[seed] = run_id
                with connect(db_path, read_only=True) as con:
                    frame = per_image(con, run_id, method)
                frame = frame.assign(seed=seed, arm=arm, run_id=run_id)
                frames.append(frame)
                for metric, (value, n) in arm_metrics(frame, demo_cfg.shortcut).items():
                    result_rows.append({"study": "shortcut", "study_run_id": rec.run_id, "arm": arm, "seed": seed,
                                        "metric": metric, "value": value, "n": n, "run_id": run_id,
                                        "explain_run_id": explain_id})
                done += 1
                bar.update(1)
                rec.progress(done / total, f"seed {seed} {arm}")
            if shuffled_labels:
                tqdm.write(f"study: seed {seed} shuffled labels")
                _data_randomisation(arms["baseline"], seed, checked[seed], manifest, db_path, results=results,
                                    force=force, command=command)
                done += 1
                bar.update(1)
                rec.progress(done / total, f"seed {seed} shuffled labels")
        bar.close()
        per_image = pd.concat(frames, ignore_index=True)
        paired_frames = []
        for arm_a, arm_b in ARM_PAIRS:
            if arm_a not in arms or arm_b not in arms:
                continue
            paired = paired_tests(per_image, arm_a, arm_b).assign(pair=f"{arm_b}_vs_{arm_a}")
            paired_frames.append(paired)
            for row in paired.itertuples():
                for what in ("mean_diff", "statistic", "p_value", "n"):
                    result_rows.append({"study": "shortcut", "study_run_id": rec.run_id, "arm": row.pair,
                                        "seed": -1, "metric": f"{row.test}_{row.quantity}_{what}",
                                        "value": float(getattr(row, what)), "n": int(row.n), "run_id": None,
                                        "explain_run_id": None})
        paired = pd.concat(paired_frames, ignore_index=True)
        results_frame = pd.DataFrame(result_rows)
        write_study_results(db_path, results_frame)
        summary = seed_summary(results_frame[results_frame["seed"] >= 0])
        rec.update(config={**config, "summary": json.loads(summary.to_json(orient="records"))})
        typer.echo(_format_summary(summary, paired))
        if shuffled_labels:
            from jobs.explain import DEFAULT_METHODS, method_list
            from jobs.sanity import verdict_lines

            for seed, baseline in checked.items():
                for line in verdict_lines(db_path, baseline, seed, method_list(DEFAULT_METHODS), test="data"):
                    typer.echo(f"seed {seed} {line}")
        return rec.run_id


def _data_randomisation(baseline_cfg, seed: int, baseline_run: str, manifest: Path, db_path: Path, *,
                        results: Path | None, force: bool, command: str) -> str:
    """Fine-tune ``baseline_cfg`` with ``seed`` on shuffled labels (or reuse that run), then compare every
    method's maps with ``baseline_run``'s on the test images; return the shuffled run's id."""
    from jobs.explain import DEFAULT_METHODS, method_list
    from jobs.pipeline import finetune_demo
    from jobs.sanity import run_data_randomisation, shuffled_manifest

    cfg = dataclasses.replace(baseline_cfg, seed=seed)
    shuffled_run = finetune_demo(cfg, shuffled_manifest(manifest, seed), db_path, results=results, force=force,
                                 command=command, label=f"study seed {seed} shuffled labels")
    run_data_randomisation(baseline_run, shuffled_run, method_list(DEFAULT_METHODS), "test", db=db_path,
                           results=results, seed=seed, device=cfg.device, num_workers=cfg.num_workers,
                           command=command)
    return shuffled_run


def _format_summary(summary, paired) -> str:
    arms = list(dict.fromkeys(summary["arm"]))
    lines = ["metric".ljust(32) + "  ".join(f"{arm} (95% CI)".ljust(28) for arm in arms)]
    for metric, g in summary.groupby("metric", sort=False):
        cells = []
        for arm in arms:
            r = g[g["arm"] == arm]
            if r.empty:
                cells.append(" " * 28)
                continue
            r = r.iloc[0]
            cells.append(f"{r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}]".ljust(28))
        lines.append(f"{metric:<32}" + "  ".join(cells))
    lines.append("paired across images (b - a, for each pair 'b_vs_a'):")
    for r in paired.itertuples():
        lines.append(f"  {r.pair} {r.test} {r.quantity}: n={r.n} diff={r.mean_diff:+.3f} p={r.p_value:.3g}")
    return "\n".join(lines)


@app.command("shortcut")
@friendly_errors
def shortcut(
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = "0,1,2",
    guide: Annotated[str, typer.Option(help="Guide of the guided arm: center | anatomy | mask.")] = "anatomy",
    guide_form: Annotated[str, typer.Option(help="relevance | input_gradient | grad_x_input.")] = "relevance",
    guide_weight: Annotated[float, typer.Option(help="Lambda of the guide penalty.")] = 1.0,
    guide_radius: Annotated[float, typer.Option(help="--guide center: disk radius in FOV radii.")] = 0.6,
    method: Annotated[str, typer.Option(help="Explanation method the study measures (pixel-level: the marker is "
                                               "smaller than a token).")] = "lrp_pixels",
    shortcut_class: Annotated[str, typer.Option("--shortcut", help="Class carrying the marker.")] = "glaucoma",
    epochs: Annotated[int | None, typer.Option(help="Override the demo recipe's epochs.")] = None,
    n_images: int = 800,
    data_dir: Annotated[Path | None, typer.Option(help="Demo data (default data/demo-<shortcut>).",
                                                  show_default=False)] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if identical runs succeeded.")] = False,
    warm_start: Annotated[int | None, typer.Option(
        help="Start the guided arm from the same seed's baseline checkpoint and fine-tune this many epochs with "
             "the guide (a cheap arm; the baseline runs are unchanged).", show_default=False)] = None,
    control: Annotated[bool, typer.Option(
        help="With --warm-start: also run the 'continued' arm (the same epochs from the baseline, no guide).")] = True,
    shuffled_labels: Annotated[bool, typer.Option(
        "--shuffled-labels", help="Also fine-tune the baseline on shuffled labels per seed and compare every "
                                  "method's maps (data randomisation test; one more fine-tuning run per seed)."
    )] = False,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Baseline vs guided fine-tuning on the demo set with a planted shortcut, over several seeds."""
    options = dict(locals())  # every option by name; jobs.rerun parses a rerun command into the same dict
    set_threads()
    cfg, demo_cfg, seed_list, data_folder = shortcut_inputs(options)
    try:
        cfg.guide_spec()
    except ValueError as exc:
        raise RetcoreError(str(exc)) from None
    run_shortcut_study(cfg, demo_cfg, seeds=seed_list, method=method, data_dir=data_folder, db=db, results=results,
                       force=force, shuffled_labels=shuffled_labels, warm_start=warm_start, control=control,
                       command=command_line())

if __name__ == "__main__":
    app()
