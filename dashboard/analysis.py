"""Page computations: SQL results from :mod:`dashboard.queries` run through :mod:`retcore.stats`.

Each public function is cached on its arguments and the database stamp, so a
statistic (bootstrap, permutation test) is computed once per database state.
Bootstrap and permutation sizes shrink on very large selections so a page
stays interactive; the page says so when it happens.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.data import db_path, db_stamp

__all__ = ["ECE_BINS", "boot_size", "headline", "reliability"]

#: Equal-width confidence bins of the headline ECE (as ``retcore export``).
ECE_BINS = 15

#: Budget of rows x resamples for one O(B N) bootstrap (keeps a page under ~2 s on 2 cores).
BOOT_CELLS = 5_000_000


def boot_size(n: int, full: int = 1000, floor: int = 100) -> int:
    """Bootstrap resamples for ``n`` rows: ``full`` (1000) up to 5,000 rows, then fewer so that
    B x n stays within BOOT_CELLS, never below ``floor`` (100 at 50,000 rows and more)."""
    if n <= 0:
        return 0
    return int(max(floor, min(full, BOOT_CELLS // n)))


def _stamped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Cache ``fn`` on its arguments plus the database stamp (recomputed when a job writes)."""
    def inner(stamp: float, *args: Any, **kwargs: Any) -> Any:
        del stamp  # part of the cache key only
        return fn(*args, **kwargs)

    # Streamlit keys a cache by module + qualified name + source: give each its own name.
    inner.__qualname__ = inner.__name__ = f"stamped_{fn.__name__}"
    inner.__module__ = fn.__module__
    cached = st.cache_data(show_spinner=False, max_entries=64)(inner)

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return cached(db_stamp(db_path()), *args, **kwargs)

    return wrapper


# -------------------------------------------------------------------------- overview


def _stored(run: str, split: str) -> dict[str, float]:
    m = queries.metrics(run, split)
    overall = m[m["class_name"] == ""]
    return dict(zip(overall["metric"], overall["value"]))


@_stamped
def headline(run: str, split: str, classes: tuple[str, ...]) -> dict[str, Any]:
    """Headline metrics with intervals, per-class metrics and ECE of one run and split.

    Returns dict: n; table (metric, value, low, high, interval); per_class (see
    ``retcore.stats.classification.per_class_metrics`` plus auroc columns); ece (the
    value of the table's ``ece`` row, see ``retcore.stats.calibration_error``; NaN without
    probabilities for the run's classes); note.
    """
    from retcore.stats.classification import auroc_table, encode_labels, overall_metrics, per_class_metrics
    from retcore.stats.classification import calibration_error as stats_calibration_error

    labels = list(classes)
    conf = queries.confusion(run, split)
    n = int(conf["count"].sum()) if not conf.empty else 0
    if n == 0:
        return {"n": 0, "table": pd.DataFrame(), "per_class": pd.DataFrame(), "ece": float("nan"), "note": ""}
    y_true = np.repeat(conf["true_label"].to_numpy(object), conf["count"].to_numpy())
    y_pred = np.repeat(conf["pred_label"].to_numpy(object), conf["count"].to_numpy())
    overall = overall_metrics(y_true, y_pred, labels, n_boot=1000, seed=0)
    overall["interval"] = "bootstrap 95% (1000 resamples of the confusion matrix)"
    acc = overall["metric"] == "accuracy"
    from retcore.stats.intervals import wilson_interval

    k = int(conf.loc[conf["true_label"] == conf["pred_label"], "count"].sum())
    w = wilson_interval(k, n)
    overall.loc[acc, ["value", "low", "high", "interval"]] = [w.value, w.low, w.high, "Wilson 95%"]

    meta, probs = queries.prediction_probs(run, split)
    note = "Intervals: Wilson for accuracy; bootstrap (1000) for the others."
    ece = None
    per_class = per_class_metrics(y_true, y_pred, labels, n_boot=1000, seed=0)
    if probs.shape[1:] == (len(labels),):
        nb = boot_size(len(meta))
        auroc = auroc_table(meta["label"].to_numpy(object), probs, labels, n_boot=nb, seed=0)
        macro = auroc[auroc["class"] == "macro"].iloc[0]
        row = pd.DataFrame([{"metric": "macro_auroc", "value": macro["auroc"], "low": macro["low"],
                             "high": macro["high"], "n": n, "interval": f"bootstrap 95% ({nb} resamples)"}])
        overall = pd.concat([overall, row], ignore_index=True)
        per = auroc[auroc["class"] != "macro"].set_index("class")
        per_class["auroc"] = per_class["class"].map(per["auroc"])
        per_class["auroc_low"] = per_class["class"].map(per["low"])
        per_class["auroc_high"] = per_class["class"].map(per["high"])
        ece = stats_calibration_error(probs.max(axis=1), probs.argmax(axis=1) == encode_labels(meta["label"], labels),
                                n_boot=nb, seed=0)
        ece_row = pd.DataFrame([{"metric": "ece", "value": ece.value, "low": ece.low, "high": ece.high, "n": len(meta),
                                 "interval": f"bootstrap 95% ({nb} resamples of images), {ECE_BINS} equal-width bins"}])
        overall = pd.concat([overall, ece_row], ignore_index=True)
        if nb < 1000:
            note += f" AUROC and ECE: {nb} resamples on {len(meta):,} images."
    stored = _stored(run, split)
    if "accuracy" in stored and abs(stored["accuracy"] - w.value) > 1e-9:
        note += " (Recomputed from the stored predictions; the metrics table differs — rerun `retcore predict`.)"
    return {"n": n, "table": overall, "per_class": per_class, "ece": ece.value if ece is not None else float("nan"),
            "note": note}


