"""``retcore pipeline``: ingest -> finetune -> predict (val, test) -> explain, for any dataset.

``--data SRC`` takes every source ``finetune`` accepts (class folders, split
folders, a CSV manifest) and ``--model`` every registered model; ``--demo``
builds the demo dataset first and uses the demo recipe, then runs the same
stages. Each stage is skipped when its result is already in the database:

* ingest: the source lists the same files that were registered (or recorded as
  bad files) under the same split settings;
* finetune: a succeeded run with an identical configuration is reused; an
  identical run that was interrupted or failed after an epoch is resumed from
  its ``checkpoint-last.pth``;
* predict: the run has a prediction for every image of the split;
* explain: computes only the (image, method) pairs that are missing.

So a rerun after a kill continues where it stopped. ``--force STAGE``
(repeatable) redoes a stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors, set_threads
from jobs.explain import DEFAULT_METHODS

__all__ = ["DEMO_FINETUNE", "STAGES", "finetune_demo", "finetune_stage", "ingest_stage", "main", "predict_stage"]

STAGES: tuple[str, ...] = ("ingest", "finetune", "predict", "explain")

# Hyper-parameters of the demo run: a small ViT trained from scratch on ~560
# images on a 2-core CPU. No pretrained weights, so no layer-wise lr decay.
DEMO_FINETUNE = dict(
    model="demo", epochs=40, warmup_epochs=3, batch_size=32, blr=2e-3, layer_decay=1.0,
    weight_decay=0.05, drop_path=0.0, smoothing=0.1, auto_augment=None, re_prob=0.0,
    crop_scale=(0.7, 1.0), min_lr=1e-5,
)


def _split_settings(val: float, test: float, split_seed: int, patient_regex: str | None) -> dict:
    from retcore.data import DEFAULT_PATIENT_REGEX

    return {"val": val, "test": test, "split_seed": split_seed, "patient_regex": patient_regex or DEFAULT_PATIENT_REGEX}


def ingest_stage(source: Path, db_path: Path, *, split: dict, strict: bool = False, force: bool = False,
                 command: str = "", results: Path | None = None) -> str:
    """Register ``source`` (decode, hash, split) unless the same files are registered; return the dataset id."""
    from jobs._dataset import prepare_dataset, registered_dataset
    from jobs.ingest import ingest_run_config
    from retcore.storage.runs import new_run_id, record_run

    if not force:
        found = registered_dataset(db_path, source, **split)
        if found is not None:
            typer.echo(f"ingest: reusing dataset {found.dataset_id} ({len(found.records)} usable images, "
                       f"{found.n_errors} bad files recorded); --force ingest re-reads every file")
            return found.dataset_id
    run_id = new_run_id("ingest")
    config = ingest_run_config(source, split, strict)
    with record_run(db_path, "ingest", config=config, command=command, run_id=run_id, results=results) as rec:
        prepared = prepare_dataset(db_path, source, run_id=run_id, strict=strict, val=split["val"],
                                   test=split["test"], split_seed=split["split_seed"],
                                   patient_regex=split["patient_regex"])
        rec.update(dataset_id=prepared.dataset_id)
    typer.echo(f"ingest: dataset {prepared.dataset_id}: {len(prepared.records)} usable images, "
               f"{prepared.n_errors} bad files skipped, {prepared.n_duplicates} duplicates")
    return prepared.dataset_id


def _matching_runs(db_path: Path, config: dict) -> list[tuple[str, str, str | None]]:
    """``(run_id, status, out_dir)`` of finetune runs with exactly ``config``, newest first."""
    import json

    from retcore.results.lookups import finetune_runs
    from retcore.storage import connect

    with connect(db_path, read_only=True) as con:
        rows = finetune_runs(con)
    wanted = json.loads(json.dumps(config))
    return [(r, s, o) for r, s, o, saved in rows.itertuples(index=False) if json.loads(saved) == wanted]


def finetune_stage(cfg, source: Path, db_path: Path, *, results: Path | None, split: dict, force: bool = False,
                   strict: bool = False, command: str = "", label: str = "finetune",
                   reuse_dataset: bool = True) -> str:
    """Fine-tune ``cfg`` on ``source``, reuse an identical succeeded run, or resume an interrupted one."""
    from jobs.finetune import finetune_run_config, run_finetune
    from retcore.storage.runs import mark_stale_runs

    config = finetune_run_config(cfg, source, **split)
    if not force:
        mark_stale_runs(db_path)
        for run_id, status, out_dir in _matching_runs(db_path, config):
            if status == "succeeded":
                typer.echo(f"{label}: reusing finetune run {run_id} (--force finetune retrains)")
                return run_id
            if status == "running":
                from retcore.errors import RetcoreError

                raise RetcoreError(f"finetune run {run_id} with these settings is running in another process; "
                                   "wait for it or pass --force finetune")
            if out_dir and (Path(out_dir) / "checkpoint-last.pth").is_file():
                typer.echo(f"{label}: resuming {status} finetune run {run_id} from its last epoch")
                return run_finetune(cfg, source, db=db_path, results=results, run_id=run_id, resume=True,
                                    strict=strict, command=command, reuse_dataset=reuse_dataset, **split)
    return run_finetune(cfg, source, db=db_path, results=results, strict=strict, command=command,
                        reuse_dataset=reuse_dataset, **split)


def finetune_demo(cfg, manifest: Path, db_path: Path, *, results: Path | None, force: bool, command: str,
                  label: str = "finetune") -> str:
    """Fine-tune ``cfg`` on the demo ``manifest`` (default split settings), or reuse/resume an identical run."""
    return finetune_stage(cfg, manifest, db_path, results=results, split=_split_settings(0.15, 0.15, 0, None),
                          force=force, command=command, label=label, reuse_dataset=False)


def predict_stage(run_id: str, splits: list[str], db_path: Path, *, results: Path | None, force: bool = False,
                  batch_size: int = 32, device: str = "auto", num_workers: int = 2, command: str = "") -> None:
    """Predict each split unless the run already has a prediction for every image of it."""
    from jobs._runs import find_trained_run, run_images
    from jobs.predict import run_predict
    from retcore.results.lookups import predict_skipped_paths, prediction_count
    from retcore.storage import connect

    trained = find_trained_run(db_path, run_id)
    eye = trained.config.get("finetune", {}).get("eye", "both")
    for split in splits:
        paths = run_images(db_path, trained.dataset_id, split, eye=eye)["path"].astype(str)
        n_images = len(paths)
        with connect(db_path, read_only=True) as con:
            n_pred = prediction_count(con, run_id, split)
            # files that broke after ingest: predict skipped them once; they would only be skipped again
            unreadable = int(paths.isin(predict_skipped_paths(con, run_id)).sum())
        if n_images == 0:
            typer.echo(f"predict: the dataset has no {split!r} images; skipped")
            continue
        if n_pred + unreadable >= n_images and n_pred > 0 and not force:
            skipped = f", {unreadable} unreadable file(s) skipped (see ingest_errors)" if unreadable else ""
            typer.echo(f"predict: run {run_id} already has {n_pred} {split} predictions{skipped} "
                       "(--force predict redoes them)")
            continue
        run_predict(run_id, split, db=db_path, results=results, batch_size=batch_size, device=device,
                    num_workers=num_workers, command=command)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@friendly_errors
def main(
    data: Annotated[Path | None, typer.Option(help="Class folders, split folders or a CSV manifest.",
                                              show_default=False)] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Build and use the demo dataset and recipe instead.")] = False,
    model: Annotated[str | None, typer.Option(help="Registered model (default: retfound_mae; demo with --demo).",
                                              show_default=False)] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Pretrained weights: a .pth path or hub:<repo>.")] = None,
    freeze_backbone: Annotated[bool, typer.Option(help="Linear probe on cached features (ViT-L on a CPU).")] = False,
    epochs: Annotated[int | None, typer.Option(help="Fine-tuning epochs (default: the recipe's).", min=1,
                                               show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step in every stage (default: the recipe's "
                                                   "for training, 32 predict, 8 explain).", show_default=False)] = None,
    img_size: Annotated[int | None, typer.Option(help="Input side in pixels (default 224).", show_default=False)] = None,
    seed: int = 0,
    methods: Annotated[str, typer.Option(help="Explanation methods ('' = skip explain).")] = DEFAULT_METHODS,
    predict_splits: Annotated[str, typer.Option(help="Splits to predict.")] = "val,test",
    explain_splits: Annotated[str, typer.Option(help="Splits to explain.")] = "test",
    faithfulness_images: Annotated[int, typer.Option(
        help="Images for the per-image faithfulness curves (-1 = every explained image, 0 = skip); "
             "32 keeps `make demo` and a CPU ViT-L run affordable.")] = 32,
    force: Annotated[list[str] | None, typer.Option(help="Redo a stage even if its result exists: "
                                                    "ingest | finetune | predict | explain (repeatable).")] = None,
    val: Annotated[float, typer.Option(help="Validation share when the data has no split.")] = 0.15,
    test: Annotated[float, typer.Option(help="Test share when the data has no split.")] = 0.15,
    split_seed: Annotated[int, typer.Option(help="Seed of the patient-grouped split.")] = 0,
    patient_regex: Annotated[str | None, typer.Option(help="Regex with a (?P<patient>...) group.")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first bad image instead of skipping it.")] = False,
    device: str = "auto",
    num_workers: Annotated[int, typer.Option(help="DataLoader workers (decoding, cropping) per stage.")] = 2,
    data_dir: Annotated[Path | None, typer.Option(help="--demo: where the demo dataset lives "
                                                  "(default data/demo-<shortcut>).", show_default=False)] = None,
    shortcut: Annotated[str, typer.Option(help="--demo: class carrying the planted marker, or 'none'.")] = "glaucoma",
    n_images: Annotated[int, typer.Option(help="--demo: images in the demo dataset.")] = 800,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Ingest -> fine-tune -> predict val/test -> explain test, on any dataset (or the demo with --demo)."""
    from retcore.errors import RetcoreError
    from retcore.storage.runs import open_db
    from retcore.train.config import FinetuneConfig

    set_threads()
    if demo == (data is not None):
        raise RetcoreError("pass exactly one of --data SRC (a class-folder root, split-folder root or CSV) or --demo")
    redo = set(force or [])
    unknown = redo - set(STAGES)
    if unknown:
        raise RetcoreError(f"--force {', '.join(sorted(unknown))}: stages are {', '.join(STAGES)}")
    db_path = open_db(db)
    command = command_line()
    if demo:
        from retcore.demo import DemoConfig, make_demo_dataset

        source = make_demo_dataset(data_dir or Path(f"data/demo-{shortcut}"),
                                   DemoConfig(n_images=n_images, seed=seed,
                                              shortcut=None if shortcut == "none" else shortcut), progress=True)
        params = dict(DEMO_FINETUNE, seed=seed)
        split = _split_settings(0.15, 0.15, 0, None)
    else:
        source = Path(data)  # type: ignore[arg-type]
        if not source.exists():
            raise RetcoreError(f"--data {source} does not exist; pass a class-folder root, split-folder root or CSV")
        params = dict(seed=seed)
        split = _split_settings(val, test, split_seed, patient_regex)
    overrides = {"model": model, "checkpoint": checkpoint, "epochs": epochs, "batch_size": batch_size,
                 "img_size": img_size}
    params.update({k: v for k, v in overrides.items() if v is not None})
    if freeze_backbone:
        params["freeze_backbone"] = True
    params.update(device=device, num_workers=num_workers)
    cfg = FinetuneConfig(**params)
    if cfg.model.startswith("retfound") and not cfg.checkpoint:
        typer.echo(f"note: no --checkpoint: {cfg.model} starts from random weights, not RETFound's")

    ingest_stage(source, db_path, split=split, strict=strict, force="ingest" in redo, command=command,
                 results=results)
    run_id = finetune_stage(cfg, source, db_path, results=results, split=split, force="finetune" in redo,
                            strict=strict, command=command)
    step = batch_size or 32
    predict_stage(run_id, _names(predict_splits), db_path, results=results, force="predict" in redo,
                  batch_size=step, device=device, num_workers=num_workers, command=command)
    from jobs.explain import run_explain

    chosen = _names(methods)
    for split_name in _names(explain_splits) if chosen else []:
        run_explain(run_id, chosen, split_name, db=db_path, results=results, batch_size=batch_size or 8,
                    device=device, faithfulness_images=faithfulness_images, num_workers=num_workers,
                    recompute="explain" in redo, command=command)
    typer.echo(f"pipeline done: run {run_id} in {db_path}")


if __name__ == "__main__":
    typer.run(main)
