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

__all__ = ["QUALITY_METRICS", "quality", "quality_frame"]

#: Quality metrics offered as strata (``image_quality.metric``).
QUALITY_METRICS = ("blur", "glare", "illumination_mean", "illumination_contrast", "off_centre")
#: The ``thirds`` zones whose drift across strata is tested.
DRIFT_ZONES = ("center", "left", "right")


def quality_frame(q: Source, run: str, split: str, method: str | None, zone_set: str, zone: str,
                  classes: Sequence[str], cls: str | None = None, metric: str = "blur") -> pd.DataFrame:
    """Per labelled image with quality data: image_id, label, correct, confidence, quality_grade, value
    (the quality ``metric``) and, with a method, score (the zone's explained-class score; NULL without)."""
    where, extra = (" AND p.label = ?", (cls,)) if cls else ("", ())
    zone_sql, zone_join, zone_params = "NULL::DOUBLE AS score", "", ()
    if method:
        explained, eparams = explained_target(q, run, method, classes)
        zone_sql = "z.score"
        zone_join = ("LEFT JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id AND z.method = ? "
                     f"AND z.zone_set = ? AND z.zone = ? AND {explained}")
        zone_params = (method, zone_set, zone, *eparams)
    return frame(
        q, f"SELECT p.image_id, p.label, p.correct, p.confidence, l.quality_grade, qm.value, {zone_sql} "
           "FROM predictions p LEFT JOIN landmarks l ON l.image_id = p.image_id "
           "LEFT JOIN image_quality qm ON qm.image_id = p.image_id AND qm.metric = ? "
           f"{zone_join} WHERE p.run_id = ? AND p.split = ? AND p.label IS NOT NULL{where} "
           "AND (l.image_id IS NOT NULL OR qm.image_id IS NOT NULL) ORDER BY p.image_id",
        (metric, *zone_params, run, split, *extra))


def quality(q: Source, run: str, split: str, method: str | None, zone: str, classes: Sequence[str],
            cls: str | None, metric: str, mode: str, k: int, reference: str | None = None, *,
            per_stratum: int = 1000, n_permutations: int = 500, boot_cells: int | None = None) -> dict[str, Any]:
    """Accuracy, zone score and zone-score drift per quality stratum (``mode``: 'quantile' bins or
    quality 'label's; metric 'grade' = the overall quality grade).

    Returns dict: n; order (strata); accuracy (``accuracy_by_stratum`` table) and chi2
    (TestResult); scores (stratum, n, mean, low, high: bootstrap) and kw (Kruskal-Wallis across
    strata) when there are zone scores; drift (stratum, reference, zone, distance, p_value,
    p_holm: Wasserstein of each ``thirds`` zone score vs ``reference``, default the first
    stratum; up to ``per_stratum`` images per stratum).
    """
    from retcore.stats import accuracy_by_stratum, bootstrap_mean, drift_matrix, holm, kruskal_wallis

    data = quality_frame(q, run, split, method, "thirds", zone, classes, cls,
                         metric=metric if metric != "grade" else "blur")
    out: dict[str, Any] = {"n": len(data)}
    if data.empty:
        return out
    if metric != "grade":
        data[metric] = data["value"]
    data["stratum"], order = strata(data, metric, mode, k)
    data = data[data["stratum"].notna()]
    out["order"] = order
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
