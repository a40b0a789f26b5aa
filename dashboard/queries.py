"""The dashboard's SQL: one function per question a page asks.

Every function goes through :func:`dashboard.data.query` (read-only,
parametrised, cached until the database changes). Aggregations that would
otherwise move 100,000-row tables into Python run in DuckDB. Zone scores are
those of the *explained* class: by default the predicted class
(``zone_scores.target`` = index of ``predictions.pred`` in the dataset's
classes), so an image contributes once per method even when it was also
explained for its label.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.data import grids, query, tables

__all__ = [
    "KINDS",
    "ORDERS",
    "QUALITY_METRICS",
    "case_detail",
    "case_list",
    "class_counts",
    "class_grids",
    "compare_cases",
    "compare_predictions",
    "compare_zone_moved",
    "compare_zone_scores",
    "confusion",
    "dataset_roots",
    "epochs",
    "focus_points",
    "has_explanations",
    "image_grids",
    "jobs",
    "landmarks_for",
    "metrics",
    "prediction_probs",
    "quality_frame",
    "reference_images",
    "reliability",
    "run_classes",
    "run_img_size",
    "run_methods",
    "run_out_dir",
    "run_splits",
    "runs",
    "single_target",
    "tables",
    "trained_runs",
    "zone_list",
    "zone_summary",
    "zone_values",
]

# An image's usable path: ``images.path`` is stored relative to its dataset's root folder
# (a manifest's folder for a CSV root); rows from older versions hold absolute paths.
# Needs ``images i`` and ``datasets d`` in the query.
IMAGE_PATH = (
    "CASE WHEN i.path LIKE '/%' OR i.path LIKE '\\%' OR regexp_matches(i.path, '^[A-Za-z]:') OR d.root IS NULL "
    "THEN i.path WHEN lower(d.root) LIKE '%.csv' THEN parse_dirpath(d.root) || '/' || i.path "
    "ELSE rtrim(d.root, '/') || '/' || i.path END"
)

#: Quality metrics offered as strata (``image_quality.metric``).
QUALITY_METRICS = ("blur", "glare", "illumination_mean", "illumination_contrast", "off_centre")

_SPLIT_ORDER = {"test": 0, "val": 1, "train": 2}

# The zone-score rows of the explained (predicted) class; ``?`` = the run's class list.
_PRED_TARGET = "z.target = list_position(?::VARCHAR[], p.pred) - 1"


# ------------------------------------------------------------------ runs and filters


def _live_status(frame: pd.DataFrame) -> pd.DataFrame:
    """Show a ``running`` run whose heartbeat is older than ``STALE_AFTER_S`` as ``interrupted``.

    Derived here, after the cached query, from the current time (nothing is
    written: the next job records it). ``recorded_status`` keeps the stored value.
    """
    from retcore.storage.runs import stale_cutoff

    frame = frame.copy()
    frame["recorded_status"] = frame["status"]
    if frame.empty:
        return frame
    last = pd.to_datetime(frame["heartbeat_at"]).fillna(pd.to_datetime(frame["started_at"]))
    cutoff = pd.Timestamp(stale_cutoff())
    frame.loc[(frame["status"] == "running") & (last < cutoff), "status"] = "interrupted"
    return frame


def runs() -> pd.DataFrame:
    """Every run, newest first, with status (a silent ``running`` run shows ``interrupted``) and live progress."""
    return _live_status(query(
        "SELECT run_id, job, status, progress, progress_note, started_at, finished_at, heartbeat_at, model, "
        "parent_run_id, error FROM runs ORDER BY started_at DESC"
    ))


def trained_runs() -> pd.DataFrame:
    """Fine-tuning runs that have predictions: run_id, model, status, started_at, label (for a selector)."""
    out = _live_status(query(
        "SELECT r.run_id, r.model, r.status, r.started_at, r.heartbeat_at FROM runs r WHERE r.job = 'finetune' "
        "AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.run_id) ORDER BY r.started_at DESC"
    )).drop(columns=["heartbeat_at", "recorded_status"])
    out["label"] = [f"{r} · {m}" if isinstance(m, str) and m else r for r, m in zip(out["run_id"], out["model"])]
    return out


def run_splits(run: str) -> list[str]:
    """Splits with predictions of ``run`` (test first)."""
    splits = query("SELECT DISTINCT split FROM predictions WHERE run_id = ?", (run,))["split"].dropna().tolist()
    return sorted(splits, key=lambda s: (_SPLIT_ORDER.get(s, 9), s))


def has_explanations() -> bool:
    """True when the database has the explanation tables (schema v2)."""
    return {"explanations", "zone_scores"} <= tables()


def run_methods(run: str) -> list[str]:
    """Explanation methods with maps or zone scores for ``run`` (empty before ``retcore explain``)."""
    if not has_explanations():
        return []
    return sorted(query("SELECT DISTINCT method FROM explanations WHERE run_id = ? UNION "
                        "SELECT DISTINCT method FROM zone_scores WHERE run_id = ?", (run, run))["method"].tolist())


def run_classes(run: str) -> list[str]:
    """The run's classes, in the model's order (the dataset's class list)."""
    row = query("SELECT d.classes FROM runs r JOIN datasets d ON d.dataset_id = r.dataset_id WHERE r.run_id = ?",
                (run,))
    if not row.empty and row["classes"].iloc[0] is not None and len(row["classes"].iloc[0]):
        return [str(c) for c in row["classes"].iloc[0]]
    labels = query("SELECT DISTINCT label FROM predictions WHERE run_id = ? ORDER BY label", (run,))
    return labels["label"].dropna().tolist()


def _runs_columns() -> set[str]:
    return set(query("SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'")["column_name"])


def jobs() -> pd.DataFrame:
    """Every run with its configuration, command and log (the Jobs page); status as in :func:`runs`.

    ``parent_out_dir`` is the parent run's output folder (where an explain or
    predict run's log lies); ``log_path`` is NULL before schema v4.
    """
    log = "r.log_path" if "log_path" in _runs_columns() else "NULL::VARCHAR AS log_path"
    return _live_status(query(
        "SELECT r.run_id, r.job, r.status, r.started_at, r.finished_at, r.heartbeat_at, "
        "date_diff('millisecond', r.started_at, coalesce(r.finished_at, r.heartbeat_at)) / 1000.0 AS seconds, "
        "r.progress, r.progress_note, r.parent_run_id, r.model, r.dataset_id, r.seed, r.config, r.command, "
        f"r.checkpoint, r.out_dir, r.code_version, r.package_versions, r.error, {log}, p.out_dir AS parent_out_dir "
        "FROM runs r LEFT JOIN runs p ON p.run_id = r.parent_run_id ORDER BY r.started_at DESC"
    ))


def dataset_roots() -> pd.DataFrame:
    """dataset_id, root, kind of every registered dataset."""
    return query("SELECT dataset_id, root, kind FROM datasets")


# -------------------------------------------------------------------------- overview


def metrics(run: str, split: str) -> pd.DataFrame:
    """Stored metrics (long: metric, class_name ('' = overall), value)."""
    return query("SELECT metric, class_name, value FROM metrics WHERE run_id = ? AND split = ?", (run, split))


def confusion(run: str, split: str) -> pd.DataFrame:
    """Confusion counts (true_label, pred_label, count), computed from the predictions."""
    return query(
        "SELECT label AS true_label, pred AS pred_label, count(*)::INTEGER AS count FROM predictions "
        "WHERE run_id = ? AND split = ? AND label IS NOT NULL GROUP BY ALL ORDER BY ALL", (run, split))


def prediction_probs(run: str, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    """True labels (frame with ``label``) and class probabilities (n, classes) of a split."""
    return grids("SELECT label, probs AS grid FROM predictions WHERE run_id = ? AND split = ? "
                 "AND label IS NOT NULL ORDER BY image_id", (run, split))


def reliability(run: str, split: str, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram: per confidence bin, n, mean confidence and correct count."""
    return query(
        "SELECT least(floor(confidence * ?)::INTEGER, ? - 1) AS bin, count(*)::INTEGER AS n, "
        "avg(confidence) AS confidence, sum(correct::INTEGER)::INTEGER AS correct FROM predictions "
        "WHERE run_id = ? AND split = ? AND correct IS NOT NULL GROUP BY 1 ORDER BY 1",
        (bins, bins, run, split))


# ------------------------------------------------------------------------ zone scores


def zone_list(run: str, method: str) -> pd.DataFrame:
    """zone_set, zone pairs stored for ``run`` and ``method``."""
    return query("SELECT DISTINCT zone_set, zone FROM zone_scores WHERE run_id = ? AND method = ? "
                 "ORDER BY zone_set, zone", (run, method))


def _class_filter(cls: str | None, column: str = "p.label") -> tuple[str, tuple]:
    return (f" AND {column} = ?", (cls,)) if cls else ("", ())


def focus_points(run: str, split: str, method: str, zone_set: str, zone: str, classes: list[str],
                 cls: str | None = None) -> pd.DataFrame:
    """Per image: label, pred, confidence, correct and the zone's score, mass share."""
    where, extra = _class_filter(cls)
    return query(
        "SELECT p.image_id, p.label, p.pred, p.confidence, p.correct, z.score, z.mass_share "
        "FROM predictions p JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
        f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND z.zone = ? AND {_PRED_TARGET}"
        f"{where} AND z.score IS NOT NULL AND p.label IS NOT NULL ORDER BY p.image_id",
        (run, split, method, zone_set, zone, list(classes), *extra))


def zone_summary(run: str, split: str, method: str, zone_set: str, classes: list[str],
                 by: str = "label") -> pd.DataFrame:
    """Distribution of zone scores per class (``by`` = 'label' or 'pred') and zone, aggregated in SQL:
    n, mean, sd and the 5/25/50/75/95th percentiles."""
    group = "p.pred" if by == "pred" else "p.label"
    return query(
        f"SELECT {group} AS class, z.zone, count(*)::INTEGER AS n, avg(z.score) AS mean, stddev_samp(z.score) AS sd, "
        "quantile_cont(z.score, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q FROM predictions p "
        "JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
        f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {_PRED_TARGET} "
        f"AND z.score IS NOT NULL AND {group} IS NOT NULL GROUP BY ALL ORDER BY ALL",
        (run, split, method, zone_set, list(classes)))


def zone_values(run: str, split: str, method: str, zone_set: str, classes: list[str], *, by: str = "label",
                per_class: int | None = None, image_ids: list[str] | None = None,
                zones: list[str] | None = None) -> pd.DataFrame:
    """Per image and zone: class and score (for distances and permutation tests).

    ``per_class`` keeps at most that many images of each class (a deterministic
    sample by image-id hash) to bound the cost of permutation tests;
    ``image_ids`` / ``zones`` restrict the rows to those images / zones.
    """
    group = "p.pred" if by == "pred" else "p.label"
    base = ("SELECT p.image_id, {g} AS class, z.zone, z.score FROM predictions p "
            "JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
            f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {_PRED_TARGET} "
            "AND z.score IS NOT NULL AND {g} IS NOT NULL").format(g=group)
    params: tuple = (run, split, method, zone_set, list(classes))
    if image_ids is not None:
        base += " AND p.image_id IN (SELECT unnest(?::VARCHAR[]))"
        params = (*params, list(image_ids))
    if zones is not None:
        base += " AND z.zone IN (SELECT unnest(?::VARCHAR[]))"
        params = (*params, list(zones))
    if per_class:
        sql = (f"WITH keep AS (SELECT image_id FROM (SELECT image_id, row_number() OVER (PARTITION BY {group} "
               "ORDER BY hash(image_id)) AS k FROM predictions p WHERE p.run_id = ? AND p.split = ?) WHERE k <= ?) "
               f"{base} AND p.image_id IN (SELECT image_id FROM keep) ORDER BY ALL")
        return query(sql, (run, split, int(per_class), *params))
    return query(base + " ORDER BY ALL", params)


def class_grids(run: str, split: str, method: str, classes: list[str], *, by: str = "label",
                per_class: int | None = 2000) -> tuple[pd.DataFrame, np.ndarray, tuple[int, int]]:
    """Token-grid relevance maps of the explained class with each image's class.

    Returns (frame of image_id, class; grids (n, gh * gw); (gh, gw)). ``per_class``
    caps the images per class (deterministic sample by image-id hash).
    """
    group = "p.pred" if by == "pred" else "p.label"
    cap = ""
    params: tuple = (run, split, list(classes))
    if per_class:
        cap = " QUALIFY row_number() OVER (PARTITION BY class ORDER BY hash(p.image_id)) <= ?"
        params = (*params, int(per_class))
    # choose the images first (small columns only), then read their grids
    meta, values = grids(
        f"WITH keep AS (SELECT p.image_id, {group} AS class, list_position(?::VARCHAR[], p.pred) - 1 AS target "
        f"FROM predictions p WHERE p.run_id = ? AND p.split = ? AND {group} IS NOT NULL{cap}) "
        "SELECT k.image_id, k.class, e.grid_h, e.grid_w, e.grid FROM keep k JOIN explanations e "
        "ON e.image_id = k.image_id AND e.target = k.target WHERE e.run_id = ? AND e.method = ? "
        "ORDER BY k.class, k.image_id", (list(classes), run, split, *params[3:], run, method))
    if meta.empty:
        return meta, values, (0, 0)
    shapes = meta[["grid_h", "grid_w"]].drop_duplicates()
    if len(shapes) > 1:  # mixed grid sizes: keep the most common one
        common = meta.groupby(["grid_h", "grid_w"]).size().idxmax()
        keep = ((meta["grid_h"] == common[0]) & (meta["grid_w"] == common[1])).to_numpy()
        meta, values = meta[keep].reset_index(drop=True), values[keep]
    gh, gw = int(meta["grid_h"].iloc[0]), int(meta["grid_w"].iloc[0])
    return meta[["image_id", "class"]], values, (gh, gw)


# -------------------------------------------------------------------------- quality


def quality_frame(run: str, split: str, method: str | None, zone_set: str, zone: str,
                  classes: list[str], cls: str | None = None, metric: str = "blur") -> pd.DataFrame:
    """Per image: label, correct, confidence, quality grade, the quality ``metric`` (column
    ``value``; NULL for metric 'grade') and, with a method, the zone's score."""
    where, extra = _class_filter(cls)
    zone_sql, zone_join, zone_params = "NULL::DOUBLE AS score", "", ()
    if method:
        zone_sql = "z.score"
        zone_join = (f"LEFT JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id AND z.method = ? "
                     f"AND z.zone_set = ? AND z.zone = ? AND {_PRED_TARGET}")
        zone_params = (method, zone_set, zone, list(classes))
    return query(
        f"SELECT p.image_id, p.label, p.correct, p.confidence, l.quality_grade, q.value, {zone_sql} "
        "FROM predictions p LEFT JOIN landmarks l ON l.image_id = p.image_id "
        "LEFT JOIN image_quality q ON q.image_id = p.image_id AND q.metric = ? "
        f"{zone_join} WHERE p.run_id = ? AND p.split = ? AND p.label IS NOT NULL{where} "
        "AND (l.image_id IS NOT NULL OR q.image_id IS NOT NULL) ORDER BY p.image_id",
        (metric, *zone_params, run, split, *extra))


# ---------------------------------------------------------------------------- cases

#: Gallery orders: name -> (SQL ORDER BY, description).
ORDERS = {
    "most confident": ("confidence DESC", "highest confidence first"),
    "lowest confidence": ("confidence ASC", "lowest confidence first"),
    "lowest center score": ("center ASC NULLS LAST", "least relevance in the central zone first"),
    "highest drift": ("drift DESC NULLS LAST", "zone shares farthest from the class mean first"),
}
KINDS = ("TP", "FN", "FP")


def case_list(run: str, split: str, method: str | None, cls: str, kind: str, order: str, classes: list[str],
              limit: int = 8, offset: int = 0) -> pd.DataFrame:
    """One gallery row: ``kind`` TP / FN / FP of class ``cls``, ordered by ``order`` (see ORDERS).

    Columns: image_id, path, dataset_id, label, pred, confidence, probs, center (thirds/center
    score), drift (total-variation distance of the image's thirds mass shares from its
    class's mean shares), n_total (rows of this kind).
    """
    kinds = {"TP": "label = ? AND pred = ?", "FN": "label = ? AND pred <> ?",
             "FP": "label <> ? AND pred = ?"}
    if kind not in kinds:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    order_sql = ORDERS[order][0]
    if method:
        zones = (
            ", z AS (SELECT z.image_id, max(z.score) FILTER (WHERE z.zone = 'center') AS center, "
            "max(z.mass_share) FILTER (WHERE z.zone = 'center') AS m_c, "
            "max(z.mass_share) FILTER (WHERE z.zone = 'left') AS m_l, "
            "max(z.mass_share) FILTER (WHERE z.zone = 'right') AS m_r "
            "FROM zone_scores z JOIN p ON p.image_id = z.image_id WHERE z.run_id = ? AND z.method = ? "
            f"AND z.zone_set = 'thirds' AND z.zone IN ('center', 'left', 'right') AND {_PRED_TARGET} GROUP BY 1), "
            "d AS (SELECT p.*, z.center, 0.5 * (abs(m_c - avg(m_c) OVER w) + abs(m_l - avg(m_l) OVER w) "
            "+ abs(m_r - avg(m_r) OVER w)) AS drift FROM p LEFT JOIN z ON z.image_id = p.image_id "
            "WINDOW w AS (PARTITION BY p.label))")
        zparams: tuple = (run, method, list(classes))
    else:
        zones = ", d AS (SELECT p.*, NULL::DOUBLE AS center, NULL::DOUBLE AS drift FROM p)"
        zparams = ()
    sql = (
        "WITH p AS (SELECT p.image_id, p.label, p.pred, p.confidence, p.probs, p.correct FROM predictions p "
        "WHERE p.run_id = ? AND p.split = ?)" + zones +
        ", k AS (SELECT d.*, count(*) OVER () AS n_total FROM d WHERE " + kinds[kind] + ") "
        f"SELECT k.*, {IMAGE_PATH} AS path, i.dataset_id, i.eye FROM k JOIN images i ON i.image_id = k.image_id "
        "LEFT JOIN datasets d ON d.dataset_id = i.dataset_id "
        f"ORDER BY {order_sql}, k.image_id LIMIT ? OFFSET ?")
    return query(sql, (run, split, *zparams, cls, cls, int(limit), int(offset)))


def case_detail(run: str, image_id: str) -> dict[str, pd.DataFrame]:
    """Everything about one image of a run: image, prediction, landmarks, quality, maps, zone scores."""
    out = {
        "image": query(f"SELECT i.* REPLACE ({IMAGE_PATH} AS path), d.root FROM images i "
                       "LEFT JOIN datasets d ON d.dataset_id = i.dataset_id "
                       "WHERE i.image_id = ?", (image_id,)),
        "prediction": query("SELECT * FROM predictions WHERE run_id = ? AND image_id = ?", (run, image_id)),
    }
    have = tables()
    out["landmarks"] = (query("SELECT * FROM landmarks WHERE image_id = ?", (image_id,)) if "landmarks" in have
                        else pd.DataFrame())
    out["quality"] = (query("SELECT metric, value FROM image_quality WHERE image_id = ? ORDER BY metric",
                            (image_id,)) if "image_quality" in have else pd.DataFrame())
    if has_explanations():
        out["maps"] = query(
            "SELECT method, target, target_label, target_kind, grid_h, grid_w, grid, heatmap_path, heatmap_sha256, "
            "positive_sum, entropy, gini, peak_zone FROM explanations WHERE run_id = ? AND image_id = ? "
            "ORDER BY method, target", (run, image_id))
        out["zones"] = query("SELECT method, target, zone_set, zone, mass_share, area_share, score FROM zone_scores "
                             "WHERE run_id = ? AND image_id = ? ORDER BY method, target, zone_set, zone",
                             (run, image_id))
    else:
        out["maps"] = out["zones"] = pd.DataFrame()
    return out


def image_grids(run: str, image_ids: list[str], method: str) -> pd.DataFrame:
    """image_id, target, target_kind, target_label, positive_sum, grid_h, grid_w, grid of ``method``
    for a few images (a gallery page)."""
    if not image_ids:
        return pd.DataFrame(columns=["image_id", "target", "target_kind", "target_label", "positive_sum",
                                     "grid_h", "grid_w", "grid"])
    return query("SELECT image_id, target, target_kind, target_label, positive_sum, grid_h, grid_w, grid "
                 "FROM explanations "
                 "WHERE run_id = ? AND method = ? AND image_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY image_id",
                 (run, method, list(image_ids)))


def landmarks_for(image_ids: list[str]) -> pd.DataFrame:
    """Landmark rows of a few images (empty when none or no table)."""
    if not image_ids or "landmarks" not in tables():
        return pd.DataFrame()
    return query("SELECT * FROM landmarks WHERE image_id IN (SELECT unnest(?::VARCHAR[]))", (list(image_ids),))


# -------------------------------------------------------------------------- compare


def compare_predictions(run_a: str, run_b: str, split: str) -> pd.DataFrame:
    """Predictions of two runs on the images they share: label, pred/confidence/correct _a and _b."""
    return query(
        "SELECT a.image_id, a.label, a.pred AS pred_a, b.pred AS pred_b, a.confidence AS confidence_a, "
        "b.confidence AS confidence_b, a.correct AS correct_a, b.correct AS correct_b "
        "FROM predictions a JOIN predictions b ON b.image_id = a.image_id AND b.run_id = ? AND b.split = a.split "
        "WHERE a.run_id = ? AND a.split = ? AND a.label IS NOT NULL ORDER BY a.image_id", (run_b, run_a, split))


def single_target(run: str) -> bool:
    """True when every image of ``run`` was explained for one class per method (then zone
    scores need no join with the predictions to pick the predicted class)."""
    if not has_explanations():
        return True
    extra = query("SELECT count(*) - count(DISTINCT (image_id, method)) AS extra FROM explanations WHERE run_id = ?",
                  (run,))["extra"]
    return bool(len(extra) == 0 or pd.isna(extra.iloc[0]) or int(extra.iloc[0]) == 0)


def _zone_pairs(select: str, run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                classes_a: list[str], classes_b: list[str], zones: list[str] | None) -> tuple[str, tuple]:
    """SQL joining the zone scores of (run_a, method_a) and (run_b, method_b) per image and zone."""
    zone_filter, zone_params = "", ()
    if zones is not None:
        zone_filter = " AND a.zone IN (SELECT unnest(?::VARCHAR[]))"
        zone_params = (list(zones),)
    if single_target(run_a) and single_target(run_b):  # one score per image and zone on each side
        sql = (f"SELECT {select} FROM zone_scores a JOIN zone_scores b ON b.image_id = a.image_id AND b.zone = a.zone "
               "JOIN predictions p ON p.image_id = a.image_id AND p.run_id = a.run_id "
               "WHERE a.run_id = ? AND a.method = ? AND a.zone_set = ? AND b.run_id = ? AND b.method = ? "
               "AND b.zone_set = ? AND p.split = ? AND a.score IS NOT NULL AND b.score IS NOT NULL" + zone_filter)
        return sql, (run_a, method_a, zone_set, run_b, method_b, zone_set, split, *zone_params)
    sql = (
        "WITH a AS (SELECT p.image_id, p.label, z.zone, z.score FROM predictions p JOIN zone_scores z "
        "ON z.run_id = p.run_id AND z.image_id = p.image_id WHERE p.run_id = ? AND p.split = ? AND z.method = ? "
        f"AND z.zone_set = ? AND {_PRED_TARGET} AND z.score IS NOT NULL), "
        "b AS (SELECT p.image_id, z.zone, z.score FROM predictions p JOIN zone_scores z "
        "ON z.run_id = p.run_id AND z.image_id = p.image_id WHERE p.run_id = ? AND p.split = ? AND z.method = ? "
        f"AND z.zone_set = ? AND {_PRED_TARGET} AND z.score IS NOT NULL) "
        f"SELECT {select} FROM a JOIN b ON b.image_id = a.image_id AND b.zone = a.zone "
        "JOIN predictions p ON p.image_id = a.image_id AND p.run_id = ? WHERE true" + zone_filter)
    return sql, (run_a, split, method_a, zone_set, list(classes_a), run_b, split, method_b, zone_set,
                 list(classes_b), run_a, *zone_params)


def compare_zone_scores(run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                        classes_a: list[str], classes_b: list[str], zones: list[str] | None = None) -> pd.DataFrame:
    """Per shared image and zone: zone, score_a, score_b (zone scores of each side's predicted class);
    ``zones`` restricts the zones."""
    if zones is None:
        zones = zone_list(run_a, method_a).query("zone_set == @zone_set")["zone"].tolist()
    if not zones:
        return pd.DataFrame(columns=["zone", "score_a", "score_b"])
    # the zone travels as its position in ``zones`` (small ints, not 100,000s of strings)
    sql, params = _zone_pairs("(list_position(?::VARCHAR[], a.zone) - 1)::TINYINT AS zone_i, a.score AS score_a, "
                              "b.score AS score_b", run_a, method_a, run_b, method_b, split, zone_set, classes_a,
                              classes_b, zones)
    out = query(sql + " ORDER BY zone_i, a.image_id", (list(zones), *params))
    zone = pd.Categorical.from_codes(out["zone_i"].to_numpy(), categories=list(zones))
    return pd.DataFrame({"zone": zone, "score_a": out["score_a"], "score_b": out["score_b"]})


def compare_zone_moved(run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str, zone: str,
                       classes_a: list[str], classes_b: list[str], limit: int = 200) -> pd.DataFrame:
    """The images whose ``zone`` score changed most between A and B: image_id, label, score_a, score_b, delta."""
    sql, params = _zone_pairs("a.image_id, p.label, a.score AS score_a, b.score AS score_b, "
                              "b.score - a.score AS delta", run_a, method_a, run_b, method_b, split, zone_set,
                              classes_a, classes_b, [zone])
    return query(sql + " ORDER BY abs(delta) DESC, a.image_id LIMIT ?", (*params, int(limit)))


def compare_cases(run_a: str, run_b: str, split: str, limit: int = 200) -> pd.DataFrame:
    """Images whose correctness differs between two runs (fixed first, then broken)."""
    return query(
        "SELECT a.image_id, a.label, a.pred AS pred_a, b.pred AS pred_b, a.confidence AS confidence_a, "
        "b.confidence AS confidence_b, CASE WHEN b.correct THEN 'fixed by B' ELSE 'broken by B' END AS change "
        "FROM predictions a JOIN predictions b ON b.image_id = a.image_id AND b.run_id = ? AND b.split = a.split "
        "WHERE a.run_id = ? AND a.split = ? AND a.correct <> b.correct "
        "ORDER BY change DESC, abs(a.confidence - b.confidence) DESC, a.image_id LIMIT ?",
        (run_b, run_a, split, int(limit)))


def run_img_size(run: str) -> int:
    """The model's input side of ``run`` (its explanations' map size, else its config, else 224)."""
    if has_explanations():
        size = query("SELECT max(heatmap_h) AS s FROM explanations WHERE run_id = ?", (run,))["s"]
        if len(size) and pd.notna(size.iloc[0]):
            return int(size.iloc[0])
    cfg = query("SELECT json_extract(config, '$.finetune.img_size')::INTEGER AS s FROM runs WHERE run_id = ?", (run,))
    if len(cfg) and pd.notna(cfg["s"].iloc[0]):
        return int(cfg["s"].iloc[0])
    return 224


def run_out_dir(run: str) -> str | None:
    """The run's output folder (checkpoints), as recorded."""
    out = query("SELECT out_dir FROM runs WHERE run_id = ?", (run,))["out_dir"]
    return str(out.iloc[0]) if len(out) and isinstance(out.iloc[0], str) else None


def epochs(run: str) -> pd.DataFrame:
    """Training curve of ``run`` (one row per epoch)."""
    return query("SELECT epoch, train_loss, val_loss, val_accuracy, val_macro_f1, val_macro_auroc, val_kappa, "
                 "val_score, is_best FROM epochs WHERE run_id = ? ORDER BY epoch", (run,))


def class_counts(run: str, split: str, by: str = "label") -> pd.Series:
    """Images per class (true ``label`` or ``pred``) of a run's split."""
    group = "pred" if by == "pred" else "label"
    out = query(f"SELECT {group} AS class, count(*)::INTEGER AS n FROM predictions WHERE run_id = ? AND split = ? "
                f"AND {group} IS NOT NULL GROUP BY 1 ORDER BY 1", (run, split))
    return out.set_index("class")["n"] if not out.empty else pd.Series(dtype="int64")


def reference_images(run: str, split: str, cls: str | None, limit: int = 12) -> pd.DataFrame:
    """A few images (path, landmarks) to draw mean maps on: of class ``cls`` first, best quality first."""
    lm = "landmarks" in tables()
    cols = "l.fov_cx, l.fov_cy, l.fov_r, l.disc_x, l.disc_y, l.disc_r" if lm else \
        "NULL AS fov_cx, NULL AS fov_cy, NULL AS fov_r, NULL AS disc_x, NULL AS disc_y, NULL AS disc_r"
    join = "LEFT JOIN landmarks l ON l.image_id = p.image_id" if lm else ""
    grade = "CASE l.quality_grade WHEN 'good' THEN 0 WHEN 'usable' THEN 1 ELSE 2 END" if lm else "0"
    return query(
        f"SELECT p.image_id, {IMAGE_PATH} AS path, {cols} FROM predictions p JOIN images i ON i.image_id = p.image_id "
        f"LEFT JOIN datasets d ON d.dataset_id = i.dataset_id {join} "
        f"WHERE p.run_id = ? AND p.split = ? ORDER BY (p.label = ?) DESC, {grade}, p.image_id LIMIT ?",
        (run, split, cls or "", int(limit)))
