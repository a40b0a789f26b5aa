"""Runs, their classes, splits, methods, configuration and training curves."""
from __future__ import annotations

from typing import Any

import pandas as pd

from retcore.errors import RetcoreError
from retcore.results.executor import Source, columns, frame, tables

__all__ = [
    "dataset_roots",
    "epochs",
    "finetune_run",
    "jobs",
    "live_status",
    "run_classes",
    "run_img_size",
    "run_methods",
    "run_out_dir",
    "run_splits",
    "runs",
    "split_methods",
    "trained_runs",
]

_SPLIT_ORDER = {"test": 0, "val": 1, "train": 2}


def live_status(runs: pd.DataFrame) -> pd.DataFrame:
    """Show a ``running`` run whose heartbeat is older than ``STALE_AFTER_S`` as ``interrupted``.

    Derived from the current time after the read (nothing is written: the next job
    records it); ``recorded_status`` keeps the stored value. Needs columns status,
    heartbeat_at, started_at.
    """
    from retcore.storage.runs import stale_cutoff

    runs = runs.copy()
    runs["recorded_status"] = runs["status"]
    if runs.empty:
        return runs
    last = pd.to_datetime(runs["heartbeat_at"]).fillna(pd.to_datetime(runs["started_at"]))
    cutoff = pd.Timestamp(stale_cutoff())
    runs.loc[(runs["status"] == "running") & (last < cutoff), "status"] = "interrupted"
    return runs


def runs(q: Source) -> pd.DataFrame:
    """Every run, newest first, with status (a silent ``running`` run shows ``interrupted``) and live progress."""
    return live_status(frame(
        q, "SELECT run_id, job, status, progress, progress_note, started_at, finished_at, heartbeat_at, model, "
           "parent_run_id, error FROM runs ORDER BY started_at DESC"))


def trained_runs(q: Source) -> pd.DataFrame:
    """Fine-tuning runs that have predictions: run_id, model, status, started_at, label (for a selector)."""
    out = live_status(frame(
        q, "SELECT r.run_id, r.model, r.status, r.started_at, r.heartbeat_at FROM runs r WHERE r.job = 'finetune' "
           "AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.run_id) ORDER BY r.started_at DESC"
    )).drop(columns=["heartbeat_at", "recorded_status"])
    out["label"] = [f"{r} · {m}" if isinstance(m, str) and m else r for r, m in zip(out["run_id"], out["model"])]
    return out


def jobs(q: Source) -> pd.DataFrame:
    """Every run with its configuration, command and log (the Jobs page); status as in :func:`runs`.

    ``seconds`` is the wall time so far; ``parent_out_dir`` the parent run's output folder
    (where an explain or predict run's log lies); ``log_path`` is NULL before schema v4.
    """
    log = "r.log_path" if "log_path" in columns(q, "runs") else "NULL::VARCHAR AS log_path"
    return live_status(frame(
        q, "SELECT r.run_id, r.job, r.status, r.started_at, r.finished_at, r.heartbeat_at, "
           "date_diff('millisecond', r.started_at, coalesce(r.finished_at, r.heartbeat_at)) / 1000.0 AS seconds, "
           "r.progress, r.progress_note, r.parent_run_id, r.model, r.dataset_id, r.seed, r.config, r.command, "
           f"r.checkpoint, r.out_dir, r.code_version, r.package_versions, r.error, {log}, p.out_dir AS parent_out_dir "
           "FROM runs r LEFT JOIN runs p ON p.run_id = r.parent_run_id ORDER BY r.started_at DESC"))


_RUN_COLUMNS = ("run_id", "job", "parent_run_id", "model", "dataset_id", "code_version", "started_at", "status")


def finetune_run(q: Source, run: str, split: str, where: str = "the database") -> dict[str, Any]:
    """The fine-tuning run ``run`` as a dict of ``_RUN_COLUMNS``.

    ``'latest'`` = the newest finetune run with predictions on ``split``; a predict or
    explain run id stands for its fine-tuned parent. ``where`` names the database in
    errors. Raises ``RetcoreError`` for an unknown run.
    """
    cols = ", ".join(_RUN_COLUMNS)
    if run == "latest":
        row = frame(q, f"SELECT {cols} FROM runs r WHERE job = 'finetune' AND EXISTS (SELECT 1 FROM predictions p "
                       "WHERE p.run_id = r.run_id AND p.split = ?) ORDER BY started_at DESC LIMIT 1", (split,))
        if row.empty:
            raise RetcoreError(f"no run in {where} has predictions for split {split!r}; "
                               "run `retcore predict --run RUN` first")
    else:
        row = frame(q, f"SELECT {cols} FROM runs WHERE run_id = ?", (run,))
        if row.empty:
            raise RetcoreError(f"no run {run!r} in {where}; pass a finetune run id (see the dashboard) "
                               "or --run latest")
        if row["job"].iloc[0] != "finetune" and row["parent_run_id"].iloc[0]:  # export the fine-tuned parent
            parent = frame(q, f"SELECT {cols} FROM runs WHERE run_id = ?", (row["parent_run_id"].iloc[0],))
            row = parent if not parent.empty else row
    record = row.iloc[0]
    return {c: None if pd.isna(record[c]) else record[c] for c in _RUN_COLUMNS}


