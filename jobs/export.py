"""``retcore export``: a run's figures for a paper, and a summary of its statistics.

Reads the database read-only, through :mod:`retcore.results` (it writes nothing there),
and, for one split of a fine-tuned run, writes to ``--out``:

- every figure as ``<name>.svg``, ``<name>.png`` (300 ppi) and ``<name>.pdf``, in
  the ``retcore`` theme, plus ``<name>.csv`` with the data drawn;
- ``summary.md``: headline and per-class metrics with 95% intervals, the
  explanation statistics, the list of files and the statistical tests used.

Classification figures need only predictions; the explanation figures (zone
score vs confidence, zone-score distributions, drift between classes, mean
heatmaps) need ``retcore explain`` on the split, and the summary says when
they are missing. The numbers are those the dashboard shows (one computation in
``retcore.results``); this module only draws and writes them.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobs._common import DbOption, ResultsOption, friendly_errors, results_dir
from retcore.results.format import fmt_ci, fmt_num, fmt_p

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from retcore.results.drift import ClassMaps
    from retcore.results.headline import Classification
    from retcore.results.strata import StrataTable
    from retcore.results.zones import Focus

__all__ = ["ExportResult", "RunData", "load_run_data", "main", "run_export"]

FIGURE_FORMATS = ("svg", "png", "pdf")
LEVEL = 0.95
STRATUM_ORDER = ["good", "usable", "poor", "low", "mid", "high", "left", "right"]


@dataclass
class RunData:
    """Everything the export draws for one run and split, read and computed through ``retcore.results``.

    ``method`` is None without explanations on the split; ``zone`` None without zone scores
    of ``method``; ``scores`` holds the zone scores of ``zone_set`` (label renamed class_name).
    """

    run_id: str
    split: str
    classes: list[str]
    info: dict[str, Any]
    n_images: int
    report: Classification
    epochs: pd.DataFrame
    strata: StrataTable
    method: str | None = None
    maps: ClassMaps | None = None
    zone_set: str = "anatomy"
    zone: str | None = None
    scores: pd.DataFrame | None = None
    zone_tests: pd.DataFrame | None = None
    focus: Focus | None = None


@dataclass
class ExportResult:
    """What ``run_export`` wrote: the run, the folder, the files and the parts left out."""

    run_id: str
    out: Path
    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading (every query and table comes from retcore.results)


def _pick_zone(zone_set: str, zone: str | None, sets: list[str], zones: list[str], run_id: str) -> str:
    """Check ``--zone-set`` / ``--zone`` against the run's zone scores; the zone to plot against
    confidence (``periphery`` when present, else the set's first zone)."""
    from retcore.errors import RetcoreError

    if zone_set not in sets or not zones:
        raise RetcoreError(f"run {run_id} has no {zone_set!r} zone scores; choose --zone-set from {sets}")
    if zone is None:
        return "periphery" if "periphery" in zones else zones[0]
    if zone not in zones:
        raise RetcoreError(f"zone set {zone_set!r} has no zone {zone!r}; choose --zone from {zones}")
    return zone


def load_run_data(db: Path | None, run: str, split: str = "test", *, method: str | None = None,
                  zone_set: str = "anatomy", zone: str | None = None, n_boot: int = 1000,
                  n_permutations: int = 1000, seed: int = 0) -> RunData:
    """Read and compute run ``run``'s tables for ``split`` in one short read-only connection.

    ``method`` picks the explanation method (default ``lrp`` if present, else the first in
    alphabetical order). Raises ``RetcoreError`` for a missing database, an unknown run, a
    split without predictions, or a method / zone set / zone the run does not have.
    """
    from retcore.errors import DatabaseError, RetcoreError
    from retcore.results import drift, headline, predictions, runs, strata, zones
    from retcore.results.executor import tables
    from retcore.storage import connect, resolve_db_path

    path = resolve_db_path(db)
    with connect(path, read_only=True) as con:
        if not {"runs", "predictions", "metrics", "confusion"} <= tables(con):
            raise DatabaseError(f"{path} is not a retcore results database (no runs/predictions tables); "
                                "check --db")
        info = runs.finetune_run(con, run, split, where=str(path))
        run_id = info["run_id"]
        meta, probs = predictions.split_predictions(con, run_id, split)
        if meta.empty:
            raise RetcoreError(f"run {run_id} has no predictions for split {split!r}; "
                               f"run `retcore predict --run {run_id} --split {split}` first")
        if meta["label"].isna().all():
            raise RetcoreError(f"split {split!r} of run {run_id} has no labelled images; nothing to evaluate")
        classes = predictions.checked_classes(runs.run_classes(con, run_id), meta, probs.shape[1], run_id)
        available = runs.split_methods(con, run_id, split)
        chosen = method or ("lrp" if "lrp" in available else (available[0] if available else None))
        if available and chosen not in available:
            raise RetcoreError(f"run {run_id} has no {chosen!r} explanations on {split}; "
                               f"choose --method from {available}")
        data = RunData(run_id=run_id, split=split, classes=classes, info=info, n_images=len(meta),
                       report=headline.classification(con, run_id, split, classes, n_boot=n_boot, seed=seed,
                                                      level=LEVEL, roc=True),
                       epochs=runs.epochs(con, run_id), strata=strata.accuracy_strata(con, run_id, split, meta, LEVEL),
                       zone_set=zone_set)
        if not available:
            return data
        data.method = chosen
        listed = zones.zone_list(con, run_id, chosen)
        if not listed.empty:
            scores = zones.zone_scores(con, run_id, split, chosen, zone_set, classes)
            data.zone = _pick_zone(zone_set, zone, sorted(set(listed["zone_set"])),
                                   list(dict.fromkeys(scores["zone"])), run_id)
            data.scores = scores.rename(columns={"label": "class_name"})
            data.zone_tests = zones.zone_tests(data.scores, group="class_name")
            data.focus = zones.focus(con, run_id, split, chosen, zone_set, data.zone, classes, methods=("spearman",),
                                     scopes=("overall", "class"), n_boot=n_boot, seed=seed, level=LEVEL)
        data.maps = drift.class_maps(con, run_id, split, chosen, classes, n_permutations=n_permutations, seed=seed)
    return data


# ---------------------------------------------------------------------------------------------
# Writing


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


class _Writer:
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


def _classification(data: RunData, w: _Writer) -> list[str]:
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
    lines += _table(["metric", "value [95% CI]", "interval"],
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
    lines += _table(["class", "n", "precision", "recall", "specificity", "F1", "AUROC"], rows)
    return lines


def _strata(data: RunData, w: _Writer) -> list[str]:
    """Accuracy per stratum (eye, quality grade, tertiles of each quality metric)."""
    from retcore import plots

    table, tests = data.strata.table, data.strata.tests
    if table.empty:
        return []
    w.figure("accuracy_by_stratum", "Accuracy per stratum (eye, quality grade, tertiles of quality metrics) "
             "with Wilson 95% CI", plots.stratum_accuracy_chart(table, facet="stratifier",
                                                                stratum_order=STRATUM_ORDER), table)
    lines = ["", "## Accuracy across strata (chi-square test of independence)", ""]
    return lines + _table(["stratifier", "strata", "χ²", "p", "Cramér's V"],
                          [[r["stratifier"], str(r["strata"]), fmt_num(r["statistic"], 2), fmt_p(r["p_value"]),
                            fmt_num(r["effect"], 2)] for r in tests.to_dict("records")])


def _explanations(data: RunData, w: _Writer, n_permutations: int) -> tuple[list[str], list[str]]:
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
            lines += _table(["class A", "class B", "JS distance", "p (Holm)", "n A", "n B"],
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
    lines += _table(["zone", "H", "p", "ε²", "U", "p", "rank-biserial r"],
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
    lines += _table(["class", "n", "ρ [95% CI]", "p"],
                    [[r["group"], str(r["n"]), fmt_ci(r["value"], r["low"], r["high"], 2), fmt_p(r["p_value"])]
                     for r in corr.to_dict("records")])
    return lines, missing


def _expected_figures(data: RunData) -> int:
    """How many figures ``run_export`` writes for ``data`` (the progress bar's total)."""
    import numpy as np

    report = data.report
    count = 3 + (report.roc is not None and not report.roc.empty) + (not data.epochs.empty)
    count += not data.strata.table.empty
    if data.maps is not None:
        count += any(np.isfinite(m).all() for m in data.maps.means.values()) + (not data.maps.matrix.empty)
    count += 2 * (data.zone is not None)
    return int(count)


def run_export(run: str, out: Path | None = None, *, db: Path | None = None, results: Path | None = None,
               split: str = "test",
               method: str | None = None, zone_set: str = "anatomy", zone: str | None = None,
               n_boot: int = 1000, n_permutations: int = 1000, seed: int = 0) -> ExportResult:
    """Export run ``run``'s figures and ``summary.md`` for ``split`` into ``out``.

    ``out`` defaults to ``<results>/exports/<run>/`` (``results`` default: ``results/``
    beside the database). Returns the files
    written and the parts left out (e.g. the explanation figures of an unexplained run).
    A progress bar over the figures goes to stderr.
    """
    from tqdm.auto import tqdm

    data = load_run_data(db, run, split, method=method, zone_set=zone_set, zone=zone, n_boot=n_boot,
                         n_permutations=n_permutations, seed=seed)
    out = Path(out) if out is not None else results_dir(db, results) / "exports" / data.run_id
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=_expected_figures(data), desc=f"export {data.run_id}", unit="figure", file=sys.stderr)
    try:
        result = _write_export(data, out, bar, n_boot=n_boot, n_permutations=n_permutations, seed=seed)
        bar.total = bar.n
    finally:
        bar.close()
    return result


def _methods_text(used: set[str], n_boot: int, n_permutations: int, seed: int) -> list[str]:
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
    return [f"- {m}" for m in methods]


def _write_export(data: RunData, out: Path, bar: Any, *, n_boot: int, n_permutations: int,
                  seed: int) -> ExportResult:
    """The body of :func:`run_export`: figures through a :class:`_Writer` on ``bar``, then summary.md."""
    writer = _Writer(out, bar)
    result = ExportResult(data.run_id, out)
    split, info = data.split, data.info

    lines = [f"# Run {data.run_id}: split `{split}`", ""]
    lines += [f"Model `{info.get('model') or '?'}`, dataset `{info.get('dataset_id') or '?'}`, "
              f"{data.n_images} images, classes {', '.join(data.classes)}. "
              f"Exported {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
              + (f" from code version `{info['code_version']}`." if info.get("code_version") else "."), ""]
    lines += _classification(data, writer)
    lines += _strata(data, writer)
    if data.method is None:
        result.missing.append(
            f"explanation figures (mean heatmaps, heatmap drift, zone scores): run {data.run_id} has no "
            f"explanations on {split}; run `retcore explain --run {data.run_id} --split {split}`")
    else:
        ex_lines, ex_missing = _explanations(data, writer, n_permutations)
        lines += ex_lines
        result.missing += ex_missing
    if not data.strata.has_quality:
        result.missing.append("image-quality strata: no image_quality rows (computed by `retcore explain`)")
    if result.missing:
        lines += ["", "## Missing", ""] + [f"- Not exported: {m}." for m in result.missing]

    lines += ["", "## Figures", "",
              "Each figure is written as `.svg`, `.png` (300 ppi) and `.pdf`, with its data as `.csv`.", ""]
    lines += [f"- `{name}`: {caption}" for name, caption in writer.figures]
    lines += ["", "## Statistical methods", ""]
    lines += _methods_text({name for name, _ in writer.figures}, n_boot, n_permutations, seed)
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result.files = writer.files + [summary]
    return result


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <results>/exports/<run>).",
                                             show_default=False)] = None,
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    method: Annotated[str | None, typer.Option(help="Explanation method (default: lrp if present).",
                                               show_default=False)] = None,
    zone_set: Annotated[str, typer.Option(help="Zone set of the zone-score figures: thirds | anatomy | mask.")]
    = "anatomy",
    zone: Annotated[str | None, typer.Option(help="Zone plotted against confidence (default: periphery, "
                                                  "else the set's first zone).", show_default=False)] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 1000,
    permutations: Annotated[int, typer.Option(help="Permutations for the drift p-values.")] = 1000,
    seed: int = 0,
    study: Annotated[str | None, typer.Option(help="Export a shortcut study instead of a run: its run id, or "
                                                   "'latest'.", show_default=False)] = None,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Write a run's figures (SVG, PNG 300 ppi, PDF + CSV) and summary.md with intervals and tests."""
    if study is not None:
        from jobs._study_export import run_study_export

        files = run_study_export(study, out, db=db, results=results)
        typer.echo(f"study: {len(files)} files -> {files[-1].parent}")
        return
    result = run_export(run, out, db=db, results=results, split=split, method=method, zone_set=zone_set, zone=zone,
                        n_boot=n_boot, n_permutations=permutations, seed=seed)
    figures = len([f for f in result.files if f.suffix == ".svg"])
    typer.echo(f"{result.run_id}: {figures} figures, {len(result.files)} files -> {result.out}")
    for item in result.missing:
        typer.echo(f"not exported: {item}")


if __name__ == "__main__":
    typer.run(main)
