"""Statistics for the results database: pure functions on arrays and DataFrames, no I/O.

Modules (formulas in each module docstring):

- ``intervals``: Wilson intervals, seeded percentile bootstrap (resample count vectors);
- ``classification``: confusion matrix, per-class and macro metrics with intervals,
  kappa, one-vs-rest ROC / AUROC, reliability curve and ECE;
- ``correlation``: Spearman / Pearson of confidence with a zone score, bootstrap CI;
- ``groups``: Mann-Whitney, Kruskal-Wallis with Holm-corrected pairwise follow-ups,
  accuracy across strata (chi-square, Wilson);
- ``drift``: Jensen-Shannon distance of mean heatmaps, Wasserstein distance of zone
  scores, permutation p-values, drift matrix;
- ``paired``: two runs on the same images (bootstrap mean difference + Wilcoxon; McNemar).

Results are frozen dataclasses (``Estimate``, ``Correlation``, ``TestResult``,
``DriftResult``, ...) or tidy DataFrames for tables. Every random step takes ``seed``
(an int or a ``numpy.random.Generator``) and is reproducible.
"""
from retcore.stats.classification import (
    OVERALL_METRICS,
    auroc_table,
    calibration_error,
    cohen_kappa,
    confusion_matrix,
    confusion_metrics,
    confusion_table,
    encode_labels,
    expected_calibration_error,
    overall_metrics,
    per_class_metrics,
    reliability_curve,
    roc_curves,
)
from retcore.stats.correlation import (
    Correlation,
    confidence_correlations,
    correlate,
    correlation_table,
    pearson,
    spearman,
)
from retcore.stats.drift import (
    N_PERMUTATIONS,
    DriftResult,
    drift_matrix,
    heatmap_drift,
    js_distance,
    mean_heatmap,
    normalise_heatmaps,
    score_drift,
    wasserstein,
)
from retcore.stats.groups import (
    GroupComparison,
    StratumAccuracy,
    TestResult,
    accuracy_by_stratum,
    compare_groups,
    compare_outcomes,
    group_summary,
    holm,
    kruskal_wallis,
    mann_whitney,
    pairwise_mann_whitney,
)
from retcore.stats.intervals import (
    N_BOOT,
    Estimate,
    bootstrap,
    bootstrap_mean,
    percentile_interval,
    wilson_bounds,
    wilson_interval,
)
from retcore.stats.paired import (
    PairedComparison,
    mcnemar,
    mcnemar_table,
    paired_difference,
    wilcoxon_signed_rank,
)

__all__ = [
    "N_BOOT",
    "N_PERMUTATIONS",
    "OVERALL_METRICS",
    "Correlation",
    "DriftResult",
    "Estimate",
    "GroupComparison",
    "PairedComparison",
    "StratumAccuracy",
    "TestResult",
    "accuracy_by_stratum",
    "auroc_table",
    "bootstrap",
    "bootstrap_mean",
    "cohen_kappa",
    "compare_groups",
    "compare_outcomes",
    "confidence_correlations",
    "confusion_matrix",
    "confusion_metrics",
    "confusion_table",
    "correlate",
    "correlation_table",
    "drift_matrix",
    "encode_labels",
    "calibration_error",
    "expected_calibration_error",
    "group_summary",
    "heatmap_drift",
    "holm",
    "js_distance",
    "kruskal_wallis",
    "mann_whitney",
    "mcnemar",
    "mcnemar_table",
    "mean_heatmap",
    "normalise_heatmaps",
    "overall_metrics",
    "paired_difference",
    "pairwise_mann_whitney",
    "pearson",
    "per_class_metrics",
    "percentile_interval",
    "reliability_curve",
    "roc_curves",
    "score_drift",
    "spearman",
    "wasserstein",
    "wilcoxon_signed_rank",
    "wilson_bounds",
    "wilson_interval",
]
