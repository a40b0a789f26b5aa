"""``retcore predict``: probabilities, predicted class, confidence and correctness
for every image of a split, plus the split's metrics and confusion matrix."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs._common import (
    DbOption,
    RunResultsOption,
    command_line,
    friendly_errors,
    job_argv,
    launch_torchrun,
    set_threads,
)

__all__ = ["main", "options_run_config", "predict_run_config", "run_predict"]


def _square(size: int | list[int]) -> int:
    return int(size[0]) if isinstance(size, (list, tuple)) else int(size)


def predict_run_config(run_id: str, split: str, batch_size: int, device: str, world_size: int = 1) -> dict:
    """The ``runs.config`` of a predict run of finetune run ``run_id`` (an id, not ``latest``); a sharded
    run records its ``world_size``."""
    config = {"run": run_id, "split": split, "batch_size": batch_size, "device": device}
    if world_size > 1:
        config["world_size"] = world_size
    return config


def options_run_config(options: Mapping[str, Any]) -> dict:
    """The ``runs.config`` that ``retcore predict`` with ``options`` records (``--run`` given as an id)."""
    return predict_run_config(options["run"], options["split"], options["batch_size"], options["device"],
                              world_size=options.get("nproc") or 1)


def run_predict(run: str, split: str = "test", *, db: Path | None = None, results: Path | None = None,
                batch_size: int = 32, device: str = "auto", num_workers: int = 2, command: str = "") -> str:
    """Predict ``split`` with the best checkpoint of finetune run ``run``; return the run id.

    Images are decoded and FOV-cropped in ``num_workers`` DataLoader workers. The
    predict run's folder (its log) is ``results`` (default: the fine-tuning run's
    results folder).
    """
    import numpy as np
    import pandas as pd
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from jobs._runs import load_trained_model, results_root_of, split_images
    from jobs.summarize import summarize_split
    from retcore.data import FundusDataset, ImageRecord, build_eval_transform, collate_skipping
    from retcore.errors import DataError
    from retcore.metrics import classification_report
    from retcore.storage.runs import open_db, record_run
    from retcore.storage.writes import write_ingest_errors, write_metrics, write_predictions
    from retcore.train.engine import predict_probs, resolve_device

    from retcore.train.distributed import init_distributed

    if init_distributed(device).distributed:
        return _run_predict_sharded(run, split, db=db, results=results, batch_size=batch_size, device=device,
                                    num_workers=num_workers, command=command)
    db_path = open_db(db, must_exist=True)
    trained, images = split_images(db_path, run, split)
    config = predict_run_config(trained.run_id, split, batch_size, device)
    out = results_root_of(trained, db, results)
    with record_run(db_path, "predict", config=config, command=command, parent_run_id=trained.run_id,
                    out_dir=str(out)) as rec:
        torch_device = resolve_device(device)
        model, meta = load_trained_model(trained.checkpoint, device=str(torch_device))
        classes = list(meta["class_names"])
        records = [ImageRecord(path=p, label=l, split=s, patient_id=None, eye=e, mask_path=m)
                   for p, l, s, e, m in images[["path", "label", "split", "eye", "mask_path"]].itertuples(index=False)]
        dataset = FundusDataset(records, classes, build_eval_transform(_square(meta["img_size"]), normalize=False),
                                skip_unreadable=True)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skipping,
                            pin_memory=torch_device.type == "cuda")
        bar = tqdm(total=len(loader), desc=f"predict {split}", unit="batch")
        failed: list[tuple[int, str]] = []

        def on_step(step: int) -> None:
            bar.update(1)
            rec.progress((step + 1) / len(loader), f"{split}: batch {step + 1}/{len(loader)}")

        probs, labels, indices = predict_probs(model, loader, device=torch_device, on_step=on_step,
                                               on_failed=failed.extend)
        bar.close()
        if failed:  # missing or unreadable since ingest: skipped and recorded, like explain does
            skipped = [(records[i].path, reason) for i, reason in sorted(failed)]
            write_ingest_errors(db_path, skipped, run_id=rec.run_id, dataset_id=trained.dataset_id)
            for path, reason in skipped:
                tqdm.write(f"skipped {path}: {reason}")
            if len(failed) == len(records):
                raise DataError(f"none of the {len(records)} images of split {split!r} can be read (e.g. "
                                f"{skipped[0][1]}): restore the dataset folder, or point the database at its "
                                "new place with `retcore relocate`")
        order = images.iloc[indices]
        pred = probs.argmax(axis=1)
        frame = pd.DataFrame({
            "image_id": order["image_id"].to_numpy(),
            "label": order["label"].to_numpy(),
            "probs": [row.tolist() for row in probs],
            "pred": [classes[i] for i in pred],
            "confidence": probs.max(axis=1),
            "correct": np.where(labels >= 0, pred == labels, None),
        })
        write_predictions(db_path, trained.run_id, split, frame, predict_run_id=rec.run_id)
        known = labels >= 0
        if known.any():
            report = classification_report(labels[known], probs[known], classes)
            write_metrics(db_path, trained.run_id, split, report.rows(), report.confusion, classes)
            tqdm.write(f"{trained.run_id} {split}: accuracy {report.overall['accuracy']:.3f}, "
                       f"macro F1 {report.overall['macro_f1']:.3f}, kappa {report.overall['kappa']:.3f} "
                       f"({int(known.sum())} images)")
        rec.progress(0.99, f"{split}: summaries")
        summarize_split(db_path, trained.run_id, split)  # counts, samples, report; zone summaries of the new targets
    return trained.run_id


def _predict_share(checkpoint: str, images, device: str, batch_size: int, num_workers: int):
    """Predict ``images`` (rows of ``run_images``) with a checkpoint: the shard rows
    (:data:`jobs._shards.SHARD_COLUMNS`) and the class names."""
    import numpy as np
    import pandas as pd
    from torch.utils.data import DataLoader

    from tqdm.auto import tqdm

    from jobs._runs import load_trained_model
    from retcore.data import FundusDataset, ImageRecord, build_eval_transform, collate_skipping
    from retcore.train.engine import predict_probs, resolve_device

    torch_device = resolve_device(device)
    model, meta = load_trained_model(Path(checkpoint), device=str(torch_device))
    classes = list(meta["class_names"])
    if images.empty:
        return pd.DataFrame(columns=["image_id", "label", "probs", "pred", "confidence", "correct"]), classes
    records = [ImageRecord(path=p, label=l, split=s, patient_id=None, eye=e, mask_path=m)
               for p, l, s, e, m in images[["path", "label", "split", "eye", "mask_path"]].itertuples(index=False)]
    dataset = FundusDataset(records, classes, build_eval_transform(_square(meta["img_size"]), normalize=False),
                            skip_unreadable=True)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skipping,
                        pin_memory=torch_device.type == "cuda")

    def on_failed(failed: list[tuple[int, str]]) -> None:  # not in the shard: tried again on the next run
        for i, reason in failed:
            tqdm.write(f"skipped {records[i].path}: {reason}")

    probs, labels, indices = predict_probs(model, loader, device=torch_device, on_failed=on_failed)
    if len(indices) == 0:
        return pd.DataFrame(columns=["image_id", "label", "probs", "pred", "confidence", "correct"]), classes
    order = images.iloc[indices]
    pred = probs.argmax(axis=1)
    return pd.DataFrame({
        "image_id": order["image_id"].to_numpy(), "label": order["label"].to_numpy(),
        "probs": [row.tolist() for row in probs], "pred": [classes[i] for i in pred],
        "confidence": probs.max(axis=1), "correct": np.where(labels >= 0, pred == labels, None),
    }), classes


def _run_predict_sharded(run: str, split: str, *, db: Path | None, results: Path | None, batch_size: int,
                         device: str, num_workers: int, command: str) -> str:
    """``retcore predict`` as one rank of ``torchrun``: rank 0 reads the split and records the run, every
    rank predicts images ``rank::world`` not yet in a shard and writes its Parquet shard, and rank 0
    merges the shards into the database (:mod:`jobs._shards`)."""
    from tqdm.auto import tqdm

    from jobs._runs import results_root_of, split_images
    from jobs._shards import merge_predictions, read_shards, shard_dir, write_shard
    from retcore.errors import RetcoreError
    from retcore.storage.runs import new_run_id, open_db, record_run
    from retcore.train.distributed import barrier, broadcast, world

    w = world()
    if not w.main:
        plan = broadcast(None)
        if plan is None:
            raise RetcoreError(f"rank {w.rank}: rank 0 stopped before predicting; its error says why")
        share = plan["todo"].iloc[w.rank::w.size]
        rows, _ = _predict_share(plan["checkpoint"], share, device, batch_size, num_workers)
        write_shard(Path(plan["folder"]), f"{plan['predict_run_id']}-rank{w.rank}", rows)
        barrier()
        return plan["run_id"]
    try:
        db_path = open_db(db, must_exist=True)
        trained, images = split_images(db_path, run, split)
        out = results_root_of(trained, db, results)
        folder = shard_dir(out, trained.run_id, split)
        done = set(read_shards([folder])["image_id"])
        todo = images[~images["image_id"].isin(done)].reset_index(drop=True)
    except BaseException:
        broadcast(None)  # the other ranks stop with rank 0
        raise
    config = predict_run_config(trained.run_id, split, batch_size, device, world_size=w.size)
    predict_run_id = new_run_id("predict")
    with record_run(db_path, "predict", config=config, command=command, parent_run_id=trained.run_id,
                    out_dir=str(out), run_id=predict_run_id) as rec:
        broadcast({"run_id": trained.run_id, "checkpoint": str(trained.checkpoint), "todo": todo,
                   "folder": str(folder), "predict_run_id": predict_run_id})
        tqdm.write(f"predict {split}: {len(todo)} of {len(images)} images to predict on {w.size} ranks "
                   f"({len(images) - len(todo)} already in shards under {folder})")
        rows, classes = _predict_share(str(trained.checkpoint), todo.iloc[0::w.size], device, batch_size,
                                       num_workers)
        write_shard(folder, f"{predict_run_id}-rank0", rows)
        barrier()  # every rank's shard is on disk
        rec.progress(0.9, f"{split}: merging shards")
        merged = merge_predictions(db_path, trained.run_id, split, classes, images["image_id"].tolist(), [folder],
                                   predict_run_id=rec.run_id)
        tqdm.write(f"{trained.run_id} {split}: {len(merged)} predictions merged from {folder}")
    return trained.run_id


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    batch_size: int = 32,
    device: str = "auto",
    num_workers: Annotated[int, typer.Option(help="DataLoader workers that decode and crop images.")] = 2,
    db: DbOption = None,
    nproc: Annotated[int, typer.Option(help="Processes on this machine (launches torchrun); each predicts a "
                                            "share and writes a Parquet shard, rank 0 merges them.")] = 1,
    results: RunResultsOption = None,
) -> None:
    """Predict every image of a split with a fine-tuned run and store metrics."""
    import os

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(launch_torchrun("predict", nproc, job_argv("predict")))
    set_threads()
    try:
        run_predict(run, split, db=db, results=results, batch_size=batch_size, device=device,
                    num_workers=num_workers, command=command_line())
    finally:
        from retcore.train.distributed import shutdown

        shutdown()


if __name__ == "__main__":
    typer.run(main)
