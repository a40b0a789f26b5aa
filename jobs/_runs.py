"""Looking up a fine-tuned run: its config, checkpoint, model and images."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retcore.errors import CheckpointError, RetcoreError
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
        if run_id == "latest":
            row = con.execute(
                "SELECT run_id, checkpoint, dataset_id, config, out_dir FROM runs WHERE job = 'finetune' "
                "AND checkpoint IS NOT NULL ORDER BY started_at DESC LIMIT 1").fetchone()
        else:
            row = con.execute(
                "SELECT run_id, checkpoint, dataset_id, config, out_dir FROM runs WHERE run_id = ? AND job = 'finetune'",
                [run_id]).fetchone()
    if row is None:
        raise RetcoreError(f"no finetune run {run_id!r} in {db}; run `retcore finetune` first or check --db")
    if row[1] is None:
        raise RetcoreError(f"run {row[0]} has no checkpoint (it failed, was interrupted or is still running); resume or rerun it")
    return TrainedRun(row[0], Path(row[1]), row[2], json.loads(row[3]), Path(row[4]) if row[4] else None)


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

    query = ("SELECT image_id, path, label, split, eye, mask_path FROM images WHERE dataset_id = ? "
             "AND NOT coalesce(conflicting_label, false)")
    params: list[Any] = [dataset_id]
    if split is not None:
        query += " AND split = ?"
        params.append(split)
    if eye != "both":
        query += " AND eye = ?"
        params.append(eye)
    with connect(db, read_only=True) as con:
        root = con.execute("SELECT root FROM datasets WHERE dataset_id = ?", [dataset_id]).fetchone()
        frame = con.execute(query + " ORDER BY image_id", params).df()
    base = root_folder(root[0]) if root else None
    frame["path"] = [resolve_stored(p, base) for p in frame["path"]]
    frame["mask_path"] = [resolve_stored(p, base) for p in frame["mask_path"]]
    return frame