@_stamped
def reliability(run: str, split: str, n_bins: int = 10) -> pd.DataFrame:
    """Reliability bins aggregated in SQL, with Wilson intervals (the columns of
    ``retcore.stats.reliability_curve``, non-empty bins only)."""
    from retcore.stats.intervals import wilson_bounds

    bins = queries.reliability(run, split, n_bins)
    acc, low, high = wilson_bounds(bins["correct"].to_numpy(), bins["n"].to_numpy())
    return pd.DataFrame({"bin": bins["bin"], "bin_low": bins["bin"] / n_bins, "bin_high": (bins["bin"] + 1) / n_bins,
                         "mean_confidence": bins["confidence"], "accuracy": acc, "accuracy_low": low,
                         "accuracy_high": high, "count": bins["n"]})


# ------------------------------------------------------------------ confidence vs focus

#: Points drawn in a scatter (the statistics always use every image).
MAX_POINTS = 4000


@_stamped
def focus(run: str, split: str, method: str, zone_set: str, zone: str, classes: tuple[str, ...],
          cls: str | None) -> dict[str, Any]:
    """Zone score vs confidence: per-image points (sampled for drawing), correlations, outcome test.

    Returns dict: points (image_id, class_name, score, confidence, correct), n, sampled (bool),
    correlations (``confidence_correlations``: scope, group, method, value, low, high, p_value, n),
    n_boot, outcome (Mann-Whitney of the score, correct vs incorrect).
    """
    from retcore.stats import compare_outcomes, confidence_correlations

    df = queries.focus_points(run, split, method, zone_set, zone, list(classes), cls)
    n = len(df)
    if n == 0:
        return {"points": df, "n": 0, "sampled": False, "correlations": pd.DataFrame(), "n_boot": 0,
                "outcome": None}
    nb = boot_size(n)
    corr = confidence_correlations(df, score="score", confidence="confidence", label="label", correct="correct",
                                   n_boot=nb, seed=0)
    outcome = compare_outcomes(df, "score", "correct")
    points = df.rename(columns={"label": "class_name"})[["image_id", "class_name", "score", "confidence", "correct"]]
    sampled = n > MAX_POINTS
    if sampled:
        points = points.sample(MAX_POINTS, random_state=0).sort_values("image_id")
    return {"points": points.reset_index(drop=True), "n": n, "sampled": sampled, "correlations": corr,
            "n_boot": nb, "outcome": outcome}


# ------------------------------------------------------------------------ class drift

#: Images per class used for mean maps, distances and permutation tests on the drift pages.
DRIFT_PER_CLASS = 1000
PERMUTATIONS = 500


