"""The sections of ``retcore export``: each draws its figures through a :class:`FigureWriter` and
returns its lines of ``summary.md``. The numbers come computed in a :class:`jobs.export.RunData`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retcore.results.format import fmt_ci, fmt_num, fmt_p

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from jobs.export import RunData

__all__ = ["FIGURE_FORMATS", "STRATUM_ORDER", "FigureWriter", "classification_section", "explanation_section",
           "md_table", "methods_section", "strata_section"]

#: Every figure is written in these formats (plus its data as CSV).
FIGURE_FORMATS = ("svg", "png", "pdf")
#: Display order of strata in the accuracy-by-stratum figure.
STRATUM_ORDER = ["good", "usable", "poor", "low", "mid", "high", "left", "right"]


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


class FigureWriter:
    """Writes figures (svg/png/pdf + csv) into ``out`` and remembers them for the summary;
    ``bar`` (a tqdm bar in figures) advances by one per figure."""

    def __init__(self, out: Path, bar: Any = None) -> None:
        self.out = out
        self.bar = bar
        self.files: list[Path] = []
        self.figures: list[tuple[str, str]] = []

    def figure(self, name: str, caption: str, chart: alt.TopLevelMixin, data: pd.DataFrame) -> None:
        from retcore.plots import save_chart

        if self.bar is not None:
            self.bar.set_postfix_str(name)
        for fmt in FIGURE_FORMATS:
            self.files.append(save_chart(chart, self.out / f"{name}.{fmt}"))
        csv = self.out / f"{name}.csv"
        data.to_csv(csv, index=False)
        self.files.append(csv)
        self.figures.append((name, caption))
        if self.bar is not None:
            self.bar.update(1)

    def table(self, name: str, data: pd.DataFrame) -> None:
        path = self.out / f"{name}.csv"
        data.to_csv(path, index=False)
        self.files.append(path)


def classification_section(data: RunData, w: FigureWriter) -> list[str]:
    """Classification figures and the summary lines for them."""
    from retcore import plots
    from retcore.results.headline import HEADLINE

    classes, report = data.classes, data.report
    w.figure("confusion_matrix", "Confusion matrix: counts and share of each true class",
             plots.confusion_matrix_chart(report.confusion, classes=classes), report.confusion)
    w.figure("per_class_metrics", "Precision, recall, specificity (Wilson 95% CI) and F1 (bootstrap 95% CI) "
             "per class", plots.per_class_metric_chart(report.per_class, classes=classes), report.per_class)
    n_bins = len(report.reliability)
    w.figure("reliability", f"Reliability diagram ({n_bins} equal-width bins, Wilson 95% CI per bin)",
             plots.reliability_chart(report.reliability), report.reliability)
    if report.roc is not None and not report.roc.empty:
        w.figure("roc_curves", "One-vs-rest ROC curves with AUROC (bootstrap 95% CI)",
                 plots.roc_chart(report.roc, auroc=report.auroc, classes=classes), report.roc)
    if not data.epochs.empty:
        w.figure("training_curves", "Training and validation loss, validation scores per epoch (dashed: best)",
                 plots.training_curves_chart(data.epochs), data.epochs)
    w.table("headline_metrics", report.headline)
    w.table("auroc", report.auroc)

    names = dict(HEADLINE)
    lines = [f"## Headline metrics ({report.n} labelled images, 95% intervals)", ""]
    lines += md_table(["metric", "value [95% CI]", "interval"],
                    [[names[r["metric"]], fmt_ci(r["value"], r["low"], r["high"]), r["interval"]]
                     for r in report.headline.to_dict("records")])
    if report.stale:
        lines += ["", f"Note: the stored accuracy ({report.stored_accuracy:.3f}) differs from the predictions "
                      "table; the predictions were rewritten after the metrics."]
    auc_by_class = report.auroc.set_index("class") if not report.auroc.empty else None
    rows = []
    for r in report.per_class.to_dict("records"):
        a = auc_by_class.loc[r["class"]] if auc_by_class is not None and r["class"] in auc_by_class.index else None
        rows.append([r["class"], str(r["support"]), fmt_ci(r["precision"], r["precision_low"], r["precision_high"]),
                     fmt_ci(r["recall"], r["recall_low"], r["recall_high"]),
                     fmt_ci(r["specificity"], r["specificity_low"], r["specificity_high"]),
                     fmt_ci(r["f1"], r["f1_low"], r["f1_high"]),
                     "–" if a is None else fmt_ci(a["auroc"], a["low"], a["high"])])
    lines += ["", "## Per class (95% intervals)", ""]
    lines += md_table(["class", "n", "precision", "recall", "specificity", "F1", "AUROC"], rows)
    return lines


def strata_section(data: RunData, w: FigureWriter) -> list[str]:
    """Accuracy per stratum (eye, quality grade, tertiles of each quality metric)."""
    from retcore import plots

    table, tests = data.strata.table, data.strata.tests
    if table.empty:
        return []
    w.figure("accuracy_by_stratum", "Accuracy per stratum (eye, quality grade, tertiles of quality metrics) "
             "with Wilson 95% CI", plots.stratum_accuracy_chart(table, facet="stratifier",
                                                                stratum_order=STRATUM_ORDER), table)
    lines = ["", "## Accuracy across strata (chi-square test of independence)", ""]
    return lines + md_table(["stratifier", "strata", "χ²", "p", "Cramér's V"],
                          [[r["stratifier"], str(r["strata"]), fmt_num(r["statistic"], 2), fmt_p(r["p_value"]),
                            fmt_num(r["effect"], 2)] for r in tests.to_dict("records")])


def explanation_section(data: RunData, w: FigureWriter, n_permutations: int) -> tuple[list[str], list[str]]:
    """Explanation figures; returns (summary lines, what is missing)."""
    import altair as alt
    import numpy as np
    import pandas as pd

    from retcore import plots

    method, classes, maps = data.method, data.classes, data.maps
    lines = ["", f"## Where the model looks (method `{method}`, zone set `{data.zone_set}`)", ""]
    missing: list[str] = []

    # Mean heatmap per class and drift between classes.
    if maps is not None and maps.means:
        finite = {c: m for c, m in maps.means.items() if np.isfinite(m).all()}
        if finite:
            top = float(max(m.max() for m in finite.values()))
            grid_data = pd.concat([plots.grid_frame(m).assign(class_name=c) for c, m in maps.means.items()],
                                  ignore_index=True)
            panels = [plots.heatmap_grid_chart(m, title=f"{c} (n={maps.counts[c]})", size=160, domain=[0, top],
                                               value_title="Mean share") for c, m in finite.items()]
            w.figure("mean_heatmaps", f"Mean normalised relevance ({method}) per true class, token grid "
                     f"{maps.shape[0]}x{maps.shape[1]}", alt.hconcat(*panels), grid_data)
        if not maps.matrix.empty:
            present = list(maps.means)
            w.figure("heatmap_drift", "Jensen-Shannon distance between the classes' mean heatmaps "
                     "(permutation p-values, Holm-adjusted)",
                     plots.drift_matrix_chart(maps.matrix, p="p_holm", mirror=True, x_order=present, y_order=present,
                                              x_title="Class", y_title="Class", value_title="JS distance"),
                     maps.matrix)
            lines += ["Jensen-Shannon distance between mean heatmaps of true classes "
                      f"({n_permutations} permutations, Holm-adjusted p):", ""]
            lines += md_table(["class A", "class B", "JS distance", "p (Holm)", "n A", "n B"],
                            [[r["group_a"], r["group_b"], fmt_num(r["distance"]), fmt_p(r["p_holm"]), str(r["n_a"]),
                              str(r["n_b"])] for r in maps.matrix.to_dict("records")])
            lines.append("")

    if data.zone is None or data.scores is None or data.focus is None or data.zone_tests is None:
        missing.append(f"zone-score figures: run {data.run_id} has no zone scores for method `{method}`")
        return lines, missing
    scores, zone = data.scores, data.zone
    zones = list(dict.fromkeys(scores["zone"]))
    w.figure("zone_distributions", f"Zone score (relevance mass share / area share) per class, zone set "
             f"{data.zone_set}; dashed: no preference (1)",
             plots.zone_distribution_chart(scores, zone_order=zones, group_order=classes),
             scores[["image_id", "class_name", "zone", "score", "mass_share", "confidence", "correct"]])
    lines += ["Zone scores across classes (Kruskal-Wallis) and correct vs incorrect (Mann-Whitney):", ""]
    lines += md_table(["zone", "H", "p", "ε²", "U", "p", "rank-biserial r"],
                    [[r["zone"], fmt_num(r["H"], 2), fmt_p(r["p_value"]), fmt_num(r["epsilon2"], 2),
                      fmt_num(r["U"], 1), fmt_p(r["mw_p_value"]), fmt_num(r["rank_biserial"], 2)]
                     for r in data.zone_tests.to_dict("records")])

    one = data.focus.points.rename(columns={"label": "class_name"})
    corr = data.focus.correlations.drop(columns="scope")
    notes = {r["group"]: f"ρ={fmt_num(r['value'], 2)}, p={fmt_p(r['p_value'])}"
             for r in corr[data.focus.correlations["scope"] == "class"].to_dict("records")
             if math.isfinite(r["value"])}
    w.figure("zone_confidence", f"`{zone}` zone score vs confidence per class; least-squares line with 95% "
             "confidence band; Spearman ρ per class",
             plots.zone_confidence_chart(one, facet_order=classes, notes=notes, x_title=f"{zone} zone score"),
             one[["image_id", "class_name", "score", "confidence", "correct"]])
    w.table("zone_confidence_correlations", corr)
    lines += ["", f"Spearman correlation of confidence with the `{zone}` zone score (bootstrap 95% CI):", ""]
    lines += md_table(["class", "n", "ρ [95% CI]", "p"],
                    [[r["group"], str(r["n"]), fmt_ci(r["value"], r["low"], r["high"], 2), fmt_p(r["p_value"])]
                     for r in corr.to_dict("records")])
    return lines, missing


def trust_section(data: RunData, w: FigureWriter) -> tuple[list[str], list[str]]:
    """The Methods page's figures and verdicts (``data.trust``); returns (summary lines, what is missing)."""
    from retcore.plots.methods import (
        faithfulness_curves_chart,
        localisation_chart,
        method_cost_chart,
        sanity_curves_chart,
    )
    from retcore.sanity.summary import SURVIVAL_THRESHOLD

    trust, run, split = data.trust, data.run_id, data.split
    missing: list[str] = []
    if trust is None or trust.empty:
        missing.append(f"explanation-method figures (sanity checks, faithfulness against random): run {run} has "
                       f"none; run `retcore sanity --run {run}` and `retcore explain --run {run} --split {split}`")
        return [], missing
    lines = ["", "## Can the maps be believed? (explanation methods)", ""]
    lines += [f"- **{r['method']}** {r['verdict']}" for r in trust.verdicts.to_dict("records")]
    w.table("method_verdicts", trust.verdicts)
    if trust.sanity.empty:
        missing.append(f"sanity-check curves: run `retcore sanity --run {run}`")
    else:
        n = int(trust.sanity["n_images"].max())
        for measure in ("spearman", "ssim"):
            w.figure(f"sanity_{measure}", f"Model-parameter randomisation: mean {measure} of each method's map "
                     f"on the randomised model to its map on the trained model, 95% bootstrap band over {n} "
                     f"images; dashed: the survival threshold {SURVIVAL_THRESHOLD:g}",
                     sanity_curves_chart(trust.sanity, measure=measure, threshold=SURVIVAL_THRESHOLD), trust.sanity)
    if trust.faithfulness.empty:
        missing.append(f"faithfulness curves: run `retcore explain --run {run} --split {split}` "
                       "(with --faithfulness-images other than 0)")
    else:
        setting = f"{trust.baseline} baseline, {trust.unit} steps"
        w.figure("faithfulness_curves", f"Deletion / insertion curves ({setting}): mean probability of the "
                 "explained class for each method's map and a random map, 95% bootstrap band over images",
                 faithfulness_curves_chart(trust.curves), trust.curves)
        w.table("faithfulness_summary", trust.faithfulness_all)
        lines += ["", f"Faithfulness against a random map ({setting}; every setting in "
                  "`faithfulness_summary.csv`):", ""]
        lines += md_table(["method", "test", "images", "AUC", "random AUC", "difference [95% CI]", "Wilcoxon p",
                           "verdict"],
                          [[r["method"], r["test"], str(r["n_images"]), fmt_num(r["auc"]), fmt_num(r["random_auc"]),
                            fmt_ci(r["difference"], r["difference_low"], r["difference_high"], 4),
                            fmt_p(r["wilcoxon_p"]), str(r["verdict"]).split(":")[0]]
                           for r in trust.faithfulness.to_dict("records")])
    if not trust.localisation.empty:
        w.figure("localisation", "Localisation of each method's explained-class map against the ground-truth "
                 "masks: pointing game, mass accuracy, rank accuracy, 95% bootstrap intervals over images",
                 localisation_chart(trust.localisation), trust.localisation)
    if not trust.costs.empty:
        w.figure("method_cost", "Seconds per image and method of the faithfulness measurement and of the "
                 "sanity checks, as the jobs timed them", method_cost_chart(trust.costs), trust.costs)
    return lines, missing


