"""Prediction shards: what each rank of a sharded ``retcore predict`` writes, and the merge.

A rank writes the rows of its share of a split to one Parquet file under
``<results>/shards/<run>/predict-<split>/`` (written to a temporary name, then renamed, so a
killed rank leaves no half file). :func:`merge_predictions` loads every shard of a split into
the database in one transaction (``write_predictions`` replaces the split's rows, keyed by
image), with the split's metrics and summaries; a second merge writes the same rows again, so
nothing is written twice. Images without a row in any shard (a crashed rank) are named, and a
rerun of the same command predicts only them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["SHARD_COLUMNS", "merge_predictions", "read_shards", "shard_dir", "write_shard"]

SHARD_COLUMNS = ["image_id", "label", "probs", "pred", "confidence", "correct"]


def shard_dir(results: Path, run_id: str, split: str) -> Path:
    """Where the prediction shards of ``run_id``'s ``split`` live under a results folder."""
    return Path(results) / "shards" / run_id / f"predict-{split}"


def write_shard(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write one rank's rows (columns :data:`SHARD_COLUMNS`) atomically as ``<name>.parquet``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    tmp = folder / f".{name}.parquet.tmp"
    frame[SHARD_COLUMNS].to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def read_shards(folders: list[Path]) -> pd.DataFrame:
    """Every shard row under ``folders``, one per image (a later file's row wins: a rerun's)."""
    files = sorted((f for d in folders if Path(d).is_dir() for f in Path(d).glob("*.parquet")),
                   key=lambda f: (f.stat().st_mtime_ns, f.name))
    if not files:
        return pd.DataFrame(columns=SHARD_COLUMNS)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.drop_duplicates("image_id", keep="last").reset_index(drop=True)


def merge_predictions(db_path: Path, run_id: str, split: str, classes: list[str], image_ids: list[str],
                      folders: list[Path], *, predict_run_id: str) -> pd.DataFrame:
    """Load the shards of ``split`` into the database: predictions (one transaction, replacing the
    split's rows), metrics and summaries. Returns the rows merged.

    Raises ``DataError`` naming the missing images when a shard lacks some of ``image_ids``.
    """
    import numpy as np

    from jobs.summarize import summarize_split
    from retcore.errors import DataError
    from retcore.metrics import classification_report
    from retcore.storage.writes import write_metrics, write_predictions

    rows = read_shards(folders)
    rows = rows[rows["image_id"].isin(set(image_ids))]
    missing = sorted(set(image_ids) - set(rows["image_id"]))
    if missing:
        raise DataError(f"{len(missing)} of {len(image_ids)} {split} images have no prediction shard (e.g. "
                        f"{missing[0]}): a rank stopped early; rerun the same predict command (it predicts only "
                        "those) or pass the other nodes' folders with --from")
    write_predictions(db_path, run_id, split, rows, predict_run_id=predict_run_id)
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(lab, -1) if isinstance(lab, str) else -1 for lab in rows["label"]])
    known = labels >= 0
    if known.any():
        probs = np.stack([np.asarray(p, dtype=np.float64) for p in rows["probs"]])
        report = classification_report(labels[known], probs[known], classes)
        write_metrics(db_path, run_id, split, report.rows(), report.confusion, classes)
    summarize_split(db_path, run_id, split)
    return rows
