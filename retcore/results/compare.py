"""Two runs (or two methods) on the same images: paired prediction and zone-score comparisons.

Differences are B - A with percentile-bootstrap intervals (``retcore.stats.paired_difference``);
accuracy and per-class recall are tested with McNemar, confidence and zone scores with the
Wilcoxon signed-rank test; p-values are Holm-adjusted over the rows of each table.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_target
from retcore.results.zones import zone_list

__all__ = ["THIRDS_ALIASES", "compare_cases", "compare_predictions", "compare_runs", "compare_zone_moved",
           "compare_zone_scores", "compare_zones", "single_target"]

#: ``thirds`` zones that duplicate left / right (by the eye); left out of paired comparisons.
THIRDS_ALIASES = ("nasal", "temporal")


def _bound(sample: str | None, *columns: str) -> tuple[str, tuple]:
    """SQL keeping image ids up to the sample cutoff ``sample`` on each of ``columns`` (none: no condition)."""
    if sample is None:
        return "", ()
    return "".join(f" AND {c} <= ?" for c in columns), (sample,) * len(columns)


def compare_predictions(q: Source, run_a: str, run_b: str, split: str, sample: str | None = None) -> pd.DataFrame:
    """Predictions of two runs on the labelled images they share: image_id, label, pred_a, pred_b,
    confidence_a, confidence_b, correct_a, correct_b (image-id order). ``sample``: only image ids
    up to this cutoff (``retcore.results.sample``)."""
    bound, bparams = _bound(sample, "a.image_id", "b.image_id")
    return frame(
        q, "SELECT a.image_id, a.label, a.pred AS pred_a, b.pred AS pred_b, a.confidence AS confidence_a, "
           "b.confidence AS confidence_b, a.correct AS correct_a, b.correct AS correct_b "
           "FROM predictions a JOIN predictions b ON b.image_id = a.image_id AND b.run_id = ? AND b.split = a.split "
           f"WHERE a.run_id = ? AND a.split = ? AND a.label IS NOT NULL{bound} ORDER BY a.image_id",
        (run_b, run_a, split, *bparams))


def compare_cases(q: Source, run_a: str, run_b: str, split: str, limit: int = 200,
                  sample: str | None = None) -> pd.DataFrame:
    """Images whose correctness differs between two runs (fixed by B first, then broken by B);
    ``sample`` as in :func:`compare_predictions`."""
    bound, bparams = _bound(sample, "a.image_id", "b.image_id")
    return frame(
        q, "SELECT a.image_id, a.label, a.pred AS pred_a, b.pred AS pred_b, a.confidence AS confidence_a, "
           "b.confidence AS confidence_b, CASE WHEN b.correct THEN 'fixed by B' ELSE 'broken by B' END AS change "
           "FROM predictions a JOIN predictions b ON b.image_id = a.image_id AND b.run_id = ? AND b.split = a.split "
           f"WHERE a.run_id = ? AND a.split = ? AND a.correct <> b.correct{bound} "
           "ORDER BY change DESC, abs(a.confidence - b.confidence) DESC, a.image_id LIMIT ?",
        (run_b, run_a, split, *bparams, int(limit)))


def single_target(q: Source, run: str, sample: str | None = None) -> bool:
    """True when every image of ``run`` (with an id up to ``sample``, when given) was explained for one
    class per method (then its zone scores are those of the explained class without a join with the
    predictions)."""
    if "explanations" not in tables(q):
        return True
    bound, bparams = _bound(sample, "image_id")
    extra = frame(q, "SELECT count(*) - count(DISTINCT (image_id, method)) AS extra FROM explanations "
                     f"WHERE run_id = ?{bound}", (run, *bparams))["extra"]
    return bool(len(extra) == 0 or pd.isna(extra.iloc[0]) or int(extra.iloc[0]) == 0)


def _zone_pairs(q: Source, select: str, run_a: str, method_a: str, run_b: str, method_b: str, split: str,
                zone_set: str, classes_a: Sequence[str], classes_b: Sequence[str],
                zones: Sequence[str] | None, sample: str | None = None) -> tuple[str, tuple]:
    """SQL joining the zone scores of (run_a, method_a) and (run_b, method_b) per image and zone
    (image ids up to ``sample`` only, when given)."""
    zone_filter, zone_params = "", ()
    if zones is not None:
        zone_filter = " AND a.zone IN (SELECT unnest(?::VARCHAR[]))"
        zone_params = (list(zones),)
    bound, bparams = _bound(sample, "a.image_id", "b.image_id", "p.image_id")
    zone_filter, zone_params = zone_filter + bound, (*zone_params, *bparams)
    if single_target(q, run_a, sample) and single_target(q, run_b, sample):  # one score per image and zone a side
        sql = (f"SELECT {select} FROM zone_scores a JOIN zone_scores b ON b.image_id = a.image_id AND b.zone = a.zone "
               "JOIN predictions p ON p.image_id = a.image_id AND p.run_id = a.run_id "
               "WHERE a.run_id = ? AND a.method = ? AND a.zone_set = ? AND b.run_id = ? AND b.method = ? "
               "AND b.zone_set = ? AND p.split = ? AND a.score IS NOT NULL AND b.score IS NOT NULL" + zone_filter)
        return sql, (run_a, method_a, zone_set, run_b, method_b, zone_set, split, *zone_params)
    explained_a, params_a = explained_target(q, run_a, method_a, classes_a)
    explained_b, params_b = explained_target(q, run_b, method_b, classes_b)
    side = ("SELECT p.image_id, p.label, z.zone, z.score FROM predictions p JOIN zone_scores z "
            "ON z.run_id = p.run_id AND z.image_id = p.image_id WHERE p.run_id = ? AND p.split = ? AND z.method = ? "
            "AND z.zone_set = ? AND {explained} AND z.score IS NOT NULL")
    sql = (f"WITH a AS ({side.format(explained=explained_a)}), b AS ({side.format(explained=explained_b)}) "
           f"SELECT {select} FROM a JOIN b ON b.image_id = a.image_id AND b.zone = a.zone "
           "JOIN predictions p ON p.image_id = a.image_id AND p.run_id = ? WHERE true" + zone_filter)
    return sql, (run_a, split, method_a, zone_set, *params_a, run_b, split, method_b, zone_set, *params_b, run_a,
                 *zone_params)


def compare_zone_scores(q: Source, run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                        classes_a: Sequence[str], classes_b: Sequence[str],
                        zones: Sequence[str] | None = None, sample: str | None = None) -> pd.DataFrame:
    """Per shared image and zone: zone (categorical), score_a, score_b (explained-class zone scores of
    each side); ``zones`` restricts the zones (default: every zone of ``zone_set`` of A); ``sample``
    as in :func:`compare_predictions`."""
    if zones is None:
        listed = zone_list(q, run_a, method_a)
        zones = listed.loc[listed["zone_set"] == zone_set, "zone"].tolist()
    if not zones:
        return pd.DataFrame(columns=["zone", "score_a", "score_b"])
    # the zone travels as its position in ``zones`` (small ints, not 100,000s of strings)
    sql, params = _zone_pairs(q, "(list_position(?::VARCHAR[], a.zone) - 1)::TINYINT AS zone_i, a.score AS score_a, "
                                 "b.score AS score_b", run_a, method_a, run_b, method_b, split, zone_set, classes_a,
                              classes_b, zones, sample)
    out = frame(q, sql + " ORDER BY zone_i, a.image_id", (list(zones), *params))
    zone = pd.Categorical.from_codes(out["zone_i"].to_numpy(), categories=list(zones))
    return pd.DataFrame({"zone": zone, "score_a": out["score_a"], "score_b": out["score_b"]})


def compare_zone_moved(q: Source, run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                       zone: str, classes_a: Sequence[str], classes_b: Sequence[str], limit: int = 200,
                       sample: str | None = None) -> pd.DataFrame:
    """The images whose ``zone`` score changed most between A and B: image_id, label, score_a, score_b, delta;
    ``sample`` as in :func:`compare_predictions`."""
    sql, params = _zone_pairs(q, "a.image_id, p.label, a.score AS score_a, b.score AS score_b, "
                                 "b.score - a.score AS delta", run_a, method_a, run_b, method_b, split, zone_set,
                              classes_a, classes_b, [zone], sample)
    return frame(q, sql + " ORDER BY abs(delta) DESC, a.image_id LIMIT ?", (*params, int(limit)))


def _boot(n: int, boot_cells: int | None) -> int:
    from retcore.results.headline import boot_size

    return boot_size(n, cells=boot_cells) if boot_cells else 1000


def _sample(q: Source, run: str, split: str, max_images: int | None) -> tuple[str | None, int]:
    """(cutoff of the split's sample or None, images in ``run``'s ``split``) for ``max_images``."""
    from retcore.results.sample import split_sample

    if not max_images:
        return None, 0
    sample = split_sample(q, run, split, max_images)
    return (sample.cutoff if sample.sampled else None), sample.n


def compare_runs(q: Source, run_a: str, run_b: str, split: str, classes: Sequence[str],
                 boot_cells: int | None = None, max_images: int | None = None) -> dict[str, Any]:
    """Paired comparison of two runs' predictions on their shared images.

    Returns dict: n; deltas (item, a, b, difference (B - A), low, high, p_value, test, p_holm)
    for accuracy, mean confidence and recall per class; changed (:func:`compare_cases`);
    sampled_from (images of A's split when ``max_images`` made it use the images among the split's
    first ``max_images`` by id, ``retcore.results.sample``; else None).
    """
    from retcore.stats import holm, mcnemar, paired_difference

    cutoff, split_n = _sample(q, run_a, split, max_images)
    df = compare_predictions(q, run_a, run_b, split, cutoff)
    out: dict[str, Any] = {"n": len(df), "sampled_from": split_n if cutoff is not None else None}
    if df.empty:
        return out
    nb = _boot(len(df), boot_cells)
    rows = []
    ca, cb = df["correct_a"].astype(float).to_numpy(), df["correct_b"].astype(float).to_numpy()
    pd_acc = paired_difference(cb, ca, n_boot=nb, seed=0)
    mc = mcnemar(df["correct_a"].astype(bool), df["correct_b"].astype(bool))
    rows.append({"item": "accuracy", "a": ca.mean(), "b": cb.mean(), "difference": pd_acc.difference.value,
                 "low": pd_acc.difference.low, "high": pd_acc.difference.high, "p_value": mc.p_value,
                 "test": mc.test})
    conf = paired_difference(df["confidence_b"].to_numpy(), df["confidence_a"].to_numpy(), n_boot=nb, seed=0)
    rows.append({"item": "mean confidence", "a": df["confidence_a"].mean(), "b": df["confidence_b"].mean(),
                 "difference": conf.difference.value, "low": conf.difference.low, "high": conf.difference.high,
                 "p_value": conf.test.p_value, "test": conf.test.test})
    for c in classes:
        part = df[df["label"] == c]
        if part.empty:
            continue
        a, b = part["correct_a"].astype(bool), part["correct_b"].astype(bool)
        d = paired_difference(b.astype(float).to_numpy(), a.astype(float).to_numpy(),
                              n_boot=_boot(len(part), boot_cells), seed=0)
        t = mcnemar(a, b)
        rows.append({"item": f"recall {c}", "a": a.mean(), "b": b.mean(), "difference": d.difference.value,
                     "low": d.difference.low, "high": d.difference.high, "p_value": t.p_value, "test": t.test})
    deltas = pd.DataFrame(rows)
    deltas["p_holm"] = holm(deltas["p_value"].to_numpy(np.float64))
    out["deltas"] = deltas
    out["changed"] = compare_cases(q, run_a, run_b, split, sample=cutoff)
    return out


def compare_zones(q: Source, run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                  classes_a: Sequence[str], classes_b: Sequence[str], boot_cells: int | None = None,
                  max_images: int | None = None) -> dict[str, Any]:
    """Paired zone-score shifts (B - A) per zone, and the images whose center score moved most.

    The ``thirds`` aliases nasal / temporal (copies of left / right) are left out. Returns dict:
    n (images); shifts (item=zone, a, b, difference (B - A), low, high, p_value, effect, n, p_holm);
    moved_zone and moved (:func:`compare_zone_moved` of the 'center' zone, else the first zone);
    sampled_from as in :func:`compare_runs`.
    """
    from retcore.stats import holm, paired_difference

    listed = zone_list(q, run_a, method_a)
    zones = [z for z in listed.loc[listed["zone_set"] == zone_set, "zone"] if z not in THIRDS_ALIASES]
    cutoff, split_n = _sample(q, run_a, split, max_images)
    df = compare_zone_scores(q, run_a, method_a, run_b, method_b, split, zone_set, classes_a, classes_b, zones=zones,
                             sample=cutoff)
    out: dict[str, Any] = {"n": int(df.groupby("zone", observed=True).size().max()) if not df.empty else 0,
                           "sampled_from": split_n if cutoff is not None else None}
    if df.empty:
        return out
    rows = []
    for zone, part in df.groupby("zone", sort=True, observed=True):
        d = paired_difference(part["score_b"].to_numpy(), part["score_a"].to_numpy(),
                              n_boot=_boot(len(part), boot_cells), seed=0)
        rows.append({"item": zone, "a": part["score_a"].mean(), "b": part["score_b"].mean(),
                     "difference": d.difference.value, "low": d.difference.low, "high": d.difference.high,
                     "p_value": d.test.p_value, "effect": d.test.effect, "n": d.test.n})
    shifts = pd.DataFrame(rows)
    shifts["p_holm"] = holm(shifts["p_value"].to_numpy(np.float64))
    out["shifts"] = shifts
    key = "center" if (df["zone"] == "center").any() else str(df["zone"].iloc[0])
    out["moved_zone"] = key
    out["moved"] = compare_zone_moved(q, run_a, method_a, run_b, method_b, split, zone_set, key, classes_a, classes_b,
                                      sample=cutoff)
    return out