def run_splits(q: Source, run: str) -> list[str]:
    """Splits with predictions of ``run`` (test, val, train, then others)."""
    splits = frame(q, "SELECT DISTINCT split FROM predictions WHERE run_id = ?", (run,))["split"].dropna().tolist()
    return sorted(splits, key=lambda s: (_SPLIT_ORDER.get(s, 9), s))


def run_methods(q: Source, run: str) -> list[str]:
    """Explanation methods with maps or zone scores for ``run``, sorted (empty before ``retcore explain``).

    With zone summaries (schema v7), the methods with maps or zone summaries: jobs write maps and
    zone scores together, and reading the methods of millions of zone-score rows is slow.
    """
    have = tables(q)
    if not {"explanations", "zone_scores"} <= have:
        return []
    zones = "zone_scores"
    if "zone_summaries" in have and not frame(q, "SELECT 1 FROM zone_summaries WHERE run_id = ? LIMIT 1",
                                              (run,)).empty:
        zones = "zone_summaries"
    return sorted(frame(q, "SELECT DISTINCT method FROM explanations WHERE run_id = ? UNION "
                           f"SELECT DISTINCT method FROM {zones} WHERE run_id = ?", (run, run))["method"].tolist())


def split_methods(q: Source, run: str, split: str) -> list[str]:
    """Explanation methods with maps of images of ``run``'s ``split``, sorted."""
    if "explanations" not in tables(q):
        return []
    return frame(q, "SELECT DISTINCT e.method FROM explanations e JOIN predictions p ON p.run_id = e.run_id "
                    "AND p.image_id = e.image_id AND p.split = ? WHERE e.run_id = ? ORDER BY e.method",
                 (split, run))["method"].tolist()


def run_classes(q: Source, run: str) -> list[str]:
    """The run's classes in the model's order (its dataset's class list); without a dataset
    record, the sorted classes seen in its predictions."""
    row = frame(q, "SELECT d.classes FROM runs r JOIN datasets d ON d.dataset_id = r.dataset_id "
                   "WHERE r.run_id = ?", (run,))
    if not row.empty and row["classes"].iloc[0] is not None and len(row["classes"].iloc[0]):
        return [str(c) for c in row["classes"].iloc[0]]
    seen = frame(q, "SELECT label AS c FROM predictions WHERE run_id = ? AND label IS NOT NULL UNION "
                    "SELECT pred FROM predictions WHERE run_id = ? ORDER BY 1", (run, run))
    return [str(c) for c in seen["c"]]


def dataset_roots(q: Source) -> pd.DataFrame:
    """dataset_id, root, kind of every registered dataset."""
    return frame(q, "SELECT dataset_id, root, kind FROM datasets")


def epochs(q: Source, run: str) -> pd.DataFrame:
    """Training curve of ``run``: one row per epoch, every ``epochs`` column but run_id."""
    if "epochs" not in tables(q):
        return pd.DataFrame()
    return frame(q, "SELECT * EXCLUDE (run_id) FROM epochs WHERE run_id = ? ORDER BY epoch", (run,))


def run_img_size(q: Source, run: str) -> int:
    """The model's input side of ``run`` in pixels (its maps' size, else its config, else 224)."""
    if "explanations" in tables(q):
        size = frame(q, "SELECT max(heatmap_h) AS s FROM explanations WHERE run_id = ?", (run,))["s"]
        if len(size) and pd.notna(size.iloc[0]):
            return int(size.iloc[0])
    cfg = frame(q, "SELECT json_extract(config, '$.finetune.img_size')::INTEGER AS s FROM runs WHERE run_id = ?",
                (run,))
    if len(cfg) and pd.notna(cfg["s"].iloc[0]):
        return int(cfg["s"].iloc[0])
    return 224


def run_out_dir(q: Source, run: str) -> str | None:
    """The run's output folder (checkpoints), as recorded."""
    out = frame(q, "SELECT out_dir FROM runs WHERE run_id = ?", (run,))["out_dir"]
    return str(out.iloc[0]) if len(out) and isinstance(out.iloc[0], str) else None
