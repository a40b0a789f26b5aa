"""Summaries: small tables jobs compute once when they write, so that pages over a million images
read a few rows instead of every image.

Per run and split (``retcore predict``):

- ``class_counts``: images per (true label, prediction), and how many are correct: the
  confusion matrix and the class counts (:mod:`retcore.results.predictions`);
- ``sample_cutoffs``: the largest image id of the split's sample and of each class's sample
  (:mod:`retcore.results.sample`);
- ``split_reports``: the classification report (:mod:`retcore.results.headline`) computed with
  the dashboard's bootstrap settings, its tables stored as Arrow streams (method '').

Per run, split and explanation method (``retcore explain``):

- ``zone_summaries``: per zone and class (by true label and by prediction) of the
  explained-class zone scores (:mod:`retcore.results.explained`): n, mean, sd, the 5/25/50/75/95 %
  quantiles, and the mean mass share (the class mean of the Cases gallery drift);
- ``gallery_rows``: the first ``GALLERY_DEPTH`` rows of every Cases gallery (class x TP / FN / FP x
  order; :func:`retcore.results.cases.gallery_sql`);
- ``split_reports`` with a method: the Class drift page's default tables (zone-score drift per
  zone set and the mean maps, by true class from the default reference;
  :func:`retcore.results.drift.stored_defaults`).

Each table is defined once, by the SELECT here that computes it: jobs store its rows
(``retcore.storage.writes.write_summaries``) and readers run the same SELECT on the fly when
the rows are missing (a database written before schema v7, an interrupted job), so stored and
on-the-fly values agree by construction. Writes that change a summary's inputs delete it in
their transaction (``write_predictions``: every summary of the run's split;
``write_explanation_batch``: the zone summaries of the run's methods), so a stored row is
current. ``retcore summarize`` stores every missing summary of a database written before.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_kind, target_sql

__all__ = [
    "QUANTILES",
    "SUMMARY_TABLES",
    "Summary",
    "class_counts",
    "class_counts_sql",
    "coverage",
    "decode_frame",
    "encode_frame",
    "plan",
    "prediction_source",
    "report_key",
    "stored_report",
    "zone_summaries",
    "zone_summary_sql",
]

#: Summary tables in schema v7 (written only through ``retcore.storage.writes.write_summaries``).
SUMMARY_TABLES = ("class_counts", "sample_cutoffs", "zone_summaries", "gallery_rows", "split_reports")
#: Quantiles of ``zone_summaries`` and their column names.
QUANTILES = (("q05", 0.05), ("q25", 0.25), ("median", 0.5), ("q75", 0.75), ("q95", 0.95))
_GROUPS = {"label": "p.label", "pred": "p.pred"}


@dataclass(frozen=True)
class Summary:
    """One summary of a run's split to store: ``table`` (of ``SUMMARY_TABLES``), ``method`` (zone
    summaries; None otherwise) and the SELECT (``sql``, ``params``) whose rows it holds."""

    table: str
    method: str | None
    sql: str
    params: tuple


def _stored(q: Source, table: str, sql: str, params: Sequence[Any]) -> pd.DataFrame | None:
    """Rows of summary ``table`` selected by ``sql``, or None when the table is missing or has none."""
    if table not in tables(q):
        return None
    out = frame(q, sql, params)
    return None if out.empty else out


# ------------------------------------------------------------------------------ class counts


def class_counts_sql(run: str, split: str) -> tuple[str, tuple]:
    """SELECT of ``class_counts``: run_id, split, label (NULL = unlabelled), pred, n, n_correct."""
    return ("SELECT run_id, split, label, pred, count(*)::INTEGER AS n, "
            "(count(*) FILTER (WHERE correct))::INTEGER AS n_correct FROM predictions "
            "WHERE run_id = ? AND split = ? GROUP BY ALL", (run, split))


def class_counts(q: Source, run: str, split: str) -> pd.DataFrame:
    """Images per (label, pred) of ``run``'s ``split``: label, pred, n, n_correct (stored, else computed)."""
    cols = "SELECT label, pred, n, n_correct FROM class_counts WHERE run_id = ? AND split = ?"
    stored = _stored(q, "class_counts", cols, (run, split))
    if stored is not None:
        return stored
    sql, params = class_counts_sql(run, split)
    return frame(q, f"SELECT label, pred, n, n_correct FROM ({sql})", params)


