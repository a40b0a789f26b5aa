"""Overview: runs and live progress, then the selected run's headline metrics with
intervals, confusion matrix, per-class table and reliability diagram."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import analysis, queries
from dashboard.filters import current
from dashboard.ui import chart, fmt_ci, require
from retcore import plots

st.title("Overview")

HEADLINE = [("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced acc."), ("macro_f1", "Macro F1"),
            ("macro_auroc", "Macro AUROC"), ("kappa", "Cohen's κ"), ("ece", "ECE")]


def _runs_table(runs: pd.DataFrame) -> None:
    st.dataframe(
        runs, hide_index=True, width="stretch",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )


runs = queries.runs()
require(not runs.empty, "The database has no runs yet. Run `retcore pipeline --demo` or `retcore finetune --data ...`.")

st.subheader("Runs")
if (runs["status"] == "running").any():
    @st.fragment(run_every=2)
    def _live() -> None:
        latest = queries.runs()
        _runs_table(latest)
        for row in latest[latest["status"] == "running"].itertuples():
            st.progress(float(row.progress or 0.0), text=f"{row.run_id}: {row.progress_note or 'running'}")

    _live()
else:
    _runs_table(runs)

f = current()
require(f.run, "No fine-tuning run has predictions yet: run `retcore predict --run RUN --split test`.")
require(f.split, f"Run {f.run} has no predictions yet: run `retcore predict --run {f.run} --split test`.")
classes = list(f.classes)

summary = analysis.headline(f.run, f.split, tuple(classes))
require(summary.n > 0, f"Split {f.split} of run {f.run} has no labelled predictions.")
st.subheader(f"Run {f.run} · {f.split} · {summary.n:,} images")
table = summary.headline.set_index("metric")
cols = st.columns(len(HEADLINE))
for col, (name, label) in zip(cols, HEADLINE):
    if name not in table.index or pd.isna(table.loc[name, "value"]):
        col.metric(label, "–")
        continue
    row = table.loc[name]
    col.metric(label, f"{row['value']:.3f}", help=summary.interval_detail(name))
    if pd.notna(row["low"]):
        col.caption(f"95% CI {row['low']:.3f}–{row['high']:.3f}")
note = f"Intervals: Wilson for accuracy; bootstrap ({summary.n_boot}) for the others."
if summary.n_boot_images < summary.n_boot:
    note += f" AUROC and ECE: {summary.n_boot_images} resamples on {summary.n:,} images."
if summary.stale:
    note += " (Recomputed from the stored predictions; the metrics table differs — rerun `retcore predict`.)"
st.caption(note)

left, right = st.columns(2)
with left:
    st.markdown("**Confusion matrix**")
    confusion = summary.confusion
    cm = plots.confusion_matrix_chart(confusion, classes=classes, cell=min(64, 320 // max(len(classes), 1)))
    chart(cm, confusion, f"confusion-{f.run}-{f.split}")
with right:
    st.markdown(f"**Reliability diagram** (top-label confidence, {analysis.RELIABILITY_BINS} bins, "
                "Wilson 95% intervals)")
    bins = summary.reliability
    rel = plots.reliability_chart(bins)
    ece = table.loc["ece"] if "ece" in table.index else {}
    chart(rel, bins, f"reliability-{f.run}-{f.split}",
          caption=f"ECE {fmt_ci(ece.get('value'), ece.get('low'), ece.get('high'))} (95% bootstrap interval, "
                  f"{analysis.ECE_BINS} bins): mean gap between confidence and accuracy, weighted by bin size.")

st.subheader("Per class")
per_class = summary.per_class_with_auroc()
if f.cls:
    per_class = per_class[per_class["class"] == f.cls]
shown = pd.DataFrame({"class": per_class["class"], "support": per_class["support"]})
for name in ("precision", "recall", "specificity", "f1"):
    shown[name] = [fmt_ci(v, lo, hi) for v, lo, hi in
                   zip(per_class[name], per_class[f"{name}_low"], per_class[f"{name}_high"])]
if "auroc" in per_class:
    shown["auroc"] = [fmt_ci(v, lo, hi) for v, lo, hi in
                      zip(per_class["auroc"], per_class["auroc_low"], per_class["auroc_high"])]
st.dataframe(shown, hide_index=True, width="stretch")
st.caption("Value [95% interval]: Wilson for precision, recall and specificity; bootstrap for F1 and AUROC.")
chart(plots.per_class_metric_chart(per_class, metrics_order=["precision", "recall", "f1"], classes=classes),
      per_class, f"per-class-{f.run}-{f.split}")

epochs = queries.epochs(f.run)
if not epochs.empty:
    st.subheader("Training")
    chart(plots.training_curves_chart(epochs), epochs, f"training-{f.run}")
