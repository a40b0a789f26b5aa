"""Writes jobs make: datasets and images, ingest errors, epochs, predictions, metrics.

Each function opens its own short connection and writes in one transaction,
so a killed job leaves either all of a call's rows or none of them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retcore.storage.db import connect, transaction

__all__ = [
    "append_frames",
    "image_id_for",
    "write_epoch",
    "write_ingest_errors",
    "write_metrics",
    "write_study_results",
    "write_predictions",
    "register_dataset",
    "relocate_roots",
    "write_explanation_batch",
    "write_explanation_shards",
    "write_faithfulness",
    "write_faithfulness_images",
    "write_faithfulness_summary",
    "write_image_analysis",
    "write_report",
    "write_sanity_checks",
    "write_summaries",
]

DB = str | os.PathLike[str] | None


def image_id_for(dataset_id: str, path: str, root: str) -> str:
    """Stable image id: a hash of the dataset id and the path relative to its root."""
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        rel = path
    return hashlib.sha1(f"{dataset_id}/{rel}".encode()).hexdigest()[:16]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def register_dataset(
    db: DB,
    *,
    dataset_id: str,
    root: str,
    kind: str,
    classes: Sequence[str],
    images: pd.DataFrame,
) -> None:
    """Insert or refresh a dataset and its images.

    ``images`` has columns ``image_id, path, sha256, label, split, patient_id,
    eye, width, height, mask_path, duplicate_of, conflicting_label`` and
    optionally ``gt_disc_x, gt_disc_y, gt_disc_r`` and ``extra`` (dict).
    """
    frame = images.sort_values("image_id", kind="stable").reset_index(drop=True)  # image-id order, as readers sample
    for col in ("gt_disc_x", "gt_disc_y", "gt_disc_r", "mask_path", "duplicate_of", "patient_id", "eye",
                "split", "sha256", "width", "height"):
        if col not in frame:
            frame[col] = None
    if "conflicting_label" not in frame:
        frame["conflicting_label"] = False
    frame["extra"] = [json.dumps({k: _json_safe(v) for k, v in (e or {}).items()}) for e in
                      frame.get("extra", [None] * len(frame))]
    frame["dataset_id"] = dataset_id
    columns = ["image_id", "dataset_id", "path", "sha256", "label", "split", "patient_id", "eye", "width",
               "height", "mask_path", "duplicate_of", "conflicting_label", "gt_disc_x", "gt_disc_y",
               "gt_disc_r", "extra"]
    frame = frame[columns]
    with connect(db) as con, transaction(con):
        con.execute(
            "INSERT OR REPLACE INTO datasets (dataset_id, root, kind, classes, n_images) VALUES (?, ?, ?, ?, ?)",
            [dataset_id, root, kind, list(classes), len(frame)],
        )
        con.register("new_images", frame)
        con.execute(f"INSERT OR REPLACE INTO images ({', '.join(columns)}) SELECT {', '.join(columns)} FROM new_images")
        con.unregister("new_images")


def write_ingest_errors(db: DB, errors: Sequence[tuple[str, str]], *, run_id: str, dataset_id: str) -> None:
    """Record skipped files as ``(path, reason)`` rows for this run."""
    if not errors:
        return
    with connect(db) as con, transaction(con):
        con.executemany(
            "INSERT INTO ingest_errors (path, reason, run_id, dataset_id) VALUES (?, ?, ?, ?)",
            [(str(p), r, run_id, dataset_id) for p, r in errors],
        )


def write_epoch(db: DB, run_id: str, row: dict[str, Any]) -> None:
    """Insert or replace one ``epochs`` row (keys are column names)."""
    row = {"run_id": run_id, **{k: _json_safe(v) for k, v in row.items()}}
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with connect(db) as con, transaction(con):
        con.execute(f"INSERT OR REPLACE INTO epochs ({names}) VALUES ({marks})", list(row.values()))


def write_predictions(db: DB, run_id: str, split: str, frame: pd.DataFrame, *, predict_run_id: str) -> None:
    """Replace this run's predictions on ``split`` with ``frame``, in image-id order.

    ``frame`` columns: ``image_id, label, probs (list[float]), pred, confidence, correct``.
    The split's summaries (schema v7) are deleted in the same transaction; ``retcore predict``
    stores new ones (:func:`write_summaries`). Rows land sorted by image id, so the readers' samples
    (the first images by id, ``retcore.results.sample``) are a prefix DuckDB reads alone.
    """
    frame = frame.assign(run_id=run_id, split=split, predict_run_id=predict_run_id)
    cols = ["run_id", "image_id", "split", "label", "probs", "pred", "confidence", "correct", "predict_run_id"]
    frame = frame.sort_values("image_id", kind="stable")
    with connect(db) as con, transaction(con):
        con.execute("DELETE FROM predictions WHERE run_id = ? AND split = ?", [run_id, split])
        _drop_summaries(con, run_id, split=split)
        con.register("new_predictions", frame[cols])
        con.execute(f"INSERT OR REPLACE INTO predictions ({', '.join(cols)}) SELECT {', '.join(cols)} "
                    "FROM new_predictions")
        con.unregister("new_predictions")


def write_metrics(
    db: DB, run_id: str, split: str, rows: Sequence[tuple[str, str, float]],
    confusion: np.ndarray | None = None, class_names: Sequence[str] | None = None,
) -> None:
    """Replace the metrics (``(metric, class_name, value)``) and confusion matrix of a run/split."""
    with connect(db) as con, transaction(con):
        con.execute("DELETE FROM metrics WHERE run_id = ? AND split = ?", [run_id, split])
        con.executemany(
            "INSERT INTO metrics (run_id, split, metric, class_name, value) VALUES (?, ?, ?, ?, ?)",
            [(run_id, split, m, c, _json_safe(float(v))) for m, c, v in rows],
        )
        if confusion is not None and class_names is not None:
            con.execute("DELETE FROM confusion WHERE run_id = ? AND split = ?", [run_id, split])
            con.executemany(
                "INSERT INTO confusion (run_id, split, true_label, pred_label, count) VALUES (?, ?, ?, ?, ?)",
                [(run_id, split, t, p, int(confusion[i, j]))
                 for i, t in enumerate(class_names) for j, p in enumerate(class_names)],
            )



def _replace_rows(con, table: str, frame: pd.DataFrame, keys: Sequence[str]) -> None:
    """Delete the rows of ``table`` matching ``frame``'s keys, then insert ``frame``."""
    if frame.empty:
        return
    name = f"new_{table}"
    con.register(name, frame)
    match = " AND ".join(f"t.{k} = n.{k}" for k in keys)
    con.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM {name} n WHERE {match})")
    cols = ", ".join(frame.columns)
    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
    con.unregister(name)