# ---------------------------------------------------------------------------- zone summaries


def _zone_select(grouping: str, explained: str, zone_set: bool) -> str:
    group = _GROUPS[grouping]
    quantiles = ", ".join(f"q[{i + 1}] AS {name}" for i, (name, _) in enumerate(QUANTILES))
    where_set = " AND z.zone_set = ?" if zone_set else ""
    return (
        f"SELECT run_id, split, method, zone_set, zone, grouping, class, n, mean, sd, {quantiles}, mass_mean FROM ("
        f"SELECT p.run_id, p.split, z.method, z.zone_set, z.zone, '{grouping}' AS grouping, {group} AS class, "
        "count(z.score)::INTEGER AS n, avg(z.score) AS mean, stddev_samp(z.score) AS sd, "
        f"quantile_cont(z.score, {[v for _, v in QUANTILES]}) AS q, avg(z.mass_share) AS mass_mean "
        "FROM predictions p JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
        f"WHERE p.run_id = ? AND p.split = ? AND z.method = ?{where_set} AND {explained} AND {group} IS NOT NULL "
        "GROUP BY ALL)")


def zone_summary_sql(q: Source, run: str, split: str, method: str, classes: Sequence[str], *,
                     zone_set: str | None = None, groupings: Sequence[str] = ("label", "pred")) -> tuple[str, tuple]:
    """SELECT of ``zone_summaries`` for ``run``'s ``split`` and ``method`` (every zone set, or only
    ``zone_set``): per zone_set, zone, grouping ('label' | 'pred') and class: n (scores), mean, sd,
    q05, q25, median, q75, q95 of the explained-class zone scores, mass_mean (mean mass share, also of
    rows without a score). Groups without a score have n = 0."""
    explained = target_sql(explained_kind(q, run, method))
    parts, params = [], []
    for grouping in groupings:
        parts.append(_zone_select(grouping, explained, zone_set is not None))
        params += [run, split, method, *([zone_set] if zone_set is not None else []), list(classes)]
    return " UNION ALL ".join(parts), tuple(params)


def zone_summaries(q: Source, run: str, split: str, method: str, classes: Sequence[str], zone_set: str,
                   grouping: str = "label") -> pd.DataFrame:
    """``zone_summaries`` rows of one zone set and grouping with at least one score (stored, else
    computed): class, zone, n, mean, sd, q05, q25, median, q75, q95, mass_mean, ordered by class, zone."""
    cols = "class, zone, n, mean, sd, q05, q25, median, q75, q95, mass_mean"
    stored = _stored(q, "zone_summaries", f"SELECT zone_set, grouping, {cols} FROM zone_summaries "
                                          "WHERE run_id = ? AND split = ? AND method = ?", (run, split, method))
    if stored is not None:
        rows = stored[(stored["zone_set"] == zone_set) & (stored["grouping"] == grouping)]
    else:
        sql, params = zone_summary_sql(q, run, split, method, classes, zone_set=zone_set, groupings=(grouping,))
        rows = frame(q, sql, params)
    rows = rows[rows["n"] > 0]
    return rows[cols.split(", ")].sort_values(["class", "zone"]).reset_index(drop=True)


# -------------------------------------------------------------------------------- reports


def report_key(params: dict[str, Any]) -> str:
    """The ``split_reports.params`` text of a report's settings (sorted JSON)."""
    return json.dumps(params, sort_keys=True)


def encode_frame(df: pd.DataFrame) -> bytes:
    """``df`` as an Arrow IPC stream (exact values and dtypes)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_frame(data: bytes) -> pd.DataFrame:
    """The DataFrame of :func:`encode_frame`."""
    import pyarrow as pa

    return pa.ipc.open_stream(bytes(data)).read_all().to_pandas()


def prediction_source(q: Source, run: str, split: str) -> str:
    """What a report of ``run``'s ``split`` was computed from: its prediction count and predict runs."""
    row = frame(q, "SELECT count(*) AS n, string_agg(DISTINCT predict_run_id, ',' ORDER BY predict_run_id) AS runs "
                   "FROM predictions WHERE run_id = ? AND split = ?", (run, split))
    return f"{int(row['n'].iloc[0])}:{row['runs'].iloc[0] or ''}"


