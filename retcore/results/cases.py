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

from retcore.results import summaries
from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_kind, explained_target, target_sql

__all__ = ["GALLERY_DEPTH", "IMAGE_PATH", "KINDS", "ORDERS", "case_detail", "case_list", "gallery_sql", "image_grids",
           "landmarks_for", "reference_images"]

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


#: Rows per class, kind and order that ``gallery_rows`` stores (the page shows at most 24 per group).
GALLERY_DEPTH = 24
#: Explained-class ``thirds`` values per image of the CTE ``{rows}`` aliased p (zones ``{zones}``):
#: parameters run, method, then the explained-class rule's.
_THIRDS = ("SELECT z.image_id, max(z.score) FILTER (WHERE z.zone = 'center') AS center, "
           "max(z.mass_share) FILTER (WHERE z.zone = 'center') AS m_c, "
           "max(z.mass_share) FILTER (WHERE z.zone = 'left') AS m_l, "
           "max(z.mass_share) FILTER (WHERE z.zone = 'right') AS m_r "
           "FROM zone_scores z JOIN {rows} p ON p.image_id = z.image_id WHERE z.run_id = ? AND z.method = ? "
           "AND z.zone_set = 'thirds' AND z.zone IN {zones} AND {explained} GROUP BY 1")
_ALL_THIRDS = "('center', 'left', 'right')"
#: The gallery drift of a row with ``thirds`` values z and its class means m.
_DRIFT = "0.5 * (abs(z.m_c - m.c) + abs(z.m_l - m.l) + abs(z.m_r - m.r))"
#: The class means of the drift as a CTE: four list parameters (class, center, left, right).
_MEANS = ("means AS (SELECT unnest(?::VARCHAR[]) AS label, unnest(?::DOUBLE[]) AS c, unnest(?::DOUBLE[]) AS l, "
          "unnest(?::DOUBLE[]) AS r)")


def gallery_sql(q: Source, run: str, split: str, method: str, classes: Sequence[str],
                depth: int = GALLERY_DEPTH) -> tuple[str, tuple]:
    """SELECT of the ``gallery_rows`` summary of ``run``'s ``split`` and ``method``: for every class,
    kind (TP / FN / FP) and order of ``ORDERS``, the first ``depth`` rows of :func:`case_list`
    (run_id, split, method, class, kind, ord, rank (1-based), image_id, label, pred, confidence,
    probs, correct, center, drift), ranked exactly as :func:`case_list` orders them, with the
    columns of :func:`image_grids` (the explained-class map; NULL without one)."""
    explained, eparams = explained_target(q, run, method, classes)
    kind = explained_kind(q, run, method)
    ranks = " UNION ALL ".join(
        f"SELECT '{name}' AS ord, row_number() OVER (PARTITION BY class, kind ORDER BY {key}, image_id) AS rank, * "
        "FROM kinds QUALIFY rank <= ?" for name, (key, _) in ORDERS.items())
    sql = ("WITH p AS (SELECT image_id, label, pred, confidence, probs, correct FROM predictions "
           f"WHERE run_id = ? AND split = ? AND label IS NOT NULL), {_MEANS}, "
           f"z AS ({_THIRDS.format(rows='p', zones=_ALL_THIRDS, explained=explained)}), "
           f"shown AS (SELECT p.*, z.center, {_DRIFT} AS drift FROM p LEFT JOIN z ON z.image_id = p.image_id "
           "LEFT JOIN means m ON m.label = p.label), "
           "kinds AS (SELECT label AS class, CASE WHEN pred = label THEN 'TP' ELSE 'FN' END AS kind, * FROM shown "
           "UNION ALL SELECT pred AS class, 'FP' AS kind, * FROM shown WHERE pred <> label) "
           "SELECT ?::VARCHAR AS run_id, ?::VARCHAR AS split, ?::VARCHAR AS method, g.class, g.kind, g.ord, "
           "g.rank::INTEGER AS rank, g.image_id, g.label, g.pred, g.confidence, g.probs, g.correct, g.center, g.drift, "
           "e.target, e.target_kind, e.target_label, e.positive_sum, e.grid_h, e.grid_w, e.grid "
           f"FROM ({ranks}) g LEFT JOIN explanations e ON e.run_id = ? AND e.method = ? AND e.image_id = g.image_id "
           f"AND {target_sql(kind, 'e.target', 'g')}")
    params = (run, split, *_class_means(q, run, split, method, classes), run, method, *eparams, run, split, method,
              *([int(depth)] * len(ORDERS)), run, method, list(classes))
    return sql, params


