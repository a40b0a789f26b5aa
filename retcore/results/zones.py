"""Zone scores of the explained class joined with the predictions, and their statistics.

A zone score is the share of an image's positive relevance inside a zone divided by the
zone's share of the field of view (1 = no preference). Every query here keeps the rows
of the explained class (:mod:`retcore.results.explained`) and of labelled images.

- :func:`zone_tests`: per zone, Kruskal-Wallis across classes (effect ε²) and Mann-Whitney
  of correct vs incorrect (effect rank-biserial r), each with Holm-adjusted p-values
  across the zones;
- :func:`focus`: correlation of confidence with one zone's score (Spearman and Pearson,
  bootstrap intervals) overall, per class and per outcome, plus the outcome test.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from retcore.results.executor import Source, frame
from retcore.results.explained import explained_target

__all__ = ["Focus", "focus", "zone_list", "zone_scores", "zone_summary", "zone_tests", "zone_values"]

_GROUPS = {"label": "p.label", "pred": "p.pred"}


def _group(by: str) -> str:
    return _GROUPS["pred" if by == "pred" else "label"]


def zone_list(q: Source, run: str, method: str) -> pd.DataFrame:
    """zone_set, zone pairs stored for ``run`` and ``method``, sorted."""
    return frame(q, "SELECT DISTINCT zone_set, zone FROM zone_scores WHERE run_id = ? AND method = ? "
                    "ORDER BY zone_set, zone", (run, method))


def zone_scores(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str], *,
                zone: str | None = None, cls: str | None = None) -> pd.DataFrame:
    """Per labelled image of ``split`` and zone of ``zone_set`` (or only ``zone``; only true class
    ``cls``): image_id, label, pred, confidence, correct, zone, score, mass_share.

    Images in id order, each image's zones in the order ``retcore explain`` wrote them; rows
    without a score are left out.
    """
    explained, eparams = explained_target(q, run, method, classes)
    where, params = "", ()
    if zone is not None:
        where, params = " AND z.zone = ?", (zone,)
    if cls:
        where, params = where + " AND p.label = ?", (*params, cls)
    return frame(
        q, "SELECT p.image_id, p.label, p.pred, p.confidence, p.correct, z.zone, z.score, z.mass_share "
           "FROM predictions p JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
           f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {explained}{where} "
           "AND z.score IS NOT NULL AND p.label IS NOT NULL ORDER BY p.image_id, z.rowid",
        (run, split, method, zone_set, *eparams, *params))


def zone_summary(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str],
                 by: str = "label") -> pd.DataFrame:
    """Distribution of zone scores per class (``by`` = 'label' or 'pred') and zone, aggregated in SQL
    over every image: class, zone, n, mean, sd, q05, q25, median, q75, q95."""
    group = _group(by)
    explained, eparams = explained_target(q, run, method, classes)
    out = frame(
        q, f"SELECT {group} AS class, z.zone, count(*)::INTEGER AS n, avg(z.score) AS mean, "
           "stddev_samp(z.score) AS sd, quantile_cont(z.score, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q "
           "FROM predictions p JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
           f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {explained} "
           f"AND z.score IS NOT NULL AND {group} IS NOT NULL GROUP BY ALL ORDER BY ALL",
        (run, split, method, zone_set, *eparams))
    if out.empty:
        return out
    quantiles = np.vstack(out["q"].to_numpy())
    for i, name in enumerate(("q05", "q25", "median", "q75", "q95")):
        out[name] = quantiles[:, i]
    return out.drop(columns="q")


def zone_values(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str], *,
                by: str = "label", per_class: int | None = None, image_ids: Sequence[str] | None = None,
                zones: Sequence[str] | None = None) -> pd.DataFrame:
    """Per image and zone: image_id, class (``by``), zone, score — for distances and permutation tests.

    ``per_class`` keeps at most that many images of each class (a deterministic sample by
    image-id hash) to bound the cost of permutation tests; ``image_ids`` / ``zones``
    restrict the rows to those images / zones. Sorted by image, class, zone.
    """
    group = _group(by)
    explained, eparams = explained_target(q, run, method, classes)
    base = (f"SELECT p.image_id, {group} AS class, z.zone, z.score FROM predictions p "
            "JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
            f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {explained} "
            f"AND z.score IS NOT NULL AND {group} IS NOT NULL")
    params: tuple = (run, split, method, zone_set, *eparams)
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
        return frame(q, sql, (run, split, int(per_class), *params))
    return frame(q, base + " ORDER BY ALL", params)


_TEST_COLUMNS = ["zone", "n", "H", "p_value", "epsilon2", "p_holm", "U", "mw_p_value", "rank_biserial",
                 "mw_p_holm"]


def zone_tests(scores: pd.DataFrame, group: str = "label", correct: str | None = "correct") -> pd.DataFrame:
    """Per zone of ``scores`` (columns zone, score, ``group``, ``correct``; zones in order of appearance):
    n, Kruskal-Wallis across ``group`` (H, p_value, epsilon2, p_holm) and Mann-Whitney of correct
    vs incorrect (U, mw_p_value, rank_biserial, mw_p_holm; NaN without ``correct``). Holm
    adjusts each test's p-values across the zones."""
    from retcore.stats import compare_outcomes, holm, kruskal_wallis

    rows = []
    for zone in dict.fromkeys(scores["zone"]):
        part = scores[scores["zone"] == zone]
        kw = kruskal_wallis({str(k): g["score"].to_numpy(np.float64)
                             for k, g in part.groupby(group, sort=True, dropna=True)})
        row = {"zone": zone, "n": kw.n, "H": kw.statistic, "p_value": kw.p_value, "epsilon2": kw.effect,
               "U": np.nan, "mw_p_value": np.nan, "rank_biserial": np.nan}
        if correct is not None:
            mw = compare_outcomes(part, "score", correct)
            row.update(U=mw.statistic, mw_p_value=mw.p_value, rank_biserial=mw.effect)
        rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in _TEST_COLUMNS if c not in ("p_holm", "mw_p_holm")])
    out.insert(5, "p_holm", holm(out["p_value"].to_numpy(np.float64)))
    out["mw_p_holm"] = holm(out["mw_p_value"].to_numpy(np.float64))
    return out