def write_explanation_batch(
    db: DB, explanations: pd.DataFrame, zones: pd.DataFrame, localisation: pd.DataFrame
) -> None:
    """Write one batch of explanations with their zone scores and localisation, atomically.

    Rows with the same (run, image, method, target) are replaced, so a rerun
    never duplicates and a killed job leaves whole batches only.
    """
    with connect(db) as con, transaction(con):
        _write_explanations(con, explanations, zones, localisation)


def write_explanation_shards(db: DB, explanations: pd.DataFrame, zones: pd.DataFrame, localisation: pd.DataFrame,
                             landmarks: pd.DataFrame, quality: pd.DataFrame) -> None:
    """The merged shards of a sharded ``retcore explain`` in one transaction: explanations with
    their zone scores and localisation (as :func:`write_explanation_batch`) and the images' landmarks
    and quality (as :func:`write_image_analysis`). Rows with the same keys are replaced, so merging
    the same shards twice writes them once."""
    with connect(db) as con, transaction(con):
        _write_explanations(con, explanations, zones, localisation)
        _write_analysis(con, landmarks, quality)


def _write_explanations(con, explanations: pd.DataFrame, zones: pd.DataFrame, localisation: pd.DataFrame) -> None:
    key = ["run_id", "image_id", "method", "target"]
    for frame in (explanations, zones):
        if not frame.empty:
            for (run_id, method), part in frame.groupby(["run_id", "method"], sort=False):
                _drop_summaries(con, run_id, method=method, image_ids=part["image_id"].unique().tolist())
    _replace_rows(con, "explanations", explanations, key)
    _replace_rows(con, "zone_scores", zones, [*key, "zone_set", "zone"])
    _replace_rows(con, "localisation", localisation, [*key, "mask"])


def _write_analysis(con, landmarks: pd.DataFrame, quality: pd.DataFrame) -> None:
    _replace_rows(con, "landmarks", landmarks, ["image_id"])
    _replace_rows(con, "image_quality", quality, ["image_id", "metric"])


#: Summary tables (schema v7, ``retcore.results.summaries``) and whether rows carry a method.
SUMMARY_TABLES = {"class_counts": False, "sample_cutoffs": False, "zone_summaries": True, "gallery_rows": True,
                  "split_reports": True}


