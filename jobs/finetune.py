"""``retcore finetune``: fine-tune a ViT (RETFound recipe) and record the run.

Writes the run, its dataset and images, skipped files, one ``epochs`` row per
epoch and the validation metrics of the best checkpoint. Checkpoints go to
``results/runs/<run_id>/``; ``--resume RUN`` continues a killed run.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm.auto import tqdm

from jobs._common import (
    DbOption,
    ResultsOption,
    command_line,
    friendly_errors,
    job_argv,
    launch_torchrun,
    results_dir,
    set_threads,
)
from retcore.errors import DataError, RetcoreError
from retcore.train.config import FinetuneConfig

__all__ = ["finetune_run_config", "main", "options_finetune_config", "options_run_config", "run_finetune"]


def finetune_run_config(cfg: FinetuneConfig, data: Path, *, val: float = 0.15, test: float = 0.15,
                        split_seed: int = 0, patient_regex: str | None = None, world_size: int = 1) -> dict:
    """The ``runs.config`` of a fine-tuning run: two runs with equal configs are the same experiment.
    A data-parallel run records its ``world_size`` (the global batch is ``batch_size x world_size``)."""
    from retcore.data import DEFAULT_PATIENT_REGEX

    config = {"finetune": {**cfg.to_dict(), "effective_lr": cfg.effective_lr(world_size)},
              "data": str(Path(data).resolve()), "val": val, "test": test,
              "split_seed": split_seed, "patient_regex": patient_regex or DEFAULT_PATIENT_REGEX}
    if world_size > 1:
        config["world_size"] = world_size
    return config


def options_finetune_config(options: Mapping[str, Any]) -> FinetuneConfig:
    """The :class:`FinetuneConfig` of ``retcore finetune`` options (parameter name -> value).

    An option named like a config field sets it; two are spelled differently on the
    command line: ``--auto-augment none`` is ``auto_augment=None`` and
    ``--crop-scale-min S`` is ``crop_scale=(S, 1.0)``. Missing options keep the
    config's defaults. :mod:`jobs.rerun` inverts this to rebuild a run's command.
    """
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"auto_augment", "crop_scale"}
    kwargs: dict[str, Any] = {k: v for k, v in options.items() if k in fields}
    if "auto_augment" in options:
        augment = options["auto_augment"]
        kwargs["auto_augment"] = None if augment is None or str(augment).lower() == "none" else augment
    if "crop_scale_min" in options:
        kwargs["crop_scale"] = (options["crop_scale_min"], 1.0)
    return FinetuneConfig(**kwargs)


def options_run_config(options: Mapping[str, Any]) -> dict:
    """The ``runs.config`` that ``retcore finetune`` with ``options`` records (without ``--resume``)."""
    return finetune_run_config(options_finetune_config(options), options["data"], val=options["val"],
                               test=options["test"], split_seed=options["split_seed"],
                               patient_regex=options["patient_regex"], world_size=options.get("nproc") or 1)


def _check_model_inputs(cfg) -> None:
    """The model name is registered and a local ``--checkpoint`` file exists (nothing is loaded)."""
    from retcore.models.checkpoint.hub import HUB_PREFIX
    from retcore.models.checkpoint.read import check_checkpoint_path
    from retcore.models.registry import MODEL_REGISTRY

    MODEL_REGISTRY.check([cfg.model])
    if cfg.checkpoint and not str(cfg.checkpoint).startswith(HUB_PREFIX):
        check_checkpoint_path(cfg.checkpoint)


def run_finetune(cfg: FinetuneConfig, data: Path, *, db: Path | None = None, results: Path | None = None,
                 run_id: str | None = None, resume: bool = False, strict: bool = False,
                 val: float = 0.15, test: float = 0.15, split_seed: int = 0,
                 patient_regex: str | None = None, command: str = "", reuse_dataset: bool = False) -> str:
    """Run one fine-tuning job end to end; return its run id.

    ``reuse_dataset``: take the images an earlier ingest registered for the same
    source and split settings instead of decoding every file again (the
    pipeline's ingest stage has just checked them).
    """
    from torch.utils.data import Subset  # noqa: F401  (import torch lazily for a fast --help)

    from jobs._dataset import prepare_dataset
    from retcore.data import DEFAULT_PATIENT_REGEX
    from retcore.results.lookups import finetune_record
    from retcore.storage import connect
    from retcore.storage.runs import new_run_id, open_db, record_run
    from retcore.storage.writes import write_epoch, write_metrics
    from retcore.train.distributed import broadcast, init_distributed
    from retcore.train.finetune import fit

    w = init_distributed(cfg.device)
    if not w.main:
        return _follow_rank0()
    db_path = open_db(db)
    if resume:
        if run_id is None:
            raise RetcoreError("--resume needs the run id: retcore finetune --resume RUN")
        with connect(db_path, read_only=True) as con:
            row = finetune_record(con, run_id)
        if row is None:
            raise RetcoreError(f"no finetune run {run_id} in {db_path}; list runs in the dashboard")
        saved = json.loads(row.config)
        cfg = FinetuneConfig.from_dict(saved["finetune"])
        data = Path(saved["data"])
        val, test, split_seed = saved["val"], saved["test"], saved["split_seed"]
        patient_regex = saved["patient_regex"]
        out_dir = Path(row.out_dir)
    else:
        run_id = run_id or new_run_id("finetune")
        out_dir = results_dir(db, results).resolve() / "runs" / run_id
    patient_regex = patient_regex or DEFAULT_PATIENT_REGEX
    _check_model_inputs(cfg)  # before the dataset is read: a typo is reported at once
    config = finetune_run_config(cfg, data, val=val, test=test, split_seed=split_seed, patient_regex=patient_regex,
                                 world_size=w.size)

    with record_run(db_path, "finetune", config=config, command=command, run_id=run_id, model=cfg.model,
                    seed=cfg.seed, out_dir=str(out_dir)) as rec:
        try:
            prepared = prepare_dataset(db_path, Path(data), run_id=run_id, val=val, test=test,
                                       split_seed=split_seed, patient_regex=patient_regex, strict=strict,
                                       include_conflicting=cfg.include_conflicting, reuse=reuse_dataset)
            rec.update(dataset_id=prepared.dataset_id)
            records = prepared.records
            if cfg.eye != "both":
                records = [r for r in records if r.eye == cfg.eye]
            train = [r for r in records if r.split == "train"]
            val_records = [r for r in records if r.split == "val"]
            if not train or not val_records:
                raise DataError(
                    f"{data} has {len(train)} training and {len(val_records)} validation images "
                    f"(eye={cfg.eye}); add images or change --val/--eye"
                )
            classes = prepared.classes
            model, train_set, val_set = _build(cfg, train, val_records, classes, data)
        except BaseException:
            broadcast(None)  # the other ranks stop with rank 0
            raise
        meta = {"model": cfg.model, "num_classes": len(classes), "class_names": classes,
                "img_size": cfg.img_size, "global_pool": cfg.global_pool, "run_id": run_id,
                "dataset_id": prepared.dataset_id}
        broadcast({"cfg": cfg, "train": train, "val": val_records, "classes": classes, "data": str(data),
                   "out_dir": str(out_dir), "meta": meta, "resume": resume, "run_id": run_id})
        tqdm.write(f"run {run_id}: {len(train)} train / {len(val_records)} val images, "
                   f"{len(classes)} classes, model {cfg.model}, {cfg.epochs} epochs -> {out_dir}")

        def on_progress(fraction: float, note: str) -> None:
            rec.progress(fraction, note)

        def on_epoch(result) -> None:
            overall = result.report.overall if result.report else {}
            write_epoch(db_path, run_id, {
                "epoch": result.epoch, "train_loss": result.train_loss, "val_loss": result.val_loss,
                "lr": result.lr, "val_accuracy": overall.get("accuracy"), "val_macro_f1": overall.get("macro_f1"),
                "val_macro_auroc": overall.get("macro_auroc"), "val_kappa": overall.get("kappa"),
                "val_score": result.score, "is_best": result.is_best, "seconds": result.seconds,
                "guide_penalty": result.guide_penalty,
            })
            if result.is_best and result.report is not None:
                write_metrics(db_path, run_id, "val", result.report.rows(), result.report.confusion, classes)
            tqdm.write(f"epoch {result.epoch + 1}/{cfg.epochs} loss {result.train_loss:.4f} "
                       f"val_acc {overall.get('accuracy', float('nan')):.3f} score {result.score:.3f}"
                       + (f" guide {result.guide_penalty:.3f}" if result.guide_penalty is not None else "")
                       + (" *" if result.is_best else ""))

        fitted = fit(model, train_set, val_set, classes, cfg, out_dir, meta=meta, resume=resume,
                     on_epoch=on_epoch, on_progress=on_progress, bars=functools.partial(tqdm, file=sys.stderr))
        rec.update(checkpoint=str(fitted.best_checkpoint))
        tqdm.write(f"best epoch {fitted.best_epoch + 1} score {fitted.best_score:.3f}: {fitted.best_checkpoint}")
    return run_id


def _build(cfg: FinetuneConfig, train: list, val_records: list, classes: list[str], data: Path | str):
    """``(model, train_set, val_set)`` of a run: the model seeded by ``cfg.seed`` (every rank builds
    the same one), the datasets with the recipe's transforms."""
    from retcore.data import FundusDataset, build_eval_transform, build_train_transform
    from retcore.models import create_model
    from retcore.train.finetune import seed_everything

    seed_everything(cfg.seed)  # the initial weights (head, and the whole model without a checkpoint) follow --seed
    model = create_model(cfg.model, len(classes), checkpoint=cfg.checkpoint, global_pool=cfg.global_pool,
                         img_size=cfg.img_size, drop_path=cfg.drop_path)
    train_tf = build_train_transform(cfg.img_size, auto_augment=cfg.auto_augment, re_prob=cfg.re_prob,
                                     scale=cfg.crop_scale)
    eval_tf = build_eval_transform(cfg.img_size)
    spec = cfg.guide_spec()
    if spec is not None:
        from retcore.guide import GuidedDataset, JointTrainTransform

        if spec.kind == "mask" and not any(r.mask_path for r in train):
            raise DataError(f"--guide mask needs masks, but no training image of {data} has a mask_path; "
                            "add a mask_path column to the manifest or use --guide center|anatomy")
        joint_tf = JointTrainTransform(cfg.img_size, scale=cfg.crop_scale, auto_augment=cfg.auto_augment is not None,
                                       re_prob=cfg.re_prob)
        train_set = GuidedDataset(train, classes, spec, joint_tf)
    else:
        train_set = FundusDataset(train, classes, eval_tf if cfg.freeze_backbone else train_tf)
    return model, train_set, FundusDataset(val_records, classes, eval_tf)


def _follow_rank0() -> str:
    """A rank other than 0: train on what rank 0 prepared (it alone reads and writes the database);
    return the run id."""
    from retcore.train.distributed import broadcast, world
    from retcore.train.finetune import fit

    plan = broadcast(None)
    if plan is None:
        raise RetcoreError(f"rank {world().rank}: rank 0 stopped before training; its error says why")
    cfg = plan["cfg"]
    model, train_set, val_set = _build(cfg, plan["train"], plan["val"], plan["classes"], plan["data"])
    fit(model, train_set, val_set, plan["classes"], cfg, plan["out_dir"], meta=plan["meta"], resume=plan["resume"])
    return plan["run_id"]


@friendly_errors
def main(
    data: Annotated[Path | None, typer.Option(help="Class folders, split folders or a CSV manifest.")] = None,
    model: Annotated[str, typer.Option(help="Model name (retfound_mae, retfound_dinov2, vit_base, demo, ...).")] = "retfound_mae",
    checkpoint: Annotated[str | None, typer.Option(help="Pretrained weights: a .pth path or hub:<repo>.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 50,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    blr: Annotated[float, typer.Option(help="Base lr; lr = blr * batch / 256.")] = 5e-3,
    lr: Annotated[float | None, typer.Option(help="Absolute lr (overrides --blr).")] = None,
    min_lr: float = 1e-6,
    warmup_epochs: float = 10.0,
    weight_decay: float = 0.05,
    layer_decay: float = 0.65,
    drop_path: float = 0.2,
    smoothing: float = 0.1,
    auto_augment: Annotated[str, typer.Option(help="timm RandAugment spec, or 'none'.")] = "rand-m9-mstd0.5-inc1",
    re_prob: float = 0.25,
    crop_scale_min: float = 0.08,
    img_size: int = 224,
    global_pool: Annotated[str, typer.Option(help="'avg' (RETFound) or 'token' (CLS head).")] = "avg",
    eye: Annotated[str, typer.Option(help="left | right | both.")] = "both",
    freeze_backbone: Annotated[bool, typer.Option(help="Linear probe on cached features (ViT-L on a CPU).")] = False,
    include_conflicting: Annotated[bool, typer.Option(help="Train on duplicates whose labels disagree.")] = False,
    seed: int = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the patient-grouped split.")] = 0,
    val: Annotated[float, typer.Option(help="Validation share when the data has no split.")] = 0.15,
    test: Annotated[float, typer.Option(help="Test share when the data has no split.")] = 0.15,
    patient_regex: Annotated[str | None, typer.Option(help="Regex with a (?P<patient>...) group.")] = None,
    num_workers: int = 2,
    device: str = "auto",
    amp: Annotated[bool, typer.Option(help="bf16 autocast on GPU and on CPUs with native bf16.")] = True,
    strict: Annotated[bool, typer.Option(help="Stop at the first bad image instead of skipping it.")] = False,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Name the run (default: generated).")] = None,
    resume: Annotated[str | None, typer.Option(help="Continue the run with this id from its last checkpoint.")] = None,
    guide: Annotated[str | None, typer.Option(help="Guided fine-tuning: penalise relevance outside "
                                              "center | anatomy | mask regions.")] = None,
    guide_weight: Annotated[float, typer.Option(help="Lambda of the guide penalty (a share in 0..1).")] = 1.0,
    guide_form: Annotated[str, typer.Option(help="relevance (gradient x attention rollout) | input_gradient "
                                            "(Right for the Right Reasons) | grad_x_input (pixel-level "
                                            "gradient x input of the true class).")] = "relevance",
    guide_radius: Annotated[float, typer.Option(help="--guide center: disk radius in FOV radii.")] = 0.6,
    guide_mask_bits: Annotated[int, typer.Option(help="--guide mask: mask bits that mark allowed pixels.")] = 1,
    nproc: Annotated[int, typer.Option(help="Data-parallel processes on this machine (launches torchrun; "
                                            "--batch-size is per process). For many machines run torchrun "
                                            "yourself: README, 'Running on many GPUs and machines'.")] = 1,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Fine-tune a ViT on a fundus dataset with the RETFound recipe."""
    import os

    options = dict(locals())  # every option by name; jobs.rerun parses a rerun command into the same dict
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(launch_torchrun("finetune", nproc, job_argv("finetune")))
    set_threads()
    if eye not in ("left", "right", "both"):
        raise RetcoreError(f"--eye {eye!r} is not one of left, right, both")
    if data is None and resume is None:
        raise RetcoreError("--data is required (a class-folder root, split-folder root or CSV manifest)")
    cfg = options_finetune_config(options)
    try:
        cfg.guide_spec()
    except ValueError as exc:
        raise RetcoreError(str(exc)) from None
    try:
        run_finetune(cfg, data, db=db, results=results, run_id=resume or run_id, resume=resume is not None,
                     strict=strict, val=val, test=test, split_seed=split_seed, patient_regex=patient_regex,
                     command=command_line())
    finally:
        from retcore.train.distributed import shutdown

        shutdown()


if __name__ == "__main__":
    typer.run(main)
