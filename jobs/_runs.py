"""Looking up a fine-tuned run: its config, checkpoint, model and images."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retcore.errors import CheckpointError, RetcoreError
from retcore.results.lookups import dataset_images, dataset_root, finetune_record, latest_checkpointed_run
from retcore.storage import connect

__all__ = ["TrainedRun", "find_trained_run", "load_trained_model", "run_images"]


@dataclass
class TrainedRun:
    """A succeeded fine-tuning run as recorded in ``runs``."""

    run_id: str
    checkpoint: Path
    dataset_id: str
    config: dict[str, Any]
    out_dir: Path | None = None

    @property
    def results_root(self) -> Path | None:
        """The results folder the run was written to (``<results>/runs/<run>`` -> ``<results>``)."""
        return self.out_dir.parents[1] if self.out_dir is not None else None


def find_trained_run(db: Path, run_id: str) -> TrainedRun:
    """The finetune run ``run_id`` (``latest`` = the newest that has a checkpoint)."""
    with connect(db, read_only=True) as con:
        row = latest_checkpointed_run(con) if run_id == "latest" else finetune_record(con, run_id)
    if row is None:
        raise RetcoreError(f"no finetune run {run_id!r} in {db}; run `retcore finetune` first or check --db")
    if row.checkpoint is None:
        raise RetcoreError(f"run {row.run_id} has no checkpoint (it failed, was interrupted or is still running); resume or rerun it")
    return TrainedRun(row.run_id, Path(row.checkpoint), row.dataset_id, json.loads(row.config),
                      Path(row.out_dir) if row.out_dir else None)


def load_trained_model(checkpoint: Path, *, device: str = "cpu"):
    """Rebuild the model of a retcore checkpoint; return ``(model in eval mode, meta)``.

    ``meta`` holds ``model_name``, ``class_names``, ``img_size``, ``global_pool``.
    """
    from retcore.models import model_from_checkpoint

    if not checkpoint.exists():
        raise CheckpointError(f"checkpoint {checkpoint} is missing; rerun `retcore finetune` or restore the file")
    model, meta = model_from_checkpoint(checkpoint)
    return model.to(device).eval(), meta


def run_images(db: Path, dataset_id: str, split: str | None, *, eye: str = "both") -> pd.DataFrame:
    """Images of ``dataset_id`` (one split, or all when ``split`` is None), ordered by id.

    ``path`` and ``mask_path`` are usable paths: stored relative paths are
    resolved against the dataset's root folder (``retcore relocate`` moves it).
    """
    from retcore.data.roots import resolve_stored, root_folder

    with connect(db, read_only=True) as con:
        root = dataset_root(con, dataset_id)
        frame = dataset_images(con, dataset_id, split, eye=eye)
    base = root_folder(root) if root is not None else None
    frame["path"] = [resolve_stored(p, base) for p in frame["path"]]
    frame["mask_path"] = [resolve_stored(p, base) for p in frame["mask_path"]]
    return frame


def split_images(db: Path, run: str, split: str) -> tuple[TrainedRun, pd.DataFrame]:
    """Fine-tuning run ``run`` (an id or ``latest``) and its ``split``'s images (its eye setting
    applied); ``DataError`` when the split has none."""
    from retcore.errors import DataError

    trained = find_trained_run(db, run)
    eye = trained.config.get("finetune", {}).get("eye", "both")
    images = run_images(db, trained.dataset_id, split, eye=eye)
    if images.empty:
        raise DataError(f"run {trained.run_id} has no {split!r} images (eye={eye}); pick --split train|val|test")
    return trained, images


def results_root_of(trained: TrainedRun, db: Path | None, results: Path | None) -> Path:
    """The results folder a job of ``trained`` writes under: ``--results``, else the run's own,
    else ``results/`` beside the database."""
    from jobs._common import results_dir

    return Path(results).resolve() if results is not None else (trained.results_root
                                                                or results_dir(db, None).resolve())
