"""Altair chart builders for the dashboard and for exported figures.

Every builder takes tidy pandas frames (no database access) -- the tables of
the database or the frames of :mod:`retcore.stats` as they come -- and returns an
Altair chart in the ``retcore`` theme (:mod:`retcore.plots.theme`), which
importing this package registers and enables. :func:`save_chart` writes SVG,
PNG (300 ppi) or PDF by suffix; a chart's data is the frame you passed (write
it with ``DataFrame.to_csv``).
"""
from retcore.plots.classification import (
    PER_CLASS_METRICS,
    confusion_matrix_chart,
    per_class_long,
    per_class_metric_chart,
    reliability_chart,
    roc_chart,
    training_curves_chart,
)
from retcore.plots.compare import (
    drift_matrix_chart,
    dumbbell_chart,
    paired_difference_chart,
    stratum_accuracy_chart,
)
from retcore.plots.explanation import (
    fit_band,
    grid_frame,
    heatmap_grid_chart,
    zone_confidence_chart,
    zone_distribution_chart,
)
from retcore.plots.export import FORMATS, PNG_PPI, chart_bytes, chart_spec, save_chart
from retcore.plots.study import study_arms_chart
from retcore.plots.theme import CORRECT_COLORS, OKABE_ITO, THEME_NAME, enable_theme, retcore_theme, theme_registry

enable_theme()

__all__ = [
    "study_arms_chart",
    "CORRECT_COLORS",
    "FORMATS",
    "OKABE_ITO",
    "PER_CLASS_METRICS",
    "PNG_PPI",
    "THEME_NAME",
    "chart_bytes",
    "chart_spec",
    "confusion_matrix_chart",
    "drift_matrix_chart",
    "dumbbell_chart",
    "enable_theme",
    "fit_band",
    "grid_frame",
    "heatmap_grid_chart",
    "paired_difference_chart",
    "per_class_long",
    "per_class_metric_chart",
    "reliability_chart",
    "retcore_theme",
    "roc_chart",
    "save_chart",
    "stratum_accuracy_chart",
    "theme_registry",
    "training_curves_chart",
    "zone_confidence_chart",
    "zone_distribution_chart",
]
