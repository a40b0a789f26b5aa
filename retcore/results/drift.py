"""Drift between classes: mean relevance maps and their Jensen-Shannon distances, zone-score
distributions and their Wasserstein distances from a reference class.

Maps are the explained class's token grids (:mod:`retcore.results.explained`), each
normalised to its positive part summing to 1 (``retcore.stats.normalise_heatmaps``).
Distances get permutation p-values (class labels shuffled), Holm-adjusted over the
class pairs (maps) or over the whole zone x class table (zone scores); Kruskal-Wallis
across classes per zone is Holm-adjusted over the zones (:func:`retcore.results.zones.zone_tests`).

The Class drift page's default view (images grouped by true class, zone-score drift from
:func:`default_reference`, ``CLASS_SAMPLE`` images per class, ``PERMUTATIONS`` permutations)
is stored by ``retcore explain`` (:func:`stored_defaults`, in ``split_reports``) and read back
by :func:`zone_drift` and :func:`class_maps` when they are asked for exactly those settings.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from retcore.results import summaries
from retcore.results.executor import Source, grids
from retcore.results.explained import explained_kind
from retcore.results.predictions import class_counts
from retcore.results.sample import CLASS_SAMPLE
from retcore.results.zones import class_sample_sql, zone_list, zone_summary, zone_tests, zone_values

__all__ = ["PERMUTATIONS", "ClassMaps", "ZoneDrift", "class_grids", "class_maps", "default_reference",
           "stored_defaults", "zone_drift"]

#: Permutations of the drift tests on the dashboard (and in the stored defaults).
PERMUTATIONS = 500
_ZONE_DRIFT, _CLASS_MAPS = "zone_drift", "class_maps"


def default_reference(classes: Sequence[str]) -> str | None:
    """The reference class of the zone-score drift unless one is chosen: 'normal', else the first class."""
    return "normal" if "normal" in classes else (classes[0] if len(classes) else None)


def _params(classes: Sequence[str], by: str, per_class: int | None, n_permutations: int, seed: int,
            **extra: object) -> dict:
    return {"classes": list(classes), "by": by, "per_class": per_class, "n_permutations": int(n_permutations),
            "seed": int(seed), **extra}


def class_grids(q: Source, run: str, split: str, method: str, classes: Sequence[str], *, by: str = "label",
                per_class: int | None = None) -> tuple[pd.DataFrame, np.ndarray, tuple[int, int]]:
    """Token-grid maps of the explained class with each image's class (``by``: 'label' or 'pred').

    Returns (frame of image_id, class; grids (n, gh * gw) float32; (gh, gw)), images in id
    order. ``per_class`` caps the images per class (each class's first images by id,
    ``retcore.results.sample``). Grids of another size than the most common one are left out.
    """
    group = "p.pred" if by == "pred" else "p.label"
    kind = explained_kind(q, run, method)
    cap, params, bound, bound_params = "", (), "", ()
    if per_class:
        cap, params = class_sample_sql(q, run, split, by, per_class, group, ids=("p.image_id",))
        cap = f" AND {cap}"
        bound, bound_params = " AND e.image_id <= ?", (params[-1],) if params else ("",)
    # choose the images first (small columns only), then read their grids
    meta, values = grids(
        q, f"WITH keep AS (SELECT p.image_id, {group} AS class, list_position(?::VARCHAR[], p.{kind}) - 1 AS target "
           f"FROM predictions p WHERE p.run_id = ? AND p.split = ? AND {group} IS NOT NULL{cap}) "
           "SELECT k.image_id, k.class, e.grid_h, e.grid_w, e.grid FROM keep k JOIN explanations e "
           "ON e.image_id = k.image_id AND e.target = k.target WHERE e.run_id = ? AND e.method = ?"
           f"{bound} ORDER BY k.image_id", (list(classes), run, split, *params, run, method, *bound_params))
    if meta.empty:
        return meta, values, (0, 0)
    shapes = meta.groupby(["grid_h", "grid_w"], sort=False).size()
    if len(shapes) > 1:  # mixed grid sizes: keep the most common one
        common = shapes.idxmax()
        keep = ((meta["grid_h"] == common[0]) & (meta["grid_w"] == common[1])).to_numpy()
        meta, values = meta[keep].reset_index(drop=True), values[keep]
    gh, gw = int(meta["grid_h"].iloc[0]), int(meta["grid_w"].iloc[0])
    return meta[["image_id", "class"]], values, (gh, gw)


@dataclass(frozen=True)
class ClassMaps:
    """Mean normalised map per class: ``means`` {class: (gh, gw)} in class order, ``counts`` {class: n},
    ``shape`` (gh, gw), ``matrix`` (``retcore.stats.drift_matrix`` rows, one per class pair; empty
    with fewer than two classes), ``capped`` (a class had more images than ``per_class``)."""

    means: dict[str, np.ndarray]
    counts: dict[str, int]
    shape: tuple[int, int]
    matrix: pd.DataFrame
    capped: bool


def class_maps(q: Source, run: str, split: str, method: str, classes: Sequence[str], *, by: str = "label",
               per_class: int | None = None, n_permutations: int = 1000, seed: int = 0) -> ClassMaps:
    """Mean normalised maps per class and the Jensen-Shannon drift matrix between classes (the stored
    defaults when these are the settings of :func:`stored_defaults`)."""
    from retcore.stats import drift_matrix, mean_heatmap, normalise_heatmaps

    parts = summaries.stored_report(q, run, split, _CLASS_MAPS, _params(classes, by, per_class, n_permutations, seed),
                                    method)
    if parts is not None:
        return _decode_maps(parts)
    meta, values, shape = class_grids(q, run, split, method, classes, by=by, per_class=per_class)
    if meta.empty:
        return ClassMaps({}, {}, shape, pd.DataFrame(), False)
    maps = normalise_heatmaps(values.astype(np.float64).reshape(len(values), *shape))
    groups = meta["class"].to_numpy(object)
    means = {c: mean_heatmap(maps[groups == c]) for c in classes if (groups == c).any()}
    counts = {c: int((groups == c).sum()) for c in means}
    matrix = (drift_matrix(maps, groups, n_permutations=n_permutations, seed=seed) if len(means) > 1
              else pd.DataFrame())
    capped = bool(per_class and class_counts(q, run, split, by).max() > per_class)
    return ClassMaps(means, counts, shape, matrix, capped)


@dataclass(frozen=True)
class ZoneDrift:
    """Zone scores across classes: ``values`` (image_id, class, zone, score; up to ``per_class`` images per
    class), ``summary`` (exact, over every image: ``retcore.results.zones.zone_summary``), ``drift``
    (group_a, group_b, metric, distance, p_value, p_holm, n_a, n_b, zone: Wasserstein of each class
    vs the reference) and ``tests`` (``zone_tests``: Kruskal-Wallis across classes per zone)."""

    values: pd.DataFrame
    summary: pd.DataFrame
    drift: pd.DataFrame
    tests: pd.DataFrame


_DRIFT_COLUMNS = ["group_a", "group_b", "metric", "distance", "p_value", "p_holm", "n_a", "n_b", "zone"]


def zone_drift(q: Source, run: str, split: str, method: str, zone_set: str, classes: Sequence[str], *,
               by: str = "label", reference: str | None = None, per_class: int | None = None,
               n_permutations: int = 1000, seed: int = 0) -> ZoneDrift:
    """Zone-score distributions per class and their drift from the ``reference`` class (see ZoneDrift;
    the stored defaults when these are the settings of :func:`stored_defaults`)."""
    from retcore.stats import drift_matrix, holm

    summary = zone_summary(q, run, split, method, zone_set, classes, by=by)
    parts = summaries.stored_report(q, run, split, _ZONE_DRIFT, _params(classes, by, per_class, n_permutations, seed,
                                                                        zone_set=zone_set, reference=reference), method)
    if parts is not None:
        return ZoneDrift(parts["values"], summary, parts["drift"], parts["tests"])
    values = zone_values(q, run, split, method, zone_set, classes, by=by, per_class=per_class)
    parts = []
    for zone, part in values.groupby("zone", sort=True):
        present = set(part["class"])
        if reference in present and len(present) > 1:
            m = drift_matrix(part["score"].to_numpy(), part["class"].to_numpy(object), reference=reference,
                             n_permutations=n_permutations, seed=seed)
            parts.append(m.assign(zone=zone))
    drift = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_DRIFT_COLUMNS)
    if not drift.empty:
        drift["p_holm"] = holm(drift["p_value"].to_numpy(np.float64))  # across every zone and class
    tests = zone_tests(values.sort_values(["zone", "image_id"], kind="stable"), group="class", correct=None)
    return ZoneDrift(values, summary, drift, tests[["zone", "H", "p_value", "epsilon2", "n", "p_holm"]])


def _decode_maps(parts: dict[str, pd.DataFrame]) -> ClassMaps:
    meta = parts["meta"].iloc[0]
    shape = (int(meta["gh"]), int(meta["gw"]))
    means = {str(c): np.asarray(v, np.float64).reshape(shape) for c, v in zip(parts["means"]["class"],
                                                                            parts["means"]["values"])}
    counts = {str(c): int(n) for c, n in zip(parts["means"]["class"], parts["means"]["n"])}
    return ClassMaps(means, counts, shape, parts["matrix"], bool(meta["capped"]))


def stored_defaults(q: Source, run: str, split: str, method: str, classes: Sequence[str]
                    ) -> list[tuple[str, str, dict[str, bytes]]]:
    """The Class drift page's default tables of ``run``'s ``split`` and ``method``, computed for
    ``split_reports``: (report, params key, part -> Arrow bytes) for :func:`class_maps` and for
    :func:`zone_drift` of every zone set, by true class, from :func:`default_reference`, with
    ``CLASS_SAMPLE`` images per class and ``PERMUTATIONS`` permutations."""
    out = []
    settings = dict(by="label", per_class=CLASS_SAMPLE, n_permutations=PERMUTATIONS, seed=0)
    maps = class_maps(q, run, split, method, classes, **settings)
    if maps.means:
        gh, gw = maps.shape
        frames = {"means": pd.DataFrame({"class": list(maps.means), "n": [maps.counts[c] for c in maps.means],
                                         "values": [m.ravel().tolist() for m in maps.means.values()]}),
                  "matrix": maps.matrix, "meta": pd.DataFrame({"gh": [gh], "gw": [gw], "capped": [maps.capped]})}
        out.append((_CLASS_MAPS, summaries.report_key(_params(classes, **settings)),
                    {k: summaries.encode_frame(v) for k, v in frames.items()}))
    reference = default_reference(classes)
    for zone_set in dict.fromkeys(zone_list(q, run, method)["zone_set"]):
        zd = zone_drift(q, run, split, method, zone_set, classes, reference=reference, **settings)
        if zd.values.empty:
            continue
        key = summaries.report_key(_params(classes, **settings, zone_set=zone_set, reference=reference))
        parts = {k: summaries.encode_frame(getattr(zd, k)) for k in ("values", "drift", "tests")}
        out.append((_ZONE_DRIFT, key, parts))
    return out
