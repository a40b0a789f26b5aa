"""``retcore export``: a run's figures for a paper, and a summary of its statistics.

Reads the database read-only (it writes nothing there) and, for one split of a
fine-tuned run, writes to ``--out``:

- every figure as ``<name>.svg``, ``<name>.png`` (300 ppi) and ``<name>.pdf``, in
  the ``retcore`` theme, plus ``<name>.csv`` with the data drawn;
- ``summary.md``: headline and per-class metrics with 95% intervals, the
  explanation statistics, the list of files and the statistical tests used.

Classification figures need only predictions; the explanation figures (zone
score vs confidence, zone-score distributions, drift between classes, mean
heatmaps) need ``retcore explain`` on the split, and the summary says when
they are missing.
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

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

__all__ = ["ExportResult", "RunData", "load_run_data", "main", "run_export"]

FIGURE_FORMATS = ("svg", "png", "pdf")
LEVEL = 0.95
STRATUM_ORDER = ["good", "usable", "poor", "low", "mid", "high", "left", "right"]


@dataclass
class RunData:
    """Everything the export reads for one run and split (empty frames where absent)."""

    run_id: str
    split: str
    classes: list[str]
    info: dict[str, Any]
    predictions: pd.DataFrame
    confusion: pd.DataFrame
    metrics: pd.DataFrame
    epochs: pd.DataFrame
    explanations: pd.DataFrame
    zone_scores: pd.DataFrame
    quality: pd.DataFrame
    strata: pd.DataFrame


@dataclass
class ExportResult:
    """What ``run_export`` wrote: the run, the folder, the files and the parts left out."""

    run_id: str
    out: Path
    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading


def _tables(con) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _resolve_run(con, db: Path, run: str, split: str) -> dict[str, Any]:
    """The finetune run ``run`` ('latest' = newest with predictions on ``split``) as a dict."""
    from retcore.errors import RetcoreError

    columns = "run_id, job, parent_run_id, model, dataset_id, code_version, started_at, status"
    if run == "latest":
        row = con.execute(
            f"SELECT {columns} FROM runs r WHERE job = 'finetune' AND EXISTS (SELECT 1 FROM predictions p "
            "WHERE p.run_id = r.run_id AND p.split = ?) ORDER BY started_at DESC LIMIT 1", [split]).fetchone()
        if row is None:
            raise RetcoreError(f"no run in {db} has predictions for split {split!r}; "
                               "run `retcore predict --run RUN` first")
    else:
        row = con.execute(f"SELECT {columns} FROM runs WHERE run_id = ?", [run]).fetchone()
        if row is None:
            raise RetcoreError(f"no run {run!r} in {db}; pass a finetune run id (see the dashboard) "
                               "or --run latest")
        if row[1] != "finetune" and row[2]:  # a predict / explain run: export its fine-tuned parent
            parent = con.execute(f"SELECT {columns} FROM runs WHERE run_id = ?", [row[2]]).fetchone()
            row = parent or row
    keys = [c.strip() for c in columns.split(",")]
    return dict(zip(keys, row))


def load_run_data(db: Path | None, run: str, split: str = "test", *, method: str | None = None) -> RunData:
    """Read run ``run``'s rows for ``split`` in one short read-only connection.

    ``method`` picks the explanation method (default ``lrp`` if present, else the first
    in alphabetical order). Raises ``RetcoreError`` for a missing database, an unknown
    run or a split without predictions.
    """
    import numpy as np
    import pandas as pd

    from retcore.errors import DatabaseError, RetcoreError
    from retcore.storage import connect, resolve_db_path

    path = resolve_db_path(db)
    with connect(path, read_only=True) as con:
        tables = _tables(con)
        if not {"runs", "predictions", "metrics", "confusion"} <= tables:
            raise DatabaseError(f"{path} is not a retcore results database (no runs/predictions tables); "
                                "check --db")
        info = _resolve_run(con, path, run, split)
        run_id = info["run_id"]

        def q(sql: str, params: list[Any], table: str | None = None) -> pd.DataFrame:
            if table is not None and table not in tables:
                return pd.DataFrame()
            return con.execute(sql, params).df()

        predictions = q("SELECT p.image_id, p.label, p.probs, p.pred, p.confidence, p.correct, i.eye "
                        "FROM predictions p LEFT JOIN images i USING (image_id) "
                        "WHERE p.run_id = ? AND p.split = ? ORDER BY p.image_id", [run_id, split])
        if predictions.empty:
            raise RetcoreError(f"run {run_id} has no predictions for split {split!r}; "
                               f"run `retcore predict --run {run_id} --split {split}` first")
        if predictions["label"].isna().all():
            raise RetcoreError(f"split {split!r} of run {run_id} has no labelled images; nothing to evaluate")
        classes_row = con.execute("SELECT classes FROM datasets WHERE dataset_id = ?",
                                  [info["dataset_id"]]).fetchone() if "datasets" in tables else None
        confusion = q("SELECT true_label, pred_label, count FROM confusion WHERE run_id = ? AND split = ?",
                      [run_id, split])
        metrics = q("SELECT metric, class_name, value FROM metrics WHERE run_id = ? AND split = ?",
                    [run_id, split])
        epochs = q("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", [run_id], "epochs")
        methods = q("SELECT DISTINCT e.method FROM explanations e JOIN predictions p ON p.run_id = e.run_id "
                    "AND p.image_id = e.image_id AND p.split = ? WHERE e.run_id = ? ORDER BY e.method",
                    [split, run_id], "explanations")
        available = list(methods["method"]) if not methods.empty else []
        chosen = method or ("lrp" if "lrp" in available else (available[0] if available else None))
        if available and chosen not in available:
            raise RetcoreError(f"run {run_id} has no {chosen!r} explanations on {split}; "
                               f"choose --method from {available}")
        explanations = q(
            "SELECT e.image_id, e.method, e.target, e.target_kind, e.grid_h, e.grid_w, e.grid FROM explanations e "
            "JOIN predictions p ON p.run_id = e.run_id AND p.image_id = e.image_id AND p.split = ? "
            "WHERE e.run_id = ? AND e.method = ?", [split, run_id, chosen], "explanations")
        zone_scores = q(
            "SELECT z.image_id, z.method, z.target, z.zone_set, z.zone, z.score, z.mass_share FROM zone_scores z "
            "JOIN predictions p ON p.run_id = z.run_id AND p.image_id = z.image_id AND p.split = ? "
            "WHERE z.run_id = ? AND z.method = ?", [split, run_id, chosen], "zone_scores")
        quality = q("SELECT q.image_id, q.metric, q.value FROM image_quality q JOIN predictions p "
                    "ON p.image_id = q.image_id AND p.run_id = ? AND p.split = ?", [run_id, split],
                    "image_quality")
        grades = q("SELECT l.image_id, l.quality_grade FROM landmarks l JOIN predictions p "
                   "ON p.image_id = l.image_id AND p.run_id = ? AND p.split = ?", [run_id, split], "landmarks")

    width = len(predictions["probs"].iloc[0])
    classes = list(classes_row[0]) if classes_row and classes_row[0] else []
    if len(classes) != width:
        seen = sorted(set(predictions["label"].dropna()) | set(predictions["pred"]))
        if len(seen) != width:
            raise RetcoreError(f"run {run_id}: cannot tell the order of its {width} classes "
                               "(dataset record missing); re-register the dataset with `retcore finetune`")
        classes = seen
    predictions["probs"] = list(np.stack(predictions["probs"].to_numpy()).astype(float))

    if not explanations.empty:
        if "target_kind" in explanations and (explanations["target_kind"] == "pred").any():
            explanations = explanations[explanations["target_kind"] == "pred"]
        explanations = explanations.drop_duplicates("image_id")
        keys = explanations[["image_id", "method", "target"]]
        zone_scores = zone_scores.merge(keys, on=["image_id", "method", "target"]) if not zone_scores.empty \
            else zone_scores
    strata = predictions[["image_id", "eye"]].copy()
    if not grades.empty:
        strata = strata.merge(grades.rename(columns={"quality_grade": "quality grade"}), on="image_id", how="left")
    return RunData(run_id=run_id, split=split, classes=classes, info=info, predictions=predictions,
                   confusion=confusion, metrics=metrics, epochs=epochs, explanations=explanations,
                   zone_scores=zone_scores, quality=quality, strata=strata)


# ---------------------------------------------------------------------------------------------
# Formatting


def _num(value: float, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def _ci(value: float, low: float, high: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
        return _num(value, digits)
    return f"{_num(value, digits)} [{_num(low, digits)}, {_num(high, digits)}]"


def _p(value: float) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


# ---------------------------------------------------------------------------------------------
# Writing


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


def _classification(data: RunData, w: _Writer, n_boot: int, seed: int) -> list[str]:
    """Classification figures and the summary lines for them."""
    import numpy as np
    import pandas as pd

    from retcore import plots, stats

    classes, pred = data.classes, data.predictions
    labelled = pred[pred["label"].notna()]
    y, yhat = labelled["label"], labelled["pred"]
    probs = np.stack(labelled["probs"].to_numpy())
    correct = labelled["correct"].astype(bool).to_numpy()

    confusion = (data.confusion if not data.confusion.empty
                 else stats.confusion_table(y, yhat, classes).rename(columns={"true": "true_label",
                                                                              "pred": "pred_label"}))
    w.figure("confusion_matrix", "Confusion matrix: counts and share of each true class",
             plots.confusion_matrix_chart(confusion, classes=classes), confusion)

    per_class = stats.per_class_metrics(y, yhat, classes, n_boot=n_boot, seed=seed, level=LEVEL)
    w.figure("per_class_metrics", "Precision, recall, specificity (Wilson 95% CI) and F1 (bootstrap 95% CI) "
             "per class", plots.per_class_metric_chart(per_class, classes=classes), per_class)

    n_bins = 10
    bins = stats.reliability_curve(labelled["confidence"], correct, n_bins=n_bins, level=LEVEL)
    w.figure("reliability", f"Reliability diagram ({n_bins} equal-width bins, Wilson 95% CI per bin)",
             plots.reliability_chart(bins), bins)

    auroc = stats.auroc_table(y, probs, classes, n_boot=n_boot, seed=seed, level=LEVEL)
    roc = stats.roc_curves(y, probs, classes)
    if not roc.empty:
        w.figure("roc_curves", "One-vs-rest ROC curves with AUROC (bootstrap 95% CI)",
                 plots.roc_chart(roc, auroc=auroc, classes=classes), roc)

    epochs = data.epochs.drop(columns=["run_id"], errors="ignore")
    if not epochs.empty:
        w.figure("training_curves", "Training and validation loss, validation scores per epoch (dashed: best)",
                 plots.training_curves_chart(epochs), epochs)

    overall = stats.overall_metrics(y, yhat, classes, n_boot=n_boot, seed=seed, level=LEVEL)
    acc = stats.wilson_interval(int(correct.sum()), len(correct), LEVEL)
    ece = stats.calibration_error(labelled["confidence"], correct, 15, n_boot=n_boot, seed=seed, level=LEVEL)
    macro = auroc[auroc["class"] == "macro"].iloc[0]
    by_name = overall.set_index("metric")
    headline = [
        ("accuracy", "Accuracy", acc.value, acc.low, acc.high, "Wilson"),
        ("balanced_accuracy", "Balanced accuracy", *by_name.loc["balanced_accuracy", ["value", "low", "high"]],
         "bootstrap"),
        ("macro_f1", "Macro F1", *by_name.loc["macro_f1", ["value", "low", "high"]], "bootstrap"),
        ("macro_auroc", "Macro AUROC (one-vs-rest)", macro["auroc"], macro["low"], macro["high"], "bootstrap"),
        ("kappa", "Cohen's κ", *by_name.loc["kappa", ["value", "low", "high"]], "bootstrap"),
        ("ece", "ECE (15 bins)", ece.value, ece.low, ece.high, "bootstrap"),
    ]
    w.table("headline_metrics", pd.DataFrame(
        [{"metric": key, "value": v, "low": lo, "high": hi, "interval": kind, "n": len(labelled)}
         for key, _, v, lo, hi, kind in headline]))
    w.table("auroc", auroc)

    lines = [f"## Headline metrics ({len(labelled)} labelled images, 95% intervals)", ""]
    lines += _table(["metric", "value [95% CI]", "interval"],
                    [[name, _ci(v, lo, hi), kind] for _, name, v, lo, hi, kind in headline])
    stored = data.metrics[(data.metrics["class_name"] == "") & (data.metrics["metric"] == "accuracy")]
    if not stored.empty and math.isfinite(stored["value"].iloc[0]) and abs(stored["value"].iloc[0] - acc.value) > 1e-6:
        lines += ["", f"Note: the stored accuracy ({stored['value'].iloc[0]:.3f}) differs from the predictions "
                      "table; the predictions were rewritten after the metrics."]
    auc_by_class = auroc.set_index("class")
    rows = []
    for r in per_class.to_dict("records"):
        a = auc_by_class.loc[r["class"]] if r["class"] in auc_by_class.index else None
        rows.append([r["class"], str(r["support"]), _ci(r["precision"], r["precision_low"], r["precision_high"]),
                     _ci(r["recall"], r["recall_low"], r["recall_high"]),
                     _ci(r["specificity"], r["specificity_low"], r["specificity_high"]),
                     _ci(r["f1"], r["f1_low"], r["f1_high"]),
                     "–" if a is None else _ci(a["auroc"], a["low"], a["high"])])
    lines += ["", "## Per class (95% intervals)", ""]
    lines += _table(["class", "n", "precision", "recall", "specificity", "F1", "AUROC"], rows)
    return lines


def _strata(data: RunData, w: _Writer) -> list[str]:
    """Accuracy per stratum (eye, quality grade, tertiles of each quality metric)."""
    import pandas as pd

    from retcore import plots, stats

    frame = data.predictions[["image_id", "correct"]].merge(data.strata, on="image_id", how="left")
    stratifiers = [c for c in ("eye", "quality grade") if c in frame and frame[c].notna().any()]
    if not data.quality.empty:
        wide = data.quality.pivot_table(index="image_id", columns="metric", values="value")
        for metric in sorted(wide.columns):
            values = wide[metric].dropna()
            if values.nunique() >= 3:
                tertile = pd.qcut(values.rank(method="first"), 3, labels=["low", "mid", "high"]).astype(str)
                frame = frame.merge(tertile.rename(metric), left_on="image_id", right_index=True, how="left")
                stratifiers.append(metric)
    tables, tests = [], []
    for name in stratifiers:
        result = stats.accuracy_by_stratum(frame, name, level=LEVEL)
        if len(result.table) < 2:
            continue
        tables.append(result.table.assign(stratifier=name))
        tests.append([name, str(len(result.table)), _num(result.test.statistic, 2), _p(result.test.p_value),
                      _num(result.test.effect, 2)])
    if not tables:
        return []
    table = pd.concat(tables, ignore_index=True)
    w.figure("accuracy_by_stratum", "Accuracy per stratum (eye, quality grade, tertiles of quality metrics) "
             "with Wilson 95% CI", plots.stratum_accuracy_chart(table, facet="stratifier",
                                                                stratum_order=STRATUM_ORDER), table)
    lines = ["", "## Accuracy across strata (chi-square test of independence)", ""]
    return lines + _table(["stratifier", "strata", "χ²", "p", "Cramér's V"], tests)


def _pick_zone(data: RunData, zone_set: str, zone: str | None) -> str | None:
    """Check ``--zone-set`` / ``--zone`` against the run's zone scores before anything is written.

    Returns the zone to plot against confidence (``periphery`` when present, else the
    set's first zone), or None when the run has no zone scores at all.
    """
    from retcore.errors import RetcoreError

    if data.zone_scores.empty:
        return None
    sets = sorted(set(data.zone_scores["zone_set"]))
    if zone_set not in sets:
        raise RetcoreError(f"run {data.run_id} has no {zone_set!r} zone scores; choose --zone-set from {sets}")
    zones = list(dict.fromkeys(data.zone_scores.loc[data.zone_scores["zone_set"] == zone_set, "zone"]))
    if zone is None:
        return "periphery" if "periphery" in zones else zones[0]
    if zone not in zones:
        raise RetcoreError(f"zone set {zone_set!r} has no zone {zone!r}; choose --zone from {zones}")
    return zone


def _explanations(data: RunData, w: _Writer, zone_set: str, zone: str | None, n_boot: int, n_permutations: int,
                  seed: int) -> tuple[list[str], list[str]]:
    """Explanation figures; returns (summary lines, what is missing)."""
    import altair as alt
    import numpy as np
    import pandas as pd

    from retcore import plots, stats

    method = data.explanations["method"].iloc[0]
    classes = data.classes
    lines = ["", f"## Where the model looks (method `{method}`, zone set `{zone_set}`)", ""]
    missing: list[str] = []
    pred = data.predictions[["image_id", "label", "confidence", "correct"]]

    # Mean heatmap per class and drift between classes.
    ex = data.explanations.merge(pred, on="image_id")
    shape = (int(ex["grid_h"].iloc[0]), int(ex["grid_w"].iloc[0]))
    ex = ex[(ex["grid_h"] == shape[0]) & (ex["grid_w"] == shape[1]) & ex["label"].notna()]
    maps = stats.normalise_heatmaps(np.stack([np.asarray(g, dtype=float).reshape(shape) for g in ex["grid"]]))
    labels = ex["label"].to_numpy()
    present = [c for c in classes if (labels == c).any()]
    means = {c: stats.mean_heatmap(maps[labels == c]) for c in present}
    finite = [m for m in means.values() if np.isfinite(m).all()]
    if finite:
        top = float(max(m.max() for m in finite))
        grid_data = pd.concat([plots.grid_frame(m).assign(class_name=c) for c, m in means.items()], ignore_index=True)
        panels = [plots.heatmap_grid_chart(m, title=f"{c} (n={int((labels == c).sum())})", size=160,
                                           domain=[0, top], value_title="Mean share")
                  for c, m in means.items() if np.isfinite(m).all()]
        w.figure("mean_heatmaps", f"Mean normalised relevance ({method}) per true class, token grid "
                 f"{shape[0]}x{shape[1]}", alt.hconcat(*panels), grid_data)
    if len(present) >= 2:
        drift = stats.drift_matrix(maps, labels, n_permutations=n_permutations, seed=seed)
        w.figure("heatmap_drift", "Jensen-Shannon distance between the classes' mean heatmaps "
                 "(permutation p-values, Holm-adjusted)",
                 plots.drift_matrix_chart(drift, p="p_holm", mirror=True, x_order=present, y_order=present,
                                          x_title="Class", y_title="Class", value_title="JS distance"), drift)
        lines += ["Jensen-Shannon distance between mean heatmaps of true classes "
                  f"({n_permutations} permutations, Holm-adjusted p):", ""]
        lines += _table(["class A", "class B", "JS distance", "p (Holm)", "n A", "n B"],
                        [[r["group_a"], r["group_b"], _num(r["distance"]), _p(r["p_holm"]), str(r["n_a"]),
                          str(r["n_b"])] for r in drift.to_dict("records")])
        lines.append("")

    if zone is None:
        missing.append(f"zone-score figures: run {data.run_id} has no zone scores for method `{method}`")
        return lines, missing
    zs = data.zone_scores[data.zone_scores["zone_set"] == zone_set]
    scores = zs.merge(pred, on="image_id").rename(columns={"label": "class_name"})
    scores = scores[scores["class_name"].notna()]
    zones = list(dict.fromkeys(scores["zone"]))
    w.figure("zone_distributions", f"Zone score (relevance mass share / area share) per class, zone set "
             f"{zone_set}; dashed: no preference (1)",
             plots.zone_distribution_chart(scores, zone_order=zones, group_order=classes),
             scores[["image_id", "class_name", "zone", "score", "mass_share", "confidence", "correct"]])
    rows = []
    for name in zones:
        part = scores[scores["zone"] == name]
        kw = stats.compare_groups(part, "score", "class_name").omnibus
        mw = stats.compare_outcomes(part, "score")
        rows.append([name, _num(kw.statistic, 2), _p(kw.p_value), _num(kw.effect, 2),
                     _num(mw.statistic, 1), _p(mw.p_value), _num(mw.effect, 2)])
    lines += ["Zone scores across classes (Kruskal-Wallis) and correct vs incorrect (Mann-Whitney):", ""]
    lines += _table(["zone", "H", "p", "ε²", "U", "p", "rank-biserial r"], rows)

    chosen = zone
    one = scores[scores["zone"] == chosen]
    corr = stats.correlation_table(one, "confidence", "score", by="class_name", methods=("spearman",),
                                   n_boot=n_boot, seed=seed, level=LEVEL)
    overall = stats.correlation_table(one, "confidence", "score", methods=("spearman",), n_boot=n_boot, seed=seed,
                                      level=LEVEL)
    notes = {r["group"]: f"ρ={_num(r['value'], 2)}, p={_p(r['p_value'])}" for r in corr.to_dict("records")
             if math.isfinite(r["value"])}
    w.figure("zone_confidence", f"`{chosen}` zone score vs confidence per class; least-squares line with 95% "
             "confidence band; Spearman ρ per class",
             plots.zone_confidence_chart(one, facet_order=classes, notes=notes,
                                         x_title=f"{chosen} zone score"),
             one[["image_id", "class_name", "score", "confidence", "correct"]])
    w.table("zone_confidence_correlations", pd.concat([overall, corr], ignore_index=True))
    lines += ["", f"Spearman correlation of confidence with the `{chosen}` zone score (bootstrap 95% CI):", ""]
    lines += _table(["class", "n", "ρ [95% CI]", "p"],
                    [[r["group"], str(r["n"]), _ci(r["value"], r["low"], r["high"], 2), _p(r["p_value"])]
                     for r in pd.concat([overall, corr]).to_dict("records")])
    return lines, missing


def _expected_figures(data: RunData, zone: str | None) -> int:
    """How many figures ``run_export`` will write for ``data``, as the progress bar's total.

    An estimate from what was read (a figure whose data turns out empty is skipped);
    the bar's total is set to the figures written when the export ends.
    """
    count = 4 + (not data.epochs.empty)  # confusion, per class, reliability, ROC; training curves
    count += bool(data.strata["eye"].notna().any()) or "quality grade" in data.strata or not data.quality.empty
    if not data.explanations.empty:
        labels = data.predictions["label"].dropna()
        count += 1 + (labels.nunique() >= 2)  # mean heatmaps; drift between classes
        count += 2 * (zone is not None)  # zone distributions; zone vs confidence
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

    data = load_run_data(db, run, split, method=method)
    zone = _pick_zone(data, zone_set, zone)
    out = Path(out) if out is not None else results_dir(db, results) / "exports" / data.run_id
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=_expected_figures(data, zone), desc=f"export {data.run_id}", unit="figure", file=sys.stderr)
    try:
        result = _write_export(data, out, bar, split=split, zone_set=zone_set, zone=zone, n_boot=n_boot,
                               n_permutations=n_permutations, seed=seed)
        bar.total = bar.n  # the estimate may have counted a figure whose data was empty
    finally:
        bar.close()
    return result


def _write_export(data: RunData, out: Path, bar: Any, *, split: str, zone_set: str, zone: str | None,
                  n_boot: int, n_permutations: int, seed: int) -> ExportResult:
    """The body of :func:`run_export`: figures through a :class:`_Writer` on ``bar``, then summary.md."""
    writer = _Writer(out, bar)
    result = ExportResult(data.run_id, out)

    lines = [f"# Run {data.run_id}: split `{split}`", ""]
    info = data.info
    lines += [f"Model `{info.get('model') or '?'}`, dataset `{info.get('dataset_id') or '?'}`, "
              f"{len(data.predictions)} images, classes {', '.join(data.classes)}. "
              f"Exported {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
              + (f" from code version `{info['code_version']}`." if info.get("code_version") else "."), ""]
    lines += _classification(data, writer, n_boot, seed)
    lines += _strata(data, writer)
    if data.explanations.empty:
        result.missing.append(
            f"explanation figures (mean heatmaps, heatmap drift, zone scores): run {data.run_id} has no "
            f"explanations on {split}; run `retcore explain --run {data.run_id} --split {split}`")
    else:
        ex_lines, ex_missing = _explanations(data, writer, zone_set, zone, n_boot, n_permutations, seed)
        lines += ex_lines
        result.missing += ex_missing
    if data.quality.empty and "quality grade" not in data.strata:
        result.missing.append("image-quality strata: no image_quality rows (computed by `retcore explain`)")
    if result.missing:
        lines += ["", "## Missing", ""] + [f"- Not exported: {m}." for m in result.missing]

    used = {name for name, _ in writer.figures}
    lines += ["", "## Figures", "",
              "Each figure is written as `.svg`, `.png` (300 ppi) and `.pdf`, with its data as `.csv`.", ""]
    lines += [f"- `{name}`: {caption}" for name, caption in writer.figures]
    lines += ["", "## Statistical methods", ""]
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
    lines += [f"- {m}" for m in methods]
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
