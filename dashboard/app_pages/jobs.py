"""Jobs: what ran, with which configuration, the command that reruns it, and why a run stopped."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.data import db_path
from dashboard.ui import require
from jobs.rerun import rerun
from retcore.storage.runs import UNFINISHED, log_dirs, log_tail, resume_hint

st.title("Jobs")
st.caption("Every job invocation recorded in the database, newest first. Select one to see its configuration, "
           "the exact command that reruns it and, for a failed or interrupted run, the end of its log. A run whose "
           "process stopped sending heartbeats (killed, machine stopped) shows as interrupted.")

jobs = queries.jobs()
require(not jobs.empty, "No jobs recorded yet. Run `retcore pipeline --demo` or `retcore finetune --data ...`.")

table = jobs[["run_id", "job", "status", "started_at", "seconds", "progress", "model", "parent_run_id"]]
event = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="jobs-table",
    column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
                   "seconds": st.column_config.NumberColumn("seconds", format="%.1f")},
)
rows = event.selection.rows if event is not None and hasattr(event, "selection") else []
ids = jobs["run_id"].tolist()
wanted = st.query_params.get("job")
default = ids[rows[0]] if rows else (wanted if wanted in ids else ids[0])
run_id = st.selectbox("Job", ids, index=ids.index(default), key="jobs-pick")
st.query_params["job"] = run_id
row = jobs.set_index("run_id").loc[run_id]

left, right = st.columns([3, 2])
with left:
    st.subheader("Rerun")
    again = rerun(row["job"], row["config"], row["command"], db=str(db_path()))
    st.code(again.command, language="bash")
    if again.source == "config":
        st.caption("Built from the run's stored configuration and the job's own options: only settings that "
                   "differ from the defaults are spelled out. A rerun is a new run.")
    if again.differences:
        st.warning("This command does not reproduce every setting of the run:\n\n"
                   + "\n".join(f"- {line}" for line in again.differences))
    if again.recorded:
        st.markdown("**Recorded command line** (the job, pipeline or study that started this run)")
        st.code(again.recorded, language="bash")
    elif not (isinstance(row["command"], str) and row["command"].strip()):
        st.caption("No command line was recorded (the job was started from Python).")
    st.subheader("Configuration")
    try:
        st.json(json.loads(row["config"]) if row["config"] else {}, expanded=2)
    except (TypeError, ValueError):
        st.code(str(row["config"]))
with right:
    st.subheader("Run")
    facts = {
        "job": row["job"], "status": row["status"], "started": row["started_at"], "finished": row["finished_at"],
        "duration (s)": None if pd.isna(row["seconds"]) else round(float(row["seconds"]), 1),
        "progress": row["progress_note"], "parent run": row["parent_run_id"], "model": row["model"],
        "dataset": row["dataset_id"], "seed": row["seed"], "checkpoint": row["checkpoint"],
        "output folder": row["out_dir"], "log": row["log_path"], "code version": row["code_version"],
    }
    st.dataframe(pd.DataFrame({"field": list(facts), "value": [("" if v is None or (not isinstance(v, str) and
                                                                                    pd.isna(v)) else str(v))
                                                                 for v in facts.values()]}),
                 hide_index=True, width="stretch")
    if row["status"] == "interrupted" and row["recorded_status"] == "running":
        seen = row["heartbeat_at"] if pd.notna(row["heartbeat_at"]) else row["started_at"]
        st.warning(f"No heartbeat since {seen:%Y-%m-%d %H:%M:%S} UTC: the job's process is gone (killed, or the "
                   "machine stopped); the next job records the run as interrupted. "
                   f"To continue, {resume_hint(row['job'], run_id, row['config'], row['command'])}.")
    elif isinstance(row["error"], str) and row["error"]:
        (st.warning if row["status"] == "interrupted" else st.error)(row["error"])
    if row["status"] in UNFINISHED:
        text = {k: row[k] if isinstance(row[k], str) and row[k] else None for k in ("log_path", "out_dir",
                                                                                    "parent_out_dir")}
        log = text["log_path"]
        tail = log_tail(log, run_id, log_dirs(db_path(), text["out_dir"], text["parent_out_dir"])) if log else None
        if tail is not None:
            st.markdown("**End of the log** (a failure's full traceback is here)")
            st.code(tail, language="text")
            st.caption(f"Whole log: `{log}`")
        elif log:
            st.caption(f"The log `{log}` is not readable here (moved, deleted, or outside this run's results folder).")
        else:
            st.caption("No log was recorded for this run (it ran before logs were kept, schema v4).")
    if isinstance(row["package_versions"], str) and row["package_versions"]:
        with st.expander("Package versions"):
            st.json(json.loads(row["package_versions"]))