@dataclass(frozen=True)
class Focus:
    """Zone score vs confidence of one zone: ``points`` (image_id, label, pred, confidence, correct, zone,
    score, mass_share), ``correlations`` (``retcore.stats.confidence_correlations``: scope, group,
    method, value, low, high, p_value, n), ``outcome`` (Mann-Whitney of the score, correct vs
    incorrect; None without images) and ``n_boot`` (resamples used)."""

    points: pd.DataFrame
    correlations: pd.DataFrame
    outcome: object
    n_boot: int

    @property
    def n(self) -> int:
        """Images with a score."""
        return len(self.points)


def focus(q: Source, run: str, split: str, method: str, zone_set: str, zone: str, classes: Sequence[str],
          cls: str | None = None, *, methods: Sequence[str] = ("spearman", "pearson"),
          scopes: Sequence[str] = ("overall", "class", "outcome"), n_boot: int = 1000, seed: int = 0,
          level: float = 0.95, boot_cells: int | None = None) -> Focus:
    """Correlation of confidence with the ``zone`` score (see the module docstring).

    ``scopes``: which rows of the correlation table ('overall', 'class', 'outcome');
    ``boot_cells`` caps resamples x images (see ``retcore.results.headline.boot_size``).
    """
    from retcore.results.headline import boot_size
    from retcore.stats import compare_outcomes, confidence_correlations

    points = zone_scores(q, run, split, method, zone_set, classes, zone=zone, cls=cls)
    if points.empty:
        return Focus(points, pd.DataFrame(), None, 0)
    nb = boot_size(len(points), n_boot, cells=boot_cells) if boot_cells else n_boot
    corr = confidence_correlations(points, score="score", confidence="confidence",
                                   label="label" if "class" in scopes else None,
                                   correct="correct" if "outcome" in scopes else None,
                                   methods=tuple(methods), n_boot=nb, seed=seed, level=level)
    if "overall" not in scopes:
        corr = corr[corr["scope"] != "overall"].reset_index(drop=True)
    return Focus(points, corr, compare_outcomes(points, "score", "correct"), nb)