def methods_section(used: set[str], n_boot: int, n_permutations: int, seed: int) -> list[str]:
    """The summary's list of statistical methods, for the figures written."""
    methods = [
        "Wilson score intervals (95%) for proportions: accuracy, precision, recall, specificity and the "
        "accuracy of each reliability bin.",
        f"Percentile bootstrap (95%, {n_boot} resamples of images, seed {seed}) for balanced accuracy, macro F1, "
        "Cohen's κ, F1 per class, AUROC per class and macro, ECE"
        + (" and Spearman ρ." if "zone_confidence" in used else "."),
        "AUROC: one-vs-rest, Mann-Whitney estimate (ties count half).",
    ]
    if "accuracy_by_stratum" in used:
        methods.append("Chi-square test of independence (no continuity correction) of correct/incorrect across "
                       "strata; effect size Cramér's V. Quality metrics are cut at their tertiles.")
    if "heatmap_drift" in used:
        methods.append(f"Permutation test ({n_permutations} relabellings) of the Jensen-Shannon distance between "
                       "mean normalised heatmaps; Holm adjustment over class pairs.")
    if "zone_distributions" in used:
        methods.append("Kruskal-Wallis H test of zone scores across classes (effect ε²); two-sided Mann-Whitney U "
                       "test of correct vs incorrect (effect rank-biserial r).")
    if "zone_confidence" in used:
        methods.append("Spearman rank correlation (two-sided t-test p-value); the drawn line is an ordinary "
                       "least-squares fit with its 95% confidence band of the mean.")
    if "sanity_spearman" in used:
        methods.append("Model-parameter randomisation (Adebayo et al. 2018): Spearman rank correlation and SSIM "
                       "(7x7 window) of absolute maps, percentile bootstrap over images; a method fails when the "
                       "lower 95% bound at the fully randomised step stays above 0.5.")
    if "faithfulness_curves" in used:
        methods.append("Deletion (MoRF, LeRF) and insertion curves of the explained class's probability, AUC by "
                       "the trapezoid rule; difference to a seeded random map of the same resolution with a "
                       "percentile bootstrap interval over images and a Wilcoxon signed-rank test.")
    return [f"- {m}" for m in methods]