def _stored_page(q: Source, run: str, split: str, method: str, cls: str, kind: str, order: str, limit: int,
                 offset: int) -> pd.DataFrame | None:
    """A gallery page from ``gallery_rows`` (None without that summary, or beyond its depth)."""
    if offset + limit > GALLERY_DEPTH or "gallery_rows" not in tables(q):
        return None
    if frame(q, "SELECT 1 FROM gallery_rows WHERE run_id = ? AND split = ? AND method = ? LIMIT 1",
             (run, split, method)).empty:
        return None
    return frame(q, "SELECT g.image_id, g.label, g.pred, g.confidence, g.probs, g.correct, g.center, g.drift, "
                    f"?::BIGINT AS n_total, {IMAGE_PATH} AS path, i.dataset_id, i.eye FROM gallery_rows g "
                    "JOIN images i ON i.image_id = g.image_id LEFT JOIN datasets d ON d.dataset_id = i.dataset_id "
                    "WHERE g.run_id = ? AND g.split = ? AND g.method = ? AND g.class = ? AND g.kind = ? AND g.ord = ? "
                    "AND g.rank > ? AND g.rank <= ? ORDER BY g.rank",
                 (_n_total(q, run, split, cls, kind), run, split, method, cls, kind, order, int(offset),
                  int(offset + limit)))


def _n_total(q: Source, run: str, split: str, cls: str, kind: str) -> int:
    """Images of ``kind`` (TP / FN / FP) of class ``cls`` in ``run``'s ``split`` (the class counts)."""
    cells = summaries.class_counts(q, run, split)
    cells = cells[cells["label"].notna()]
    hit = {"TP": (cells["label"] == cls) & (cells["pred"] == cls),
           "FN": (cells["label"] == cls) & (cells["pred"] != cls),
           "FP": (cells["label"] != cls) & (cells["pred"] == cls)}[kind]
    return int(cells.loc[hit, "n"].sum())


def _class_means(q: Source, run: str, split: str, method: str, classes: Sequence[str]) -> tuple[list, ...]:
    """Per true class: the mean ``thirds`` mass shares (center, left, right) of the explained class
    (``zone_summaries``.mass_mean), as four lists (class, center, left, right)."""
    rows = summaries.zone_summaries(q, run, split, method, classes, "thirds", "label")
    wide = rows[rows["zone"].isin(["center", "left", "right"])].pivot(index="class", columns="zone",
                                                                         values="mass_mean")
    wide = wide.reindex(columns=["center", "left", "right"])
    return ([str(c) for c in wide.index], *(wide[z].astype(float).tolist() for z in wide.columns))


