"""The dashboard's reads: :mod:`retcore.results` bound to the cached, read-only executor.

Each name here is the ``retcore.results`` function of the same name with the dashboard's
executor (``dashboard.data.DB``) as its first argument; the SQL, the explained-class rule
and the joins live there. Every statement is cached until the database changes.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from dashboard.data import DB, tables
from retcore.results import cases as _cases
from retcore.results import compare as _compare
from retcore.results import drift as _drift
from retcore.results import predictions as _predictions
from retcore.results import quality as _quality
from retcore.results import runs as _runs
from retcore.results import study as _study
from retcore.results import zones as _zones

__all__ = [
    "IMAGE_PATH", "KINDS", "ORDERS", "QUALITY_METRICS", "case_detail", "case_list", "class_counts", "class_grids",
    "compare_cases", "compare_predictions", "compare_zone_moved", "compare_zone_scores", "confusion",
    "dataset_roots", "epochs", "has_explanations", "image_grids", "jobs", "landmarks_for", "metrics",
    "quality_frame", "reference_images", "run_classes", "run_img_size", "run_methods", "run_out_dir", "run_splits",
    "runs", "single_target", "split_predictions", "study_examples", "study_results", "study_runs", "tables", "trained_runs", "zone_list", "zone_scores",
    "zone_summary", "zone_values",
]

IMAGE_PATH = _cases.IMAGE_PATH
KINDS = _cases.KINDS
ORDERS = _cases.ORDERS
QUALITY_METRICS = _quality.QUALITY_METRICS


def _bind(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with the dashboard's executor as its first argument."""

    @wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(DB, *args, **kwargs)

    return bound


def has_explanations() -> bool:
    """True when the database has the explanation tables (schema v2)."""
    return {"explanations", "zone_scores"} <= tables()


# runs and filters
runs = _bind(_runs.runs)
trained_runs = _bind(_runs.trained_runs)
jobs = _bind(_runs.jobs)
run_splits = _bind(_runs.run_splits)
run_methods = _bind(_runs.run_methods)
run_classes = _bind(_runs.run_classes)
dataset_roots = _bind(_runs.dataset_roots)
epochs = _bind(_runs.epochs)
run_img_size = _bind(_runs.run_img_size)
run_out_dir = _bind(_runs.run_out_dir)
# predictions
metrics = _bind(_predictions.stored_metrics)
confusion = _bind(_predictions.confusion)
split_predictions = _bind(_predictions.split_predictions)
class_counts = _bind(_predictions.class_counts)
# zone scores and maps
zone_list = _bind(_zones.zone_list)
zone_scores = _bind(_zones.zone_scores)
zone_summary = _bind(_zones.zone_summary)
zone_values = _bind(_zones.zone_values)
class_grids = _bind(_drift.class_grids)
quality_frame = _bind(_quality.quality_frame)
# cases
case_list = _bind(_cases.case_list)
case_detail = _bind(_cases.case_detail)
image_grids = _bind(_cases.image_grids)
landmarks_for = _bind(_cases.landmarks_for)
reference_images = _bind(_cases.reference_images)
# compare
compare_predictions = _bind(_compare.compare_predictions)
compare_cases = _bind(_compare.compare_cases)
compare_zone_scores = _bind(_compare.compare_zone_scores)
compare_zone_moved = _bind(_compare.compare_zone_moved)
single_target = _bind(_compare.single_target)
# shortcut studies
study_runs = _bind(_study.study_runs)
study_results = _bind(_study.study_results)
study_examples = _bind(_study.study_examples)
