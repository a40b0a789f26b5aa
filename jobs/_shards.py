"""Shards: what each rank of a sharded ``retcore predict`` or ``retcore explain`` writes, and the merges.

A rank writes the rows of its share of a split to one Parquet file under
``<results>/shards/<run>/predict-<split>/`` (written to a temporary name, then renamed, so a
killed rank leaves no half file). :func:`merge_predictions` loads every shard of a split into
the database in one transaction (``write_predictions`` replaces the split's rows, keyed by
image), with the split's metrics and summaries; a second merge writes the same rows again, so
nothing is written twice. Images without a row in any shard (a crashed rank) are named, and a
rerun of the same command predicts only them.

A rank of a sharded ``retcore explain`` writes, per batch, one Parquet file per table
(``explanations``, ``zone_scores``, ``localisation``, ``landmarks``, ``image_quality``,
``errors``) under ``<results>/shards/<run>/explain-<split>/<table>/``, beside its heatmap files.
:func:`merge_explanations` loads them into the database in one transaction, keyed by (image,
method, target) as a single-process run writes them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["EXPLAIN_TABLES", "SHARD_COLUMNS", "explain_shard_dir", "merge_explanations", "merge_predictions",
           "read_shards", "read_table_shards", "shard_dir", "write_explain_shards", "write_shard"]

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


#: Tables of an explain shard and the key columns a later row replaces an earlier one by.
EXPLAIN_TABLES = {
    "explanations": ["run_id", "image_id", "method", "target"],
    "zone_scores": ["run_id", "image_id", "method", "target", "zone_set", "zone"],
    "localisation": ["run_id", "image_id", "method", "target", "mask"],
    "landmarks": ["image_id"],
    "image_quality": ["image_id", "metric"],
    "errors": ["image_id"],
}


def explain_shard_dir(results: Path, run_id: str, split: str) -> Path:
    """Where the explain shards of ``run_id``'s ``split`` live under a results folder."""
    return Path(results) / "shards" / run_id / f"explain-{split}"


def write_explain_shards(folder: Path, name: str, rows) -> None:
    """Write one batch of a rank's explain rows (a ``jobs.explain._BatchRows``): one Parquet file
    ``<folder>/<table>/<name>.parquet`` per non-empty table, each atomically."""
    frames = {"explanations": rows.explanations, "zone_scores": rows.zones, "localisation": rows.localisation,
              "landmarks": rows.landmarks, "image_quality": rows.quality,
              "errors": pd.DataFrame(rows.skipped, columns=["image_id", "path", "reason"])}
    for table, frame in frames.items():
        if frame.empty:
            continue
        (folder / table).mkdir(parents=True, exist_ok=True)
        path = folder / table / f"{name}.parquet"
        tmp = folder / table / f".{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)


def read_table_shards(folders: list[Path], table: str) -> pd.DataFrame:
    """Every row of ``table`` in the explain shards under ``folders``, one per key (a later file's
    row wins: a rerun's)."""
    files = sorted((f for d in folders if (Path(d) / table).is_dir() for f in (Path(d) / table).glob("*.parquet")),
                   key=lambda f: (f.stat().st_mtime_ns, f.name))
    frames = [pd.read_parquet(f) for f in files]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates(EXPLAIN_TABLES[table], keep="last").reset_index(drop=True)


def merge_explanations(db_path: Path, run_id: str, targets: dict[str, int], methods: list[str], target_kind: str,
                       folders: list[Path], *, image_ids: list[str], explain_run_id: str,
                       dataset_id: str | None) -> tuple[int, list[tuple[str, str]]]:
    """Load the explain shards of one split into the database in one transaction: explanations,
    zone scores, localisation (keyed by image, method, target), landmarks and quality; unreadable
    images into ``ingest_errors``. Returns (explanations merged, [(path, reason) skipped]).

    Every (image, method) of ``image_ids`` with a target in ``targets`` must be in a shard, in the
    database already, or unreadable; otherwise ``DataError`` names the missing ones (a rank stopped
    early) and nothing is written.
    """
    from retcore.errors import DataError
    from retcore.results.lookups import explained_pairs
    from retcore.storage import connect
    from retcore.storage.writes import write_explanation_shards, write_ingest_errors

    tables = {t: read_table_shards(folders, t) for t in EXPLAIN_TABLES}
    wanted = set(image_ids)
    ex = tables["explanations"]
    if not ex.empty:
        ex = ex[(ex["run_id"] == run_id) & ex["image_id"].isin(wanted) & ex["method"].isin(methods)
                & (ex["target_kind"] == target_kind)]
    errors = tables["errors"]
    unreadable = set(errors["image_id"]) if not errors.empty else set()
    with connect(db_path, read_only=True) as con:
        stored = explained_pairs(con, run_id, target_kind)
    have = stored | (set(zip(ex["image_id"], ex["method"])) if not ex.empty else set())
    missing = sorted({i for i in image_ids if i in targets and i not in unreadable
                      for m in methods if (i, m) not in have})
    if missing:
        raise DataError(f"{len(missing)} of {len(image_ids)} images have no explanation shard (e.g. {missing[0]}): "
                        "a rank stopped early; rerun the same explain command (it explains only those) or pass "
                        "the other nodes' folders with --from")
    keys = set(zip(ex["image_id"], ex["method"], ex["target"])) if not ex.empty else set()

    def of_merged(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        mask = [(i, m, t) in keys for i, m, t in zip(frame["image_id"], frame["method"], frame["target"])]
        return frame[(frame["run_id"] == run_id) & pd.Series(mask, index=frame.index)]

    def of_images(frame: pd.DataFrame) -> pd.DataFrame:
        return frame if frame.empty else frame[frame["image_id"].isin(wanted)]

    write_explanation_shards(db_path, ex.reset_index(drop=True), of_merged(tables["zone_scores"]),
                             of_merged(tables["localisation"]), of_images(tables["landmarks"]),
                             of_images(tables["image_quality"]))
    skipped = [] if errors.empty else list(zip(of_images(errors)["path"], of_images(errors)["reason"]))
    with connect(db_path, read_only=True) as con:  # a second merge records no error twice
        known = set(con.execute("SELECT path, reason FROM ingest_errors WHERE dataset_id IS NOT DISTINCT FROM ?",
                                [dataset_id]).fetchall())
    new = [e for e in skipped if e not in known]
    if new:
        write_ingest_errors(db_path, new, run_id=explain_run_id, dataset_id=dataset_id)
    return len(ex), skipped
