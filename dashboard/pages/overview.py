"""Overview: runs and their status, then metrics and confusion of the selected run."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.data import DatabaseBusy, query

st.title("Overview")

try:
    runs = query(
        "SELECT run_id, job, status, progress, progress_note, started_at, finished_at, heartbeat_at, model, "
        "parent_run_id, error FROM runs ORDER BY started_at DESC"
    )
except DatabaseBusy:
    st.warning("Results are being written; retrying shortly.")
    st.stop()

if runs.empty:
    st.info("The database has no runs yet. Run `retcore pipeline --demo` or `retcore finetune --data ...`.")
    st.stop()

st.subheader("Runs")
st.dataframe(
    runs, hide_index=True, width="stretch",
    column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
)

trained = runs[(runs["job"] == "finetune")]
if trained.empty:
    st.info("No fine-tuning run yet.")
    st.stop()

options = trained["run_id"].tolist()
current = st.query_params.get("run", options[0])
run_id = st.selectbox("Run", options, index=options.index(current) if current in options else 0)
st.query_params["run"] = run_id

splits = query("SELECT DISTINCT split FROM metrics WHERE run_id = ? ORDER BY split", (run_id,))["split"].tolist()
if not splits:
    st.info(f"Run {run_id} has no metrics yet (still training, or no `retcore predict --run {run_id}`).")
    st.stop()
default_split = "test" if "test" in splits else splits[0]
split = st.radio("Split", splits, index=splits.index(default_split), horizontal=True)

metrics = query("SELECT metric, class_name, value FROM metrics WHERE run_id = ? AND split = ?", (run_id, split))
overall = metrics[metrics["class_name"] == ""].set_index("metric")["value"]
cols = st.columns(6)
for col, (name, label) in zip(cols, [("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced acc."),
                                      ("macro_f1", "Macro F1"), ("macro_auroc", "Macro AUROC"),
                                      ("kappa", "Cohen's κ"), ("ece", "ECE")]):
    value = overall.get(name)
    col.metric(label, "–" if value is None or pd.isna(value) else f"{value:.3f}")
st.caption(f"{int(overall.get('n', 0))} images in split {split}.")

left, right = st.columns([1, 1])
with left:
    st.subheader("Per class")
    per_class = metrics[metrics["class_name"] != ""].pivot(index="class_name", columns="metric", values="value")
    st.dataframe(per_class.round(3), width="stretch")
with right:
    st.subheader("Confusion matrix (row-normalised)")
    confusion = query("SELECT true_label, pred_label, count FROM confusion WHERE run_id = ? AND split = ?",
                      (run_id, split))
    if confusion.empty:
        st.info("No confusion matrix stored for this split.")
    else:
        confusion["share"] = confusion["count"] / confusion.groupby("true_label")["count"].transform("sum").clip(lower=1)
        base = alt.Chart(confusion).encode(
            x=alt.X("pred_label:N", title="Predicted"), y=alt.Y("true_label:N", title="True"))
        heat = base.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                                                       title="Row share"),
                                       tooltip=["true_label", "pred_label", "count", alt.Tooltip("share:Q", format=".2f")])
        text = base.mark_text().encode(text="count:Q", color=alt.condition("datum.share > 0.5", alt.value("white"),
                                                                            alt.value("black")))
        st.altair_chart((heat + text).properties(height=320), width="stretch")

epochs = query("SELECT epoch, train_loss, val_loss, val_accuracy, val_score FROM epochs WHERE run_id = ? "
               "ORDER BY epoch", (run_id,))
if not epochs.empty:
    st.subheader("Training curve")
    long = epochs.melt("epoch", var_name="series", value_name="value")
    st.altair_chart(alt.Chart(long).mark_line(point=True).encode(
        x="epoch:Q", y="value:Q", color="series:N", tooltip=["epoch", "series", "value"]).properties(height=260),
        width="stretch")
