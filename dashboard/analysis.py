"""Page computations: the tables of :mod:`retcore.results`, cached on the database stamp.

Each public function is cached on its arguments and the database stamp, so a
statistic (bootstrap, permutation test) is computed once per database state.
Bootstrap sizes shrink on large selections (``boot_cells``); above ``SAMPLE_IMAGES``
images the per-image statistics use a fixed sample of them (``retcore.results.sample``),
and drift statistics use at most ``DRIFT_PER_CLASS`` images per class with
``PERMUTATIONS`` permutations, so a page stays interactive; the page says so when it
happens. The Overview's report and the Class drift page's default tables are read from the
summaries the jobs stored.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import streamlit as st

from dashboard.data import DB, db_path, db_stamp
from retcore.results import compare, drift, headline as _headline, quality as _quality
from retcore.results import zones
from retcore.results.headline import BOOT_CELLS, ECE_BINS, RELIABILITY_BINS, STORED_SETTINGS
from retcore.results.sample import CLASS_SAMPLE, SAMPLE_IMAGES
from retcore.results.strata import reference_stratum

__all__ = ["DRIFT_PER_CLASS", "ECE_BINS", "PERMUTATIONS", "RELIABILITY_BINS", "SAMPLE_IMAGES", "class_maps",
           "compare_runs", "compare_zones", "focus", "headline", "quality", "quality_order", "reference_stratum",
           "zone_drift"]

#: Images per class used for mean maps, distances and permutation tests on the drift pages.
DRIFT_PER_CLASS = CLASS_SAMPLE
PERMUTATIONS = drift.PERMUTATIONS


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


@_stamped
def headline(run: str, split: str, classes: tuple[str, ...]) -> _headline.Classification:
    """``retcore.results.headline.classification`` of the run's split (fewer image resamples on large splits;
    the report ``retcore predict`` stored, when there is one)."""
    return _headline.classification(DB, run, split, classes, **STORED_SETTINGS)


@_stamped
def focus(run: str, split: str, method: str, zone_set: str, zone: str, classes: tuple[str, ...],
          cls: str | None) -> zones.Focus:
    """``retcore.results.zones.focus``: zone score vs confidence, every scope and both coefficients
    (on a sample above ``SAMPLE_IMAGES`` images)."""
    return zones.focus(DB, run, split, method, zone_set, zone, classes, cls, boot_cells=BOOT_CELLS,
                       max_images=SAMPLE_IMAGES)


@_stamped
def class_maps(run: str, split: str, method: str, classes: tuple[str, ...], by: str) -> drift.ClassMaps:
    """``retcore.results.drift.class_maps`` on up to DRIFT_PER_CLASS images per class."""
    return drift.class_maps(DB, run, split, method, classes, by=by, per_class=DRIFT_PER_CLASS,
                            n_permutations=PERMUTATIONS)


@_stamped
def zone_drift(run: str, split: str, method: str, zone_set: str, classes: tuple[str, ...], by: str,
               reference: str) -> drift.ZoneDrift:
    """``retcore.results.drift.zone_drift`` on up to DRIFT_PER_CLASS images per class."""
    return drift.zone_drift(DB, run, split, method, zone_set, classes, by=by, reference=reference,
                            per_class=DRIFT_PER_CLASS, n_permutations=PERMUTATIONS)


@_stamped
def quality(run: str, split: str, method: str | None, zone: str, classes: tuple[str, ...], cls: str | None,
            metric: str, mode: str, k: int, reference: str | None = None) -> dict[str, Any]:
    """``retcore.results.quality.quality`` on up to DRIFT_PER_CLASS images per stratum (on a sample above
    ``SAMPLE_IMAGES`` images)."""
    return _quality.quality(DB, run, split, method, zone, classes, cls, metric, mode, k, reference,
                            per_stratum=DRIFT_PER_CLASS, n_permutations=PERMUTATIONS, boot_cells=BOOT_CELLS,
                            max_images=SAMPLE_IMAGES)


@_stamped
def quality_order(run: str, split: str, method: str | None, zone: str, classes: tuple[str, ...], cls: str | None,
                  metric: str, mode: str, k: int) -> dict[str, Any]:
    """``retcore.results.quality.strata_order``: the strata of :func:`quality` (n, order), without statistics."""
    return _quality.strata_order(DB, run, split, method, zone, classes, cls, metric, mode, k,
                                 max_images=SAMPLE_IMAGES)


@_stamped
def compare_runs(run_a: str, run_b: str, split: str, classes: tuple[str, ...]) -> dict[str, Any]:
    """``retcore.results.compare.compare_runs`` (on a sample above ``SAMPLE_IMAGES`` images)."""
    return compare.compare_runs(DB, run_a, run_b, split, classes, boot_cells=BOOT_CELLS, max_images=SAMPLE_IMAGES)


@_stamped
def compare_zones(run_a: str, method_a: str, run_b: str, method_b: str, split: str, zone_set: str,
                  classes_a: tuple[str, ...], classes_b: tuple[str, ...]) -> dict[str, Any]:
    """``retcore.results.compare.compare_zones`` (on a sample above ``SAMPLE_IMAGES`` images)."""
    return compare.compare_zones(DB, run_a, method_a, run_b, method_b, split, zone_set, classes_a, classes_b,
                                 boot_cells=BOOT_CELLS, max_images=SAMPLE_IMAGES)