def _grids_3d(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from retcore.stats import normalise_heatmaps

    return normalise_heatmaps(values.reshape(len(values), *shape))


@_stamped
def class_maps(run: str, split: str, method: str, classes: tuple[str, ...], by: str) -> dict[str, Any]:
    """Mean normalised heatmap per class and the JS-distance drift matrix between classes.

    Returns dict: means {class: (gh, gw)}, counts {class: n}, shape, matrix (``drift_matrix``
    rows, one per pair), capped (bool: a class had more than DRIFT_PER_CLASS images).
    """
    from retcore.stats import drift_matrix, mean_heatmap

    meta, values, shape = queries.class_grids(run, split, method, list(classes), by=by,
                                              per_class=DRIFT_PER_CLASS)
    if meta.empty:
        return {"means": {}, "counts": {}, "shape": shape, "matrix": pd.DataFrame(), "capped": False}
    maps = _grids_3d(values, shape)
    groups = meta["class"].to_numpy(object)
    means = {c: mean_heatmap(maps[groups == c]) for c in classes if (groups == c).any()}
    counts = {c: int((groups == c).sum()) for c in means}
    matrix = drift_matrix(maps, groups, n_permutations=PERMUTATIONS, seed=0) if len(means) > 1 else pd.DataFrame()
    capped = bool(queries.class_counts(run, split, by).max() > DRIFT_PER_CLASS) if counts else False
    return {"means": means, "counts": counts, "shape": shape, "matrix": matrix, "capped": capped}


@_stamped
def zone_drift(run: str, split: str, method: str, zone_set: str, classes: tuple[str, ...], by: str,
               reference: str) -> dict[str, Any]:
    """Zone-score distributions per class and their drift from a reference class.

    Returns dict: values (image_id, class, zone, score: up to DRIFT_PER_CLASS images per
    class), summary (exact, from SQL: class, zone, n, mean, sd, q05..q95), drift
    (zone, class, distance, p_value, p_holm: Wasserstein vs ``reference``), tests
    (zone, H, p, epsilon^2: Kruskal-Wallis across classes).
    """
    from retcore.stats import drift_matrix, holm, kruskal_wallis

    values = queries.zone_values(run, split, method, zone_set, list(classes), by=by, per_class=DRIFT_PER_CLASS)
    summary = queries.zone_summary(run, split, method, zone_set, list(classes), by=by)
    if not summary.empty:
        q = np.vstack(summary["q"].to_numpy())
        for i, name in enumerate(("q05", "q25", "median", "q75", "q95")):
            summary[name] = q[:, i]
        summary = summary.drop(columns="q")
    drift_rows, tests = [], []
    for zone, part in values.groupby("zone", sort=True):
        groups = {c: g["score"].to_numpy() for c, g in part.groupby("class")}
        kw = kruskal_wallis(groups)
        tests.append({"zone": zone, "H": kw.statistic, "p_value": kw.p_value, "epsilon2": kw.effect, "n": kw.n})
        if reference in groups and len(groups) > 1:
            m = drift_matrix(part["score"].to_numpy(), part["class"].to_numpy(object), reference=reference,
                             n_permutations=PERMUTATIONS, seed=0)
            drift_rows.append(m.assign(zone=zone))
    drift = pd.concat(drift_rows, ignore_index=True) if drift_rows else pd.DataFrame(
        columns=["group_a", "group_b", "metric", "distance", "p_value", "p_holm", "n_a", "n_b", "zone"])
    if not drift.empty:
        drift["p_holm"] = holm(drift["p_value"].to_numpy(np.float64))  # across every zone and class
    tests = pd.DataFrame(tests, columns=["zone", "H", "p_value", "epsilon2", "n"])
    if not tests.empty:
        tests["p_holm"] = holm(tests["p_value"].to_numpy(np.float64))
    return {"values": values, "summary": summary, "drift": drift, "tests": tests}


# ------------------------------------------------------------------------ image quality


def _bins(values: pd.Series, k: int) -> pd.Series:
    ranked = values.rank(method="first")
    labels = pd.qcut(ranked, q=k, labels=False, duplicates="drop")
    edges = values.groupby(labels).agg(["min", "max"])
    names = {i: f"Q{i + 1} [{row['min']:.3g}, {row['max']:.3g}]" for i, row in edges.iterrows()}
    return labels.map(names)


#: Which end of each quality metric is the better photo (the default reference stratum).
BETTER = {"blur": "high", "glare": "low", "illumination_mean": "middle", "illumination_contrast": "high",
          "off_centre": "low", "grade": "low"}


def reference_stratum(metric: str, order: list[str]) -> str | None:
    """The best-quality stratum of ``order`` (labels: 'good'; quantile bins: by ``BETTER``)."""
    if not order:
        return None
    if "good" in order:
        return "good"
    side = BETTER.get(metric, "low")
    return order[-1] if side == "high" else order[len(order) // 2] if side == "middle" else order[0]


def strata(frame: pd.DataFrame, metric: str, mode: str, k: int = 4) -> tuple[pd.Series, list[str]]:
    """Stratum of each row: quantile bins of ``metric`` (``mode='quantile'``) or its quality level
    (``mode='label'``: good / usable / poor from ``retcore.quality`` thresholds; metric 'grade' =
    the overall grade). Returns (stratum per row, strata in display order)."""
    from retcore.quality import metric_levels

    if metric == "grade":
        s = frame["quality_grade"].astype("string")
        return s, [g for g in ("good", "usable", "poor") if g in set(s.dropna())]
    if mode == "quantile":
        s = _bins(frame[metric].astype(float), k)
        return s, sorted(s.dropna().unique(), key=lambda v: int(v.split()[0][1:]))
    levels = [metric_levels({metric: v}).get(metric) if pd.notna(v) else None for v in frame[metric]]
    s = pd.Series(levels, index=frame.index, dtype="string")
    return s, [g for g in ("good", "usable", "poor") if g in set(s.dropna())]


@_stamped
def quality(run: str, split: str, method: str | None, zone: str, classes: tuple[str, ...], cls: str | None,
            metric: str, mode: str, k: int, reference: str | None = None) -> dict[str, Any]:
    """Accuracy, zone score and zone-score drift per quality stratum.

    Returns dict: n; order (strata); accuracy (``accuracy_by_stratum`` table) and chi2
    (TestResult); scores (stratum, n, mean, low, high: bootstrap) and kw (Kruskal-Wallis across
    strata) when there are zone scores; drift (stratum, zone, distance, p_value, p_holm:
    Wasserstein of each thirds-zone score vs the ``reference`` stratum, default the first).
    """
    from retcore.stats import accuracy_by_stratum, bootstrap_mean, drift_matrix, holm, kruskal_wallis

    frame = queries.quality_frame(run, split, method, "thirds", zone, list(classes), cls,
                                  metric=metric if metric != "grade" else "blur")
    out: dict[str, Any] = {"n": len(frame)}
    if frame.empty:
        return out
    if metric != "grade":
        frame[metric] = frame["value"]
    frame["stratum"], order = strata(frame, metric, mode, k)
    frame = frame[frame["stratum"].notna()]
    out["order"] = order
    acc = accuracy_by_stratum(frame, "stratum", "correct")
    out["accuracy"], out["chi2"] = acc.table, acc.test
    scored = frame[frame["score"].notna()]
    out["scores"] = pd.DataFrame()
    out["drift"] = pd.DataFrame()
    if not scored.empty and method:
        rows = []
        for s in order:
            v = scored.loc[scored["stratum"] == s, "score"].to_numpy(np.float64)
            est = bootstrap_mean(v, n_boot=boot_size(len(v)), seed=0)
            rows.append({"stratum": s, "n": len(v), "mean": est.value, "low": est.low, "high": est.high})
        out["scores"] = pd.DataFrame(rows)
        out["kw"] = kruskal_wallis({s: scored.loc[scored["stratum"] == s, "score"].to_numpy() for s in order})
        ids = (scored.sample(frac=1.0, random_state=0).groupby("stratum").head(DRIFT_PER_CLASS)
               [["image_id", "stratum"]])
        zones = queries.zone_values(run, split, method, "thirds", list(classes), by="label",
                                    image_ids=ids["image_id"].tolist(), zones=["center", "left", "right"])
        zones = zones.merge(ids, on="image_id")
        parts = []
        for zone_name, part in zones.groupby("zone"):
            present = [s for s in order if (part["stratum"] == s).any()]
            ref = reference if reference in present else (present[0] if present else None)
            if len(present) > 1:
                m = drift_matrix(part["score"].to_numpy(), part["stratum"].to_numpy(object), reference=ref,
                                 n_permutations=PERMUTATIONS, seed=0)
                parts.append(m.assign(zone=zone_name))
        if parts:
            drift = pd.concat(parts, ignore_index=True).rename(columns={"group_a": "stratum", "group_b": "reference"})
            drift["p_holm"] = holm(drift["p_value"].to_numpy(np.float64))
            out["drift"] = drift
    return out


# ---------------------------------------------------------------------------- compare


@_stamped
def compare_runs(run_a: str, run_b: str, split: str, classes: tuple[str, ...]) -> dict[str, Any]:
    """Paired comparison of two runs' predictions on their shared images.

    Returns dict: n; deltas (item, a, b, difference (B - A), low, high, p_value, test, p_holm);
    changed (images whose correctness differs).
    """
    from retcore.stats import holm, mcnemar, paired_difference

    df = queries.compare_predictions(run_a, run_b, split)
    out: dict[str, Any] = {"n": len(df)}
    if df.empty:
        return out
    nb = boot_size(len(df))
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
        d = paired_difference(b.astype(float).to_numpy(), a.astype(float).to_numpy(), n_boot=boot_size(len(part)),
                              seed=0)
        t = mcnemar(a, b)
        rows.append({"item": f"recall {c}", "a": a.mean(), "b": b.mean(), "difference": d.difference.value,
                     "low": d.difference.low, "high": d.difference.high, "p_value": t.p_value, "test": t.test})
    deltas = pd.DataFrame(rows)
    deltas["p_holm"] = holm(deltas["p_value"].to_numpy(np.float64))
    out["deltas"] = deltas
    out["changed"] = queries.compare_cases(run_a, run_b, split)
    return out


#: ``thirds`` zones that duplicate left / right (by the eye); left out of paired comparisons.
THIRDS_ALIASES = ("nasal", "temporal")


@_stamped
def compare_zones(run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                  classes_a: tuple[str, ...], classes_b: tuple[str, ...]) -> dict[str, Any]:
    """Paired zone-score shifts (B - A) per zone, and the images whose center score moved most.

    The ``thirds`` aliases nasal / temporal (copies of left / right) are left out.

    Returns dict: n (images); shifts (item=zone, a, b, difference (B - A), low, high, p_value, p_holm,
    effect); moved (image_id, label, score_a, score_b, delta of the 'center' zone or the first zone).
    """
    from retcore.stats import holm, paired_difference

    zones = queries.zone_list(run_a, method_a)
    zones = [z for z in zones.loc[zones["zone_set"] == zone_set, "zone"] if z not in THIRDS_ALIASES]
    df = queries.compare_zone_scores(run_a, method_a, run_b, method_b, split, zone_set, list(classes_a),
                                     list(classes_b), zones=zones)
    out: dict[str, Any] = {"n": int(df.groupby("zone", observed=True).size().max()) if not df.empty else 0}
    if df.empty:
        return out
    rows = []
    for zone, part in df.groupby("zone", sort=True, observed=True):
        d = paired_difference(part["score_b"].to_numpy(), part["score_a"].to_numpy(),
                              n_boot=boot_size(len(part)), seed=0)
        rows.append({"item": zone, "a": part["score_a"].mean(), "b": part["score_b"].mean(),
                     "difference": d.difference.value, "low": d.difference.low, "high": d.difference.high,
                     "p_value": d.test.p_value, "effect": d.test.effect, "n": d.test.n})
    shifts = pd.DataFrame(rows)
    shifts["p_holm"] = holm(shifts["p_value"].to_numpy(np.float64))
    out["shifts"] = shifts
    key = "center" if (df["zone"] == "center").any() else str(df["zone"].iloc[0])
    out["moved_zone"] = key
    out["moved"] = queries.compare_zone_moved(run_a, method_a, run_b, method_b, split, zone_set, key,
                                              list(classes_a), list(classes_b))
    return out
