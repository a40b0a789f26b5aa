"""Image quality against accuracy and focus: the Image quality page's tables.

Images of a split are grouped into strata of one quality metric
(:func:`retcore.results.strata.strata`); per stratum: accuracy (Wilson, chi-square across
strata), the mean zone score (bootstrap) with Kruskal-Wallis across strata, and the
Wasserstein drift of each ``thirds`` zone score from a reference stratum (permutation p,
Holm-adjusted over the table).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from retcore.results.executor import Source, frame
from retcore.results.explained import explained_target
from retcore.results.headline import boot_size
from retcore.results.strata import strata
from retcore.results.zones import zone_values

__all__ = ["QUALITY_METRICS", "quality", "quality_frame", "strata_order"]

#: Quality metrics offered as strata (``image_quality.metric``).
QUALITY_METRICS = ("blur", "glare", "illumination_mean", "illumination_contrast", "off_centre")
#: The ``thirds`` zones whose drift across strata is tested.
DRIFT_ZONES = ("center", "left", "right")


def quality_frame(q: Source, run: str, split: str, method: str | None, zone_set: str, zone: str,
                  classes: Sequence[str], cls: str | None = None, metric: str = "blur",
                  sample: str | None = None) -> pd.DataFrame:
    """Per labelled image with quality data: image_id, label, correct, confidence, quality_grade, value
    (the quality ``metric``) and, with a method, score (the zone's explained-class score; NULL without).
    ``sample``: only images with ids up to this cutoff (``retcore.results.sample``)."""
    where, extra = (" AND p.label = ?", (cls,)) if cls else ("", ())
    bound, bparams = ("", ()) if sample is None else (" AND {}.image_id <= ?", (sample,))
    if sample is not None:
        where += " AND p.image_id <= ?"
        extra = (*extra, sample)
    zone_sql, zone_join, zone_params = "NULL::DOUBLE AS score", "", ()
    if method:
        explained, eparams = explained_target(q, run, method, classes)
        zone_sql = "z.score"
        zone_join = ("LEFT JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id AND z.method = ? "
                     f"AND z.zone_set = ? AND z.zone = ? AND {explained}{bound.format('z')}")
        zone_params = (method, zone_set, zone, *eparams, *bparams)
    return frame(
        q, f"SELECT p.image_id, p.label, p.correct, p.confidence, l.quality_grade, qm.value, {zone_sql} "
           f"FROM predictions p LEFT JOIN landmarks l ON l.image_id = p.image_id{bound.format('l')} "
           f"LEFT JOIN image_quality qm ON qm.image_id = p.image_id AND qm.metric = ?{bound.format('qm')} "
           f"{zone_join} WHERE p.run_id = ? AND p.split = ? AND p.label IS NOT NULL{where} "
           "AND (l.image_id IS NOT NULL OR qm.image_id IS NOT NULL) ORDER BY p.image_id",
        (*bparams, metric, *bparams, *zone_params, run, split, *extra))


def _stratified(q: Source, run: str, split: str, method: str | None, zone: str, classes: Sequence[str],
                cls: str | None, metric: str, mode: str, k: int, max_images: int | None
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The :func:`quality_frame` rows with a stratum (column ``stratum``), and the dict of n, order and
    sampled_from (see :func:`quality`)."""
    from retcore.results.sample import split_sample

    sample = split_sample(q, run, split, max_images) if max_images else None
    cutoff = sample.cutoff if sample is not None and sample.sampled else None
    data = quality_frame(q, run, split, method, "thirds", zone, classes, cls,
                         metric=metric if metric != "grade" else "blur", sample=cutoff)
    out: dict[str, Any] = {"n": len(data), "sampled_from": sample.n if cutoff is not None else None}
    if data.empty:
        return data, out
    if metric != "grade":
        data[metric] = data["value"]
    data["stratum"], out["order"] = strata(data, metric, mode, k)
    return data[data["stratum"].notna()], out


def strata_order(q: Source, run: str, split: str, method: str | None, zone: str, classes: Sequence[str],
                 cls: str | None, metric: str, mode: str, k: int, max_images: int | None = None) -> dict[str, Any]:
    """The strata :func:`quality` would use, without its statistics: dict of n, order (when n > 0) and
    sampled_from (e.g. to offer the reference stratum before computing the drift)."""
    return _stratified(q, run, split, method, zone, classes, cls, metric, mode, k, max_images)[1]


def quality(q: Source, run: str, split: str, method: str | None, zone: str, classes: Sequence[str],
            cls: str | None, metric: str, mode: str, k: int, reference: str | None = None, *,
            per_stratum: int = 1000, n_permutations: int = 500, boot_cells: int | None = None,
            max_images: int | None = None) -> dict[str, Any]:
    """Accuracy, zone score and zone-score drift per quality stratum (``mode``: 'quantile' bins or
    quality 'label's; metric 'grade' = the overall quality grade).

    Returns dict: n; order (strata); accuracy (``accuracy_by_stratum`` table) and chi2
    (TestResult); scores (stratum, n, mean, low, high: bootstrap) and kw (Kruskal-Wallis across
    strata) when there are zone scores; drift (stratum, reference, zone, distance, p_value,
    p_holm: Wasserstein of each ``thirds`` zone score vs ``reference``, default the first
    stratum; up to ``per_stratum`` images per stratum); sampled_from (images of the split when
    ``max_images`` made every table use the images among its first ``max_images`` by id,
    ``retcore.results.sample``; else None).
    """
    from retcore.stats import accuracy_by_stratum, bootstrap_mean, drift_matrix, holm, kruskal_wallis

    data, out = _stratified(q, run, split, method, zone, classes, cls, metric, mode, k, max_images)
    if data.empty:
        return out
    order = out["order"]
    acc = accuracy_by_stratum(data, "stratum", "correct")
    out["accuracy"], out["chi2"] = acc.table, acc.test
    scored = data[data["score"].notna()]
    out["scores"] = pd.DataFrame()
    out["drift"] = pd.DataFrame()
    if scored.empty or not method:
        return out
    rows = []
    for s in order:
        v = scored.loc[scored["stratum"] == s, "score"].to_numpy(np.float64)
        est = bootstrap_mean(v, n_boot=boot_size(len(v), cells=boot_cells) if boot_cells else 1000, seed=0)
        rows.append({"stratum": s, "n": len(v), "mean": est.value, "low": est.low, "high": est.high})
    out["scores"] = pd.DataFrame(rows)
    out["kw"] = kruskal_wallis({s: scored.loc[scored["stratum"] == s, "score"].to_numpy() for s in order})
    ids = scored.sample(frac=1.0, random_state=0).groupby("stratum").head(per_stratum)[["image_id", "stratum"]]
    zones = zone_values(q, run, split, method, "thirds", classes, by="label", image_ids=ids["image_id"].tolist(),
                        zones=list(DRIFT_ZONES)).merge(ids, on="image_id")
    parts = []
    for zone_name, part in zones.groupby("zone"):
        present = [s for s in order if (part["stratum"] == s).any()]
        ref = reference if reference in present else (present[0] if present else None)
        if len(present) > 1:
            m = drift_matrix(part["score"].to_numpy(), part["stratum"].to_numpy(object), reference=ref,
                             n_permutations=n_permutations, seed=0)
            parts.append(m.assign(zone=zone_name))
    if parts:
        drift = pd.concat(parts, ignore_index=True).rename(columns={"group_a": "stratum", "group_b": "reference"})
        drift["p_holm"] = holm(drift["p_value"].to_numpy(np.float64))
        out["drift"] = drift
    return out