def stored_report(q: Source, run: str, split: str, report: str, params: dict[str, Any], method: str = ""
                  ) -> dict[str, pd.DataFrame] | None:
    """The stored tables (part -> DataFrame) of ``report`` of ``run``'s ``split`` (and explanation
    ``method``) computed with ``params``, or None when there is none."""
    stored = _stored(q, "split_reports", "SELECT part, frame FROM split_reports WHERE run_id = ? AND split = ? "
                                         "AND method = ? AND report = ? AND params = ?",
                     (run, split, method, report, report_key(params)))
    if stored is None:
        return None
    return {str(part): decode_frame(data) for part, data in zip(stored["part"], stored["frame"])}


# ----------------------------------------------------------------------------------- plan


def plan(q: Source, run: str, split: str, classes: Sequence[str], methods: Sequence[str] | None = None,
         *, predictions: bool = True) -> list[Summary]:
    """The SQL summaries of ``run``'s ``split`` for ``write_summaries``: class counts and sample
    cutoffs (``predictions``), and the zone summaries and gallery rows of each of ``methods``
    (default: every method with zone scores of the run). The classification report is computed in Python (the job
    stores it with ``write_report``)."""
    from retcore.results.sample import cutoffs_sql

    out = []
    if predictions:
        out.append(Summary("class_counts", None, *class_counts_sql(run, split)))
        out.append(Summary("sample_cutoffs", None, *cutoffs_sql(run, split)))
    if "zone_scores" in tables(q):
        if methods is None:
            methods = frame(q, "SELECT DISTINCT method FROM zone_scores WHERE run_id = ? ORDER BY 1",
                            (run,))["method"].tolist()
        from retcore.results.cases import gallery_sql

        for method in methods:
            out.append(Summary("zone_summaries", method, *zone_summary_sql(q, run, split, method, classes)))
            out.append(Summary("gallery_rows", method, *gallery_sql(q, run, split, method, classes)))
    return out


def coverage(q: Source, run: str | None = None) -> pd.DataFrame:
    """Which summaries each (run, split) with predictions has: run_id, split, counts (class counts and
    sample cutoffs stored), report (classification report stored), zone_methods (methods with zone
    scores of the split's images), summarized (methods with zone summaries and gallery rows of the
    split, and drift reports). Empty before v7."""
    have = tables(q)
    if not set(SUMMARY_TABLES) <= have:
        return pd.DataFrame(columns=["run_id", "split", "counts", "report", "zone_methods", "summarized"])
    where, params = ("WHERE run_id = ?", (run,)) if run else ("", ())
    pairs = frame(q, f"SELECT DISTINCT run_id, split FROM predictions {where} ORDER BY 1, 2", params)
    counts = set(map(tuple, frame(q, "SELECT DISTINCT run_id, split FROM class_counts").to_numpy()))
    reports = set(map(tuple, frame(q, "SELECT DISTINCT run_id, split FROM split_reports WHERE method = ''").to_numpy()))
    methods: dict[tuple, list[str]] = {}
    if "zone_scores" in have:
        rows = frame(q, "SELECT DISTINCT p.run_id, p.split, z.method FROM zone_scores z JOIN predictions p "
                        f"ON p.run_id = z.run_id AND p.image_id = z.image_id {where.replace('run_id', 'z.run_id')} "
                        "ORDER BY 3", params)
        for r, s, m in rows.to_numpy():
            methods.setdefault((r, s), []).append(m)
    done: dict[tuple, list[str]] = {}
    for r, s, m in frame(q, "SELECT DISTINCT run_id, split, method FROM zone_summaries INTERSECT "
                            "SELECT DISTINCT run_id, split, method FROM gallery_rows INTERSECT "
                            "SELECT DISTINCT run_id, split, method FROM split_reports ORDER BY 3").to_numpy():
        done.setdefault((r, s), []).append(m)
    pairs["counts"] = [(r, s) in counts for r, s in pairs[["run_id", "split"]].to_numpy()]
    pairs["report"] = [(r, s) in reports for r, s in pairs[["run_id", "split"]].to_numpy()]
    pairs["zone_methods"] = [methods.get((r, s), []) for r, s in pairs[["run_id", "split"]].to_numpy()]
    pairs["summarized"] = [done.get((r, s), []) for r, s in pairs[["run_id", "split"]].to_numpy()]
    return pairs
