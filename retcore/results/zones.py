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

from retcore.results import summaries
from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_target

__all__ = ["Focus", "class_sample_sql", "focus", "zone_list", "zone_scores", "zone_summary", "zone_tests",
           "zone_values"]

_GROUPS = {"label": "p.label", "pred": "p.pred"}


def _group(by: str) -> str:
    return _GROUPS["pred" if by == "pred" else "label"]


def zone_list(q: Source, run: str, method: str) -> pd.DataFrame:
    """zone_set, zone pairs stored for ``run`` and ``method``, sorted (from the zone summaries when
    the run's method has them: the zones with scores)."""
    if "zone_summaries" in tables(q):
        listed = frame(q, "SELECT DISTINCT zone_set, zone FROM zone_summaries WHERE run_id = ? AND method = ? "
                          "ORDER BY zone_set, zone", (run, method))
        if not listed.empty:
            return listed
    return frame(q, "SELECT DISTINCT zone_set, zone FROM zone_scores WHERE run_id = ? AND method = ? "
                    "ORDER BY zone_set, zone", (run, method))


def zone_scores(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str], *,
                zone: str | None = None, cls: str | None = None, sample: str | None = None) -> pd.DataFrame:
    """Per labelled image of ``split`` and zone of ``zone_set`` (or only ``zone``; only true class
    ``cls``): image_id, label, pred, confidence, correct, zone, score, mass_share.

    Images in id order, each image's zones in the order ``retcore explain`` wrote them; rows
    without a score are left out. ``sample``: only images with ids up to this cutoff
    (``retcore.results.sample``).
    """
    explained, eparams = explained_target(q, run, method, classes)
    where, params = "", ()
    if zone is not None:
        where, params = " AND z.zone = ?", (zone,)
    if cls:
        where, params = where + " AND p.label = ?", (*params, cls)
    if sample is not None:
        where, params = where + " AND p.image_id <= ? AND z.image_id <= ?", (*params, sample, sample)
    return frame(
        q, "SELECT p.image_id, p.label, p.pred, p.confidence, p.correct, z.zone, z.score, z.mass_share "
           "FROM predictions p JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
           f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {explained}{where} "
           "AND z.score IS NOT NULL AND p.label IS NOT NULL ORDER BY p.image_id, z.rowid",
        (run, split, method, zone_set, *eparams, *params))


def zone_summary(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str],
                 by: str = "label") -> pd.DataFrame:
    """Distribution of zone scores per class (``by`` = 'label' or 'pred') and zone, aggregated in SQL
    over every image: class, zone, n, mean, sd, q05, q25, median, q75, q95 (the ``zone_summaries``
    summary, stored by ``retcore explain``; computed on read without it)."""
    out = summaries.zone_summaries(q, run, split, method, classes, zone_set, "pred" if by == "pred" else "label")
    return out.drop(columns="mass_mean")


def zone_values(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str], *,
                by: str = "label", per_class: int | None = None, image_ids: Sequence[str] | None = None,
                zones: Sequence[str] | None = None) -> pd.DataFrame:
    """Per image and zone: image_id, class (``by``), zone, score — for distances and permutation tests.

    ``per_class`` keeps at most that many images of each class (its first images in image-id
    order, ``retcore.results.sample``) to bound the cost of permutation tests; ``image_ids`` /
    ``zones`` restrict the rows to those images / zones. Sorted by image, class, zone.
    """
    group = _group(by)
    explained, eparams = explained_target(q, run, method, classes)
    base = (f"SELECT p.image_id, {group} AS class, z.zone, z.score FROM predictions p "
            "JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
            f"WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {explained} "
            f"AND z.score IS NOT NULL AND {group} IS NOT NULL")
    params: tuple = (run, split, method, zone_set, *eparams)
    if image_ids is not None:
        ids = sorted(map(str, image_ids))
        base += " AND p.image_id IN (SELECT unnest(?::VARCHAR[]))"
        params = (*params, ids)
        if ids:  # lets DuckDB skip the row groups outside the ids' range
            base += " AND p.image_id BETWEEN ? AND ? AND z.image_id BETWEEN ? AND ?"
            params = (*params, ids[0], ids[-1], ids[0], ids[-1])
    if zones is not None:
        base += " AND z.zone IN (SELECT unnest(?::VARCHAR[]))"
        params = (*params, list(zones))
    if per_class:
        cut, cut_params = class_sample_sql(q, run, split, by, per_class, group)
        return frame(q, f"{base} AND {cut} ORDER BY ALL", (*params, *cut_params))
    return frame(q, base + " ORDER BY ALL", params)