def case_list(q: Source, run: str, split: str, method: str | None, cls: str, kind: str, order: str,
              classes: Sequence[str], limit: int = 8, offset: int = 0) -> pd.DataFrame:
    """One gallery row: ``kind`` TP / FN / FP of class ``cls``, ordered by ``order`` (see ORDERS).

    Columns: image_id, label, pred, confidence, probs, correct, center (thirds/center score),
    drift (gallery drift, see the module docstring), n_total (rows of this kind), path,
    dataset_id, eye. Zone values are NULL without ``method``. With a method, the first
    ``GALLERY_DEPTH`` rows come from the ``gallery_rows`` summary (:func:`gallery_sql`) when it is
    stored; otherwise the page's rows are chosen first (by confidence, center score or drift; the
    drift's class means and n_total from the summaries, :mod:`retcore.results.summaries`), then completed.
    """
    if kind not in _KIND_SQL:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    order_sql = ORDERS[order][0]
    if method:
        stored = _stored_page(q, run, split, method, cls, kind, order, limit, offset)
        if stored is not None:
            return stored
    zone_order = order in ("lowest center score", "highest drift")
    page = "LIMIT ? OFFSET ?"
    params: tuple = (run, split, cls, cls)
    sql = ("WITH p AS (SELECT p.image_id, p.label, p.pred, p.confidence, p.correct FROM predictions p "
           f"WHERE p.run_id = ? AND p.split = ? AND {_KIND_SQL[kind]})")
    if method:
        explained, eparams = explained_target(q, run, method, classes)
        sql += f", {_MEANS}"
        params = (*params, *_class_means(q, run, split, method, classes))
        if order == "lowest center score":  # rank by the center score alone
            sql += (", ranked AS (SELECT p.* FROM p LEFT JOIN ("
                    + _THIRDS.format(rows="p", zones="('center')", explained=explained)
                    + f") z ON z.image_id = p.image_id ORDER BY z.center ASC NULLS LAST, p.image_id {page})")
            params = (*params, run, method, *eparams, int(limit), int(offset))
        elif order == "highest drift":
            sql += (", ranked AS (SELECT p.* FROM p LEFT JOIN ("
                    + _THIRDS.format(rows="p", zones=_ALL_THIRDS, explained=explained)
                    + f") z ON z.image_id = p.image_id LEFT JOIN means m ON m.label = p.label "
                    f"ORDER BY {_DRIFT} DESC NULLS LAST, p.image_id {page})")
            params = (*params, run, method, *eparams, int(limit), int(offset))
        else:
            sql += f", ranked AS (SELECT * FROM p ORDER BY {order_sql}, image_id {page})"
            params = (*params, int(limit), int(offset))
        sql += (f", z AS ({_THIRDS.format(rows='ranked', zones=_ALL_THIRDS, explained=explained)}), "
                f"shown AS (SELECT r.*, z.center, {_DRIFT} AS drift FROM ranked r "
                "LEFT JOIN z ON z.image_id = r.image_id LEFT JOIN means m ON m.label = r.label)")
        params = (*params, run, method, *eparams)
    else:  # no zones: the zone orders fall back to the image id
        sql += (f", shown AS (SELECT *, NULL::DOUBLE AS center, NULL::DOUBLE AS drift FROM p "
                f"ORDER BY {'image_id' if zone_order else order_sql + ', image_id'} {page})")
        params = (*params, int(limit), int(offset))
    sql += (f" SELECT s.image_id, s.label, s.pred, s.confidence, pr.probs, s.correct, s.center, s.drift, "
            f"?::BIGINT AS n_total, {IMAGE_PATH} AS path, i.dataset_id, i.eye FROM shown s "
            "JOIN predictions pr ON pr.run_id = ? AND pr.split = ? AND pr.image_id = s.image_id "
            "JOIN images i ON i.image_id = s.image_id LEFT JOIN datasets d ON d.dataset_id = i.dataset_id "
            f"ORDER BY {order_sql.replace('confidence', 's.confidence')}, s.image_id")
    params = (*params, _n_total(q, run, split, cls, kind), run, split)
    return frame(q, sql, params)


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
    with image_id, target, target_kind, target_label, positive_sum, grid_h, grid_w, grid (from the
    ``gallery_rows`` summary when it holds every image)."""
    if not image_ids:
        return pd.DataFrame(columns=_GRID_COLUMNS)
    ids = list(dict.fromkeys(map(str, image_ids)))
    if "gallery_rows" in tables(q):  # a gallery's images: their maps are in its summary
        g_ids, g_params = _id_list("image_id", ids)
        stored = frame(q, f"SELECT DISTINCT ON (image_id) {', '.join(_GRID_COLUMNS)} FROM gallery_rows "
                          f"WHERE run_id = ? AND method = ? AND {g_ids} ORDER BY image_id", (run, method, *g_params))
        if len(stored) == len(ids):
            return stored[stored["grid"].notna()].reset_index(drop=True)
    cond = target_sql(explained_kind(q, run, method), "e.target")
    p_ids, p_params = _id_list("p.image_id", ids)
    e_ids, e_params = _id_list("e.image_id", ids)
    return frame(q, "SELECT e.image_id, e.target, e.target_kind, e.target_label, e.positive_sum, e.grid_h, "
                    "e.grid_w, e.grid FROM explanations e JOIN predictions p ON p.run_id = e.run_id "
                    f"AND p.image_id = e.image_id AND {p_ids} WHERE e.run_id = ? AND e.method = ? "
                    f"AND {cond} AND {e_ids} ORDER BY e.image_id",
                 (*p_params, run, method, list(classes), *e_params))


def _id_list(column: str, ids: list[str], constant_up_to: int = 256) -> tuple[str, tuple]:
    """SQL condition ``column`` is one of ``ids``: a list of constants for a few ids (DuckDB filters
    them while scanning, skipping row groups), else a list parameter. Returns (condition, params)."""
    if len(ids) <= constant_up_to:
        return f"{column} IN ({', '.join('?' for _ in ids)})", tuple(ids)
    return f"{column} IN (SELECT unnest(?::VARCHAR[]))", (ids,)


def landmarks_for(q: Source, image_ids: Sequence[str]) -> pd.DataFrame:
    """Landmark rows of a few images (empty when none or no table)."""
    if not image_ids or "landmarks" not in tables(q):
        return pd.DataFrame()
    ids = list(dict.fromkeys(map(str, image_ids)))
    cond, params = _id_list("image_id", ids)
    return frame(q, f"SELECT * FROM landmarks WHERE {cond}", params)


def reference_images(q: Source, run: str, split: str, cls: str | None, limit: int = 12) -> pd.DataFrame:
    """A few images (image_id, path, FOV and disc landmarks) to draw mean maps on: of class
    ``cls`` first, best quality grade first."""
    lm = "landmarks" in tables(q)
    cols = "l.fov_cx, l.fov_cy, l.fov_r, l.disc_x, l.disc_y, l.disc_r" if lm else \
        "NULL AS fov_cx, NULL AS fov_cy, NULL AS fov_r, NULL AS disc_x, NULL AS disc_y, NULL AS disc_r"
    join = "LEFT JOIN landmarks l ON l.image_id = p.image_id" if lm else ""
    grade = "CASE l.quality_grade WHEN 'good' THEN 0 WHEN 'usable' THEN 1 ELSE 2 END" if lm else "0"
    sql = (f"SELECT p.image_id, {IMAGE_PATH} AS path, {cols}, {grade} AS _grade "
           f"FROM predictions p JOIN images i ON i.image_id = p.image_id LEFT JOIN datasets d "
           f"ON d.dataset_id = i.dataset_id {join} WHERE p.run_id = ? AND p.split = ?{{where}} "
           f"ORDER BY (p.label = ?) DESC, {grade}, p.image_id LIMIT ?")
    params = (run, split, cls or "", int(limit))
    if cls:  # first look among the class's first images by id: exact when they hold enough of the best grade
        from retcore.results.sample import CLASS_SAMPLE, class_cutoffs

        cutoff = class_cutoffs(q, run, split, "label", CLASS_SAMPLE).get(cls)
        if cutoff is not None:
            first = frame(q, sql.format(where=" AND p.label = ? AND p.image_id <= ?"),
                          (run, split, cls, cutoff, cls, int(limit)))
            if len(first) == int(limit) and (first["_grade"] == 0).all():
                return first.drop(columns="_grade")
    return frame(q, sql.format(where=""), params).drop(columns="_grade")