def _drop_summaries(con, run_id: str, *, split: str | None = None, method: str | None = None,
                    image_ids: Sequence[str] = ()) -> None:
    """Delete the summaries whose inputs a write changes: every summary of ``run_id``'s ``split``, or
    the zone summaries of ``run_id``'s ``method`` on the splits of ``image_ids`` (by their
    predictions). A no-op before schema v7."""
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for table, has_method in SUMMARY_TABLES.items():
        if table not in have:
            continue
        if split is not None:
            con.execute(f"DELETE FROM {table} WHERE run_id = ? AND split = ?", [run_id, split])
        elif method is not None and has_method:
            con.execute(f"DELETE FROM {table} WHERE run_id = ? AND method = ? AND split IN (SELECT DISTINCT split "
                        "FROM predictions WHERE run_id = ? AND image_id IN (SELECT unnest(?::VARCHAR[])))",
                        [run_id, method, run_id, list(image_ids)])


def write_summaries(db: DB, run_id: str, split: str, summaries: Iterable[Any]) -> int:
    """Store summaries of ``run_id``'s ``split`` in one transaction; returns the rows written.

    Each summary has ``table`` (a key of ``SUMMARY_TABLES`` but ``split_reports``), ``method``
    (zone summaries; else None) and the SELECT (``sql``, ``params``) whose rows it holds
    (``retcore.results.summaries.plan``): the table's rows of the run's split (and method) are
    replaced by the SELECT's, so stored summaries always equal the on-the-fly ones.
    """
    written = 0
    with connect(db) as con, transaction(con):
        for item in summaries:
            if item.table not in SUMMARY_TABLES or item.table == "split_reports":
                raise ValueError(f"{item.table!r} is not a summary table written from a SELECT")
            where, params = "run_id = ? AND split = ?", [run_id, split]
            if SUMMARY_TABLES[item.table]:
                where, params = where + " AND method = ?", [*params, item.method]
            con.execute(f"DELETE FROM {item.table} WHERE {where}", params)
            before = con.execute(f"SELECT count(*) FROM {item.table}").fetchone()[0]
            con.execute(f"INSERT INTO {item.table} BY NAME {item.sql}", list(item.params))
            written += con.execute(f"SELECT count(*) FROM {item.table}").fetchone()[0] - before
    return written