def class_sample_sql(q: Source, run: str, split: str, by: str, per_class: int, group: str = "p.label",
                     ids: Sequence[str] = ("p.image_id", "z.image_id")) -> tuple[str, tuple]:
    """SQL condition keeping each class's first ``per_class`` images (id order) of ``run``'s
    ``split``; ``group``: the class column, ``ids``: image-id columns to bound (so that DuckDB reads
    only the row groups up to the largest cutoff). Returns (condition, its parameters)."""
    from retcore.results.sample import class_cutoffs

    cutoffs = class_cutoffs(q, run, split, by, int(per_class))
    if not cutoffs:
        return "false", ()
    names, values = list(cutoffs), [cutoffs[c] for c in cutoffs]
    bound = " AND ".join(f"{col} <= ?" for col in ids)
    return (f"{ids[0]} <= (?::VARCHAR[])[list_position(?::VARCHAR[], {group})] AND {bound}",
            (values, names, *([max(values)] * len(ids))))


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
    incorrect; None without images), ``n_boot`` (resamples used) and ``total`` (images with a score;
    more than ``n`` when the statistics use a sample, ``retcore.results.sample``)."""

    points: pd.DataFrame
    correlations: pd.DataFrame
    outcome: object
    n_boot: int
    total: int = 0

    @property
    def n(self) -> int:
        """Images in the statistics (with a score; the sample's, when sampled)."""
        return len(self.points)

    @property
    def sampled(self) -> bool:
        """True when the statistics use a sample of the images with a score."""
        return self.total > self.n


def focus(q: Source, run: str, split: str, method: str, zone_set: str, zone: str, classes: Sequence[str],
          cls: str | None = None, *, methods: Sequence[str] = ("spearman", "pearson"),
          scopes: Sequence[str] = ("overall", "class", "outcome"), n_boot: int = 1000, seed: int = 0,
          level: float = 0.95, boot_cells: int | None = None, max_images: int | None = None) -> Focus:
    """Correlation of confidence with the ``zone`` score (see the module docstring).

    ``scopes``: which rows of the correlation table ('overall', 'class', 'outcome');
    ``boot_cells`` caps resamples x images (see ``retcore.results.headline.boot_size``);
    ``max_images``: above this many images with a score, use those among the split's first
    ``max_images`` images by id (``retcore.results.sample``; the dashboard passes ``SAMPLE_IMAGES``).
    """
    from retcore.results.headline import boot_size
    from retcore.results.sample import split_sample
    from retcore.stats import compare_outcomes, confidence_correlations

    cutoff, total = None, None
    if max_images:
        rows = summaries.zone_summaries(q, run, split, method, classes, zone_set)
        rows = rows[(rows["zone"] == zone) & ((rows["class"] == cls) if cls else True)]
        total = int(rows["n"].sum())
        if total > max_images:
            cutoff = split_sample(q, run, split, max_images).cutoff
    points = zone_scores(q, run, split, method, zone_set, classes, zone=zone, cls=cls, sample=cutoff)
    total = len(points) if cutoff is None else total
    if points.empty:
        return Focus(points, pd.DataFrame(), None, 0, total)
    nb = boot_size(len(points), n_boot, cells=boot_cells) if boot_cells else n_boot
    corr = confidence_correlations(points, score="score", confidence="confidence",
                                   label="label" if "class" in scopes else None,
                                   correct="correct" if "outcome" in scopes else None,
                                   methods=tuple(methods), n_boot=nb, seed=seed, level=level)
    if "overall" not in scopes:
        corr = corr[corr["scope"] != "overall"].reset_index(drop=True)
    return Focus(points, corr, compare_outcomes(points, "score", "correct"), nb, total)
