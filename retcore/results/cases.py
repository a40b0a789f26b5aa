"""Single images: gallery rows (true / false positives, false negatives), one case in full,
the maps of a few images, reference photos.

**Gallery drift** of an image (order "highest drift"): the total-variation distance
between its ``thirds`` mass shares (center, left, right; explained class) and the mean
shares of the images of its true class in the split,
``drift = 0.5 * (|c - mean c| + |l - mean l| + |r - mean r|)``, in [0, 1]
(0 = where its class looks on average). It is computed in SQL here, over every image of
the split, so a page can order and page through them.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_kind, explained_target, target_sql

__all__ = ["IMAGE_PATH", "KINDS", "ORDERS", "case_detail", "case_list", "image_grids", "landmarks_for",
           "reference_images"]

#: SQL of an image's usable path: ``images.path`` is stored relative to its dataset's root folder
#: (a manifest's folder for a CSV root); rows from older versions hold absolute paths.
#: Needs ``images i`` and ``datasets d`` in the query.
IMAGE_PATH = (
    "CASE WHEN i.path LIKE '/%' OR i.path LIKE '\\%' OR regexp_matches(i.path, '^[A-Za-z]:') OR d.root IS NULL "
    "THEN i.path WHEN lower(d.root) LIKE '%.csv' THEN parse_dirpath(d.root) || '/' || i.path "
    "ELSE rtrim(d.root, '/') || '/' || i.path END"
)

#: Gallery orders: name -> (SQL ORDER BY, description).
ORDERS = {
    "most confident": ("confidence DESC", "highest confidence first"),
    "lowest confidence": ("confidence ASC", "lowest confidence first"),
    "lowest center score": ("center ASC NULLS LAST", "least relevance in the central zone first"),
    "highest drift": ("drift DESC NULLS LAST", "zone shares farthest from the class mean first"),
}
#: Gallery groups of one class: true positives, false negatives, false positives.
KINDS = ("TP", "FN", "FP")
_KIND_SQL = {"TP": "label = ? AND pred = ?", "FN": "label = ? AND pred <> ?", "FP": "label <> ? AND pred = ?"}


def case_list(q: Source, run: str, split: str, method: str | None, cls: str, kind: str, order: str,
              classes: Sequence[str], limit: int = 8, offset: int = 0) -> pd.DataFrame:
    """One gallery row: ``kind`` TP / FN / FP of class ``cls``, ordered by ``order`` (see ORDERS).

    Columns: image_id, label, pred, confidence, probs, correct, center (thirds/center score),
    drift (gallery drift, see the module docstring), n_total (rows of this kind), path,
    dataset_id, eye. Zone values are NULL without ``method``.
    """
    if kind not in _KIND_SQL:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    order_sql = ORDERS[order][0]
    if method:
        explained, eparams = explained_target(q, run, method, classes)
        zones = (
            ", z AS (SELECT z.image_id, max(z.score) FILTER (WHERE z.zone = 'center') AS center, "
            "max(z.mass_share) FILTER (WHERE z.zone = 'center') AS m_c, "
            "max(z.mass_share) FILTER (WHERE z.zone = 'left') AS m_l, "
            "max(z.mass_share) FILTER (WHERE z.zone = 'right') AS m_r "
            "FROM zone_scores z JOIN p ON p.image_id = z.image_id WHERE z.run_id = ? AND z.method = ? "
            f"AND z.zone_set = 'thirds' AND z.zone IN ('center', 'left', 'right') AND {explained} GROUP BY 1), "
            "d AS (SELECT p.*, z.center, 0.5 * (abs(m_c - avg(m_c) OVER w) + abs(m_l - avg(m_l) OVER w) "
            "+ abs(m_r - avg(m_r) OVER w)) AS drift FROM p LEFT JOIN z ON z.image_id = p.image_id "
            "WINDOW w AS (PARTITION BY p.label))")
        zparams: tuple = (run, method, *eparams)
    else:
        zones = ", d AS (SELECT p.*, NULL::DOUBLE AS center, NULL::DOUBLE AS drift FROM p)"
        zparams = ()
    sql = (
        "WITH p AS (SELECT p.image_id, p.label, p.pred, p.confidence, p.probs, p.correct FROM predictions p "
        "WHERE p.run_id = ? AND p.split = ?)" + zones +
        ", k AS (SELECT d.*, count(*) OVER () AS n_total FROM d WHERE " + _KIND_SQL[kind] + ") "
        f"SELECT k.*, {IMAGE_PATH} AS path, i.dataset_id, i.eye FROM k JOIN images i ON i.image_id = k.image_id "
        "LEFT JOIN datasets d ON d.dataset_id = i.dataset_id "
        f"ORDER BY {order_sql}, k.image_id LIMIT ? OFFSET ?")
    return frame(q, sql, (run, split, *zparams, cls, cls, int(limit), int(offset)))


def case_detail(q: Source, run: str, image_id: str) -> dict[str, pd.DataFrame]:
    """Everything about one image of a run: image (with its usable path and root), prediction,
    landmarks, quality, maps (every method and target) and zone scores (empty frames where absent)."""
    out = {
        "image": frame(q, f"SELECT i.* REPLACE ({IMAGE_PATH} AS path), d.root FROM images i "
                          "LEFT JOIN datasets d ON d.dataset_id = i.dataset_id WHERE i.image_id = ?", (image_id,)),
        "prediction": frame(q, "SELECT * FROM predictions WHERE run_id = ? AND image_id = ?", (run, image_id)),
    }
    have = tables(q)
    out["landmarks"] = (frame(q, "SELECT * FROM landmarks WHERE image_id = ?", (image_id,)) if "landmarks" in have
                        else pd.DataFrame())
    out["quality"] = (frame(q, "SELECT metric, value FROM image_quality WHERE image_id = ? ORDER BY metric",
                            (image_id,)) if "image_quality" in have else pd.DataFrame())
    if {"explanations", "zone_scores"} <= have:
        out["maps"] = frame(
            q, "SELECT method, target, target_label, target_kind, grid_h, grid_w, grid, heatmap_path, heatmap_sha256, "
               "positive_sum, entropy, gini, peak_zone FROM explanations WHERE run_id = ? AND image_id = ? "
               "ORDER BY method, target", (run, image_id))
        out["zones"] = frame(q, "SELECT method, target, zone_set, zone, mass_share, area_share, score FROM zone_scores "
                                "WHERE run_id = ? AND image_id = ? ORDER BY method, target, zone_set, zone",
                             (run, image_id))
    else:
        out["maps"] = out["zones"] = pd.DataFrame()
    return out


_GRID_COLUMNS = ["image_id", "target", "target_kind", "target_label", "positive_sum", "grid_h", "grid_w", "grid"]


def image_grids(q: Source, run: str, image_ids: Sequence[str], method: str, classes: Sequence[str]) -> pd.DataFrame:
    """The explained-class map of ``method`` for a few images (a gallery page): one row per image
    with image_id, target, target_kind, target_label, positive_sum, grid_h, grid_w, grid."""
    if not image_ids:
        return pd.DataFrame(columns=_GRID_COLUMNS)
    cond = target_sql(explained_kind(q, run, method), "e.target")
    return frame(q, "SELECT e.image_id, e.target, e.target_kind, e.target_label, e.positive_sum, e.grid_h, "
                    "e.grid_w, e.grid FROM explanations e JOIN predictions p ON p.run_id = e.run_id "
                    f"AND p.image_id = e.image_id WHERE e.run_id = ? AND e.method = ? AND {cond} "
                    "AND e.image_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY e.image_id",
                 (run, method, list(classes), list(image_ids)))


def landmarks_for(q: Source, image_ids: Sequence[str]) -> pd.DataFrame:
    """Landmark rows of a few images (empty when none or no table)."""
    if not image_ids or "landmarks" not in tables(q):
        return pd.DataFrame()
    return frame(q, "SELECT * FROM landmarks WHERE image_id IN (SELECT unnest(?::VARCHAR[]))", (list(image_ids),))


def reference_images(q: Source, run: str, split: str, cls: str | None, limit: int = 12) -> pd.DataFrame:
    """A few images (image_id, path, FOV and disc landmarks) to draw mean maps on: of class
    ``cls`` first, best quality grade first."""
    lm = "landmarks" in tables(q)
    cols = "l.fov_cx, l.fov_cy, l.fov_r, l.disc_x, l.disc_y, l.disc_r" if lm else \
        "NULL AS fov_cx, NULL AS fov_cy, NULL AS fov_r, NULL AS disc_x, NULL AS disc_y, NULL AS disc_r"
    join = "LEFT JOIN landmarks l ON l.image_id = p.image_id" if lm else ""
    grade = "CASE l.quality_grade WHEN 'good' THEN 0 WHEN 'usable' THEN 1 ELSE 2 END" if lm else "0"
    return frame(
        q, f"SELECT p.image_id, {IMAGE_PATH} AS path, {cols} FROM predictions p JOIN images i "
           f"ON i.image_id = p.image_id LEFT JOIN datasets d ON d.dataset_id = i.dataset_id {join} "
           f"WHERE p.run_id = ? AND p.split = ? ORDER BY (p.label = ?) DESC, {grade}, p.image_id LIMIT ?",
        (run, split, cls or "", int(limit)))
