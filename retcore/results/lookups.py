"""What jobs look up before they work: the fine-tuning run and images they work on, and what
an earlier (possibly interrupted) run already stored, so a rerun computes only what is missing.

Every function takes an executor first (:mod:`retcore.results.executor`; jobs pass the
read-only connection of ``retcore.storage.connect(path, read_only=True)``). Values are as
stored: paths relative to their roots, ``config`` as JSON text; the jobs resolve them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from retcore.results.executor import Source, frame

__all__ = [
    "FinetuneRecord",
    "dataset_images",
    "dataset_root",
    "explained_pairs",
    "finetune_record",
    "finetune_runs",
    "has_predictions",
    "ingest_error_paths",
    "latest_checkpointed_run",
    "predicted_classes",
    "prediction_count",
    "registered_images",
    "sanity_done",
]


@dataclass(frozen=True)
class FinetuneRecord:
    """A fine-tuning run's row of ``runs`` as jobs need it.

    run_id; checkpoint: path of its checkpoint (None until it finished an epoch / failed);
    dataset_id; config: the recorded ``runs.config`` (JSON text); out_dir: its output folder.
    """

    run_id: str
    checkpoint: str | None
    dataset_id: str | None
    config: str
    out_dir: str | None


_RECORD = "SELECT run_id, checkpoint, dataset_id, config, out_dir FROM runs"


def _record(rows: pd.DataFrame) -> FinetuneRecord | None:
    if rows.empty:
        return None
    row = rows.iloc[0]
    return FinetuneRecord(**{k: None if row[k] is None or (not isinstance(row[k], str) and pd.isna(row[k]))
                             else row[k] for k in ("run_id", "checkpoint", "dataset_id", "config", "out_dir")})


def finetune_record(q: Source, run_id: str) -> FinetuneRecord | None:
    """The fine-tuning run ``run_id`` (any status), or None when no finetune run has that id."""
    return _record(frame(q, f"{_RECORD} WHERE run_id = ? AND job = 'finetune'", (run_id,)))


def latest_checkpointed_run(q: Source) -> FinetuneRecord | None:
    """The newest fine-tuning run (by ``started_at``) that recorded a checkpoint, or None."""
    return _record(frame(q, f"{_RECORD} WHERE job = 'finetune' AND checkpoint IS NOT NULL "
                            "ORDER BY started_at DESC LIMIT 1"))


def finetune_runs(q: Source) -> pd.DataFrame:
    """Every fine-tuning run, newest first: run_id, status (as recorded), out_dir, config (JSON text);
    missing values are None."""
    rows = frame(q, "SELECT run_id, status, out_dir, config FROM runs WHERE job = 'finetune' "
                    "ORDER BY started_at DESC").astype(object)
    return rows.where(rows.notna(), None)


def dataset_root(q: Source, dataset_id: str) -> str | None:
    """The root folder recorded for ``dataset_id`` (as stored), or None when it is not registered."""
    out = frame(q, "SELECT root FROM datasets WHERE dataset_id = ?", (dataset_id,))["root"]
    return out.iloc[0] if len(out) else None


def dataset_images(q: Source, dataset_id: str, split: str | None = None, *, eye: str = "both") -> pd.DataFrame:
    """Usable images of ``dataset_id`` ordered by image_id: image_id, path, label, split, eye, mask_path.

    Images whose label conflicts with a duplicate's are left out; ``split`` None = every
    split; ``eye`` 'left' / 'right' keeps that eye ('both' keeps all). Paths are as stored
    (relative to :func:`dataset_root` unless absolute).
    """
    sql = ("SELECT image_id, path, label, split, eye, mask_path FROM images WHERE dataset_id = ? "
           "AND NOT coalesce(conflicting_label, false)")
    params: list = [dataset_id]
    if split is not None:
        sql += " AND split = ?"
        params.append(split)
    if eye != "both":
        sql += " AND eye = ?"
        params.append(eye)
    return frame(q, sql + " ORDER BY image_id", params)


def registered_images(q: Source, dataset_id: str) -> pd.DataFrame | None:
    """Every ``images`` row of ``dataset_id`` (all columns, duplicates and conflicts included),
    or None when the dataset is not registered."""
    if frame(q, "SELECT count(*) AS n FROM datasets WHERE dataset_id = ?", (dataset_id,))["n"].iloc[0] == 0:
        return None
    return frame(q, "SELECT * FROM images WHERE dataset_id = ?", (dataset_id,))


def ingest_error_paths(q: Source, dataset_id: str) -> set[str]:
    """Stored paths of the files of ``dataset_id`` recorded as unreadable (``ingest_errors``)."""
    return set(frame(q, "SELECT DISTINCT path FROM ingest_errors WHERE dataset_id = ?", (dataset_id,))["path"])


def prediction_count(q: Source, run: str, split: str) -> int:
    """Number of stored predictions of ``run`` on ``split``."""
    return int(frame(q, "SELECT count(*) AS n FROM predictions WHERE run_id = ? AND split = ?",
                     (run, split))["n"].iloc[0])


def predict_skipped_paths(q: Source, run: str) -> set[str]:
    """Image paths that ``retcore predict`` runs of ``run`` skipped as missing or unreadable
    (``ingest_errors`` rows of predict runs whose parent is ``run``)."""
    rows = frame(q, "SELECT DISTINCT e.path FROM ingest_errors e JOIN runs r ON e.run_id = r.run_id "
                    "WHERE r.parent_run_id = ? AND r.job = 'predict'", (run,))
    return set(rows["path"].astype(str))


def has_predictions(q: Source, run: str, split: str) -> bool:
    """True when ``run`` has at least one stored prediction on ``split``."""
    return not frame(q, "SELECT 1 AS one FROM predictions WHERE run_id = ? AND split = ? LIMIT 1",
                     (run, split)).empty


def predicted_classes(q: Source, run: str, split: str) -> dict[str, str]:
    """The stored predicted class (``predictions.pred``) of each image of ``run``'s ``split``, by image_id."""
    rows = frame(q, "SELECT image_id, pred FROM predictions WHERE run_id = ? AND split = ?", (run, split))
    return dict(zip(rows["image_id"], rows["pred"]))


def explained_pairs(q: Source, run: str, target_kind: str) -> set[tuple[str, str]]:
    """(image_id, method) pairs of ``run`` with a stored map explaining ``target_kind`` ('pred' or 'label')."""
    rows = frame(q, "SELECT image_id, method FROM explanations WHERE run_id = ? AND target_kind = ?",
                 (run, target_kind))
    return set(zip(rows["image_id"], rows["method"]))


def sanity_done(q: Source, run: str, seed: int) -> set[tuple[str, str, str, int]]:
    """(image_id, method, mode, step) rows stored in ``sanity_checks`` for ``run`` with ``seed``."""
    rows = frame(q, "SELECT image_id, method, mode, step FROM sanity_checks WHERE run_id = ? AND seed = ?",
                 (run, seed))
    return {(i, m, mo, int(s)) for i, m, mo, s in zip(rows["image_id"], rows["method"], rows["mode"], rows["step"])}