def write_report(db: DB, run_id: str, split: str, report: str, params: str, parts: dict[str, bytes], *,
                 source: str, current_source: Any, method: str = "") -> bool:
    """Store a report of ``run_id``'s ``split`` (``split_reports``: one row per part, its table as
    bytes) computed with ``params`` from inputs ``source``, replacing the same report and params;
    ``method``: the explanation method it reads ('' for none; new maps of it delete the report).

    ``current_source(con)`` gives the source as the database holds it now: when it differs (the
    predictions were rewritten while the report was computed) nothing is stored and False returned.
    """
    with connect(db) as con, transaction(con):
        if current_source(con) != source:
            return False
        con.execute("DELETE FROM split_reports WHERE run_id = ? AND split = ? AND method = ? AND report = ? "
                    "AND params = ?", [run_id, split, method, report, params])
        con.executemany("INSERT INTO split_reports (run_id, split, method, report, params, part, frame, source) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(run_id, split, method, report, params, part, data, source) for part, data in parts.items()])
    return True


def write_image_analysis(db: DB, landmarks: pd.DataFrame, quality: pd.DataFrame) -> None:
    """Per-image landmarks (one row per image) and quality metrics (long format), atomically."""
    with connect(db) as con, transaction(con):
        _write_analysis(con, landmarks, quality)


def write_faithfulness(db: DB, frame: pd.DataFrame) -> None:
    """Perturbation curves of one (run, split, method), replacing earlier ones."""
    with connect(db) as con, transaction(con):
        _replace_rows(con, "faithfulness", frame, ["run_id", "split", "method", "test", "fraction"])


def write_faithfulness_images(db: DB, curves: pd.DataFrame, aucs: pd.DataFrame) -> None:
    """One batch of per-image faithfulness: ``faithfulness_curves`` and ``faithfulness_aucs`` rows
    (schema v6), atomically, replacing rows with the same keys."""
    key = ["run_id", "split", "image_id", "method", "baseline", "unit", "test"]
    with connect(db) as con, transaction(con):
        _replace_rows(con, "faithfulness_curves", curves, [*key, "map", "fraction"])
        _replace_rows(con, "faithfulness_aucs", aucs, key)


def write_faithfulness_summary(db: DB, frame: pd.DataFrame) -> None:
    """Rows of ``faithfulness_summary`` (one per run, split, method, baseline, unit, test), replaced."""
    with connect(db) as con, transaction(con):
        _replace_rows(con, "faithfulness_summary", frame, ["run_id", "split", "method", "baseline", "unit", "test"])


def write_sanity_checks(db: DB, frame: pd.DataFrame) -> None:
    """Rows of ``sanity_checks`` (run_id, sanity_run_id, method, mode, seed, step, layer, image_id,
    target, spearman, ssim), replacing rows with the same (run_id, method, mode, seed, step, image_id)."""
    with connect(db) as con, transaction(con):
        _replace_rows(con, "sanity_checks", frame, ["run_id", "method", "mode", "seed", "step", "image_id"])


def write_study_results(db: DB, frame: pd.DataFrame) -> None:
    """Rows of ``study_results`` (study, study_run_id, arm, seed, metric, value, n, run_id,
    explain_run_id), replacing earlier rows with the same (study_run_id, arm, seed, metric)."""
    with connect(db) as con, transaction(con):
        _replace_rows(con, "study_results", frame, ["study_run_id", "arm", "seed", "metric"])


def relocate_roots(db: DB, *, data: Sequence[tuple[str, str]] = (),
                   results: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """Point a (copied) database at new folders: replace leading folders ``old -> new``.

    ``data`` pairs move dataset roots (``datasets.root``, and absolute image, mask and
    skipped-file paths written by older versions, and the ``data`` of run configs);
    ``results`` pairs move results folders (``runs.out_dir``, ``runs.checkpoint``,
    ``runs.log_path`` and absolute ``explanations.heatmap_path``). Paths stored
    relative to a root need no change. One transaction; returns rows changed per column.
    """
    from retcore.data.roots import rebase

    def move(value: str | None, pairs: Sequence[tuple[str, str]]) -> str | None:
        for old, new in pairs:
            moved = rebase(value, old, new)
            if moved != value:
                return moved
        return value

    targets = [("datasets", "dataset_id", "root", data), ("images", "image_id", "path", data),
               ("images", "image_id", "mask_path", data), ("ingest_errors", "rowid", "path", data),
               ("runs", "run_id", "out_dir", results), ("runs", "run_id", "checkpoint", results),
               ("runs", "run_id", "log_path", results),
               ("explanations", "rowid", "heatmap_path", results)]
    changed: dict[str, int] = {}
    with connect(db) as con, transaction(con):
        columns = {(t, c) for t, c in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns").fetchall()}
        for table, key, column, pairs in targets:
            if not pairs or (table, column) not in columns:
                continue
            rows = con.execute(f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL").fetchall()
            updates = [(move(value, pairs), k) for k, value in rows if move(value, pairs) != value]
            if updates:
                con.executemany(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", updates)
            changed[f"{table}.{column}"] = len(updates)
        if data:
            updates = []
            for run_id, config in con.execute("SELECT run_id, config FROM runs WHERE config IS NOT NULL").fetchall():
                parsed = json.loads(config)
                if isinstance(parsed, dict) and isinstance(parsed.get("data"), str):
                    moved = move(parsed["data"], data)
                    if moved != parsed["data"]:
                        updates.append((json.dumps({**parsed, "data": moved}), run_id))
            if updates:
                con.executemany("UPDATE runs SET config = ? WHERE run_id = ?", updates)
            changed["runs.config.data"] = len(updates)
    return changed


def append_frames(db: DB, frames: Iterable[tuple[str, Any]]) -> None:
    """Append rows to tables by column name, through one connection, then ``CHECKPOINT``.

    For building a database from prepared rows (``bench/dashboard.py``'s synthetic results):
    ``frames`` yields ``(table, rows)`` with rows a pandas DataFrame or an Arrow table whose
    column names are the table's (missing columns get their defaults); it may be a generator,
    so a large load holds one chunk at a time. Each append is its own statement (not one
    transaction); nothing is replaced or checked. The tables must exist (``storage.migrate``).
    """
    with connect(db) as con:
        known = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table, rows in frames:
            if table not in known:
                raise ValueError(f"no table {table!r} in {db}; append to one of {sorted(known)}")
            con.register("_append_rows", rows)
            try:
                con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _append_rows')
            finally:
                con.unregister("_append_rows")
        con.execute("CHECKPOINT")
