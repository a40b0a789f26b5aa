"""Study: the shortcut study's arms side by side (baseline and guided fine-tuning over seeds), with
intervals, per-seed values, paired tests, and each arm's maps on marked test images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import images, queries
from dashboard.ui import chart, fmt_p, require
from retcore import plots
from retcore.results.study import arm_labels, paired_arms
from retcore.study import STUDY_METRICS, seed_summary

HEADLINE = ["accuracy", "shortcut_class_accuracy", "marker_relevance_share", "marker_ratio", "disc_score_shortcut_class",
            "pointing_game"]
PAIRED = {"mcnemar_correct": "McNemar, correct (exact)", "wilcoxon_marker_mass": "Wilcoxon, marker share",
          "wilcoxon_center_score": "Wilcoxon, centre score"}

st.title("Study")
st.caption("`retcore study shortcut`: the demo set with a planted marker on one class, fine-tuned over several seeds "
           "without a guide (baseline) and with one (guided). Per arm: the mean across seeds with its 95% Student-t "
           "interval, and each seed as a dot. Paired tests compare the arms on the same test images, "
           "pooled over seeds. Studies that share a baseline (the same recipe and seeds reuse the same runs) can be "
           "shown together, one arm per guide.")

studies = queries.study_runs()
require(not studies.empty, "No shortcut study yet: run `retcore study shortcut --seeds 0,1,2 --guide anatomy` "
                           "(see the README, *The shortcut study*).")
ids = studies["run_id"].tolist()
labels = {r.run_id: f"{r.run_id} · {r.arm} · seeds {r.config.get('seeds')}" for r in studies.itertuples()}
wanted = st.query_params.get("study")
study = st.selectbox("Study", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=labels.get,
                     key="study-run")
st.query_params["study"] = study
config = studies.set_index("run_id").loc[study, "config"]
others = [i for i in ids if i != study]
extra = st.multiselect("Add the guided arms of other studies", others, format_func=labels.get, key="study-extra",
                       help="Only studies with the same seeds and method are comparable; their baseline runs are "
                            "the same runs when the recipe is the same.")
shortcut = config.get("shortcut")
method = config.get("method", "lrp_pixels")
st.caption(f"Shortcut class **{shortcut}** · maps measured with **{method}** · seeds {config.get('seeds')} · "
           f"data `{config.get('data', '?')}`")


def _arm_names(run_id: str) -> dict[str, str]:
    """``study_results.arm`` -> display name for one study (``baseline`` keeps its name: it is shared)."""
    return {"baseline": "baseline", **arm_labels(studies.set_index("run_id").loc[run_id, "config"])}


def _arm_rows(run_id: str) -> pd.DataFrame:
    res = queries.study_results(run_id).results
    rows = res[res["seed"] >= 0].copy()
    rows["arm"] = rows["arm"].replace(_arm_names(run_id))
    return rows


per_seed = pd.concat([_arm_rows(s) for s in [study, *extra]], ignore_index=True)
per_seed = per_seed.drop_duplicates(["arm", "seed", "metric"], keep="first")
arms = ["baseline", *[a for a in dict.fromkeys(per_seed["arm"]) if a != "baseline"]]
summary = seed_summary(per_seed[["arm", "seed", "metric", "value"]])

st.subheader("Arms side by side")
shown = st.multiselect("Metrics", [m for m in STUDY_METRICS if m in set(summary["metric"])],
                       default=[m for m in HEADLINE if m in set(summary["metric"])], key="study-metrics")
require(shown, "Pick at least one metric.")
seeds_frame = per_seed[["metric", "arm", "seed", "value"]]
fig = plots.study_arms_chart(summary, seeds_frame, metrics=shown, arms=arms)
chart(fig, summary[summary["metric"].isin(shown)], f"study-arms-{study}",
      caption="Dot: mean across seeds; bar: 95% t-interval; small hollow dots: one seed each. marker_ratio = the "
              "marker's share of the map's positive relevance / its share of the area (1 = no preference).")

table = summary.pivot(index="metric", columns="arm", values="mean").reindex(columns=arms)
lows = summary.pivot(index="metric", columns="arm", values="low").reindex(columns=arms)
highs = summary.pivot(index="metric", columns="arm", values="high").reindex(columns=arms)
cells = table.copy().astype(object)
for arm in arms:
    cells[arm] = [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" if np.isfinite(lo) else f"{m:.4f}"
                  for m, lo, hi in zip(table[arm], lows[arm], highs[arm])]
for arm in arms[1:]:  # 3 significant digits: a marker-share difference is ~1e-5, 4 decimals would show 0
    cells[f"{arm} − baseline"] = [f"{d:+.3g}" if np.isfinite(d) else "–" for d in table[arm] - table["baseline"]]
order = [m for m in STUDY_METRICS if m in cells.index]
st.dataframe(cells.reindex(order), width="stretch")

with st.expander("Per seed", expanded=False):
    wide = per_seed.pivot_table(index="metric", columns=["arm", "seed"], values="value").reindex(order)
    st.dataframe(wide.round(4), width="stretch")
    st.download_button("CSV", per_seed.to_csv(index=False).encode("utf-8"), file_name=f"study-{study}-per-seed.csv",
                       mime="text/csv", key="dl-study-per-seed", on_click="ignore", icon=":material/table:")

st.subheader("Paired tests between arms")
paired_rows = []
for run_id in [study, *extra]:
    res = queries.study_results(run_id).results
    names = _arm_names(run_id)
    for pair, arm_b, arm_a in paired_arms(res):
        pr = res[res["arm"] == pair]
        for prefix, name in PAIRED.items():
            values = {what: pr.loc[pr["metric"] == f"{prefix}_{what}", "value"]
                      for what in ("mean_diff", "p_value", "n")}
            if all(len(v) for v in values.values()):
                paired_rows.append({"arm (b)": names.get(arm_b, arm_b), "against (a)": names.get(arm_a, arm_a),
                                    "test": name, "images": int(values["n"].iloc[0]),
                                    "mean difference (b − a)": f"{float(values['mean_diff'].iloc[0]):+.3g}",
                                    "p": fmt_p(float(values["p_value"].iloc[0]))})
if paired_rows:
    st.dataframe(pd.DataFrame(paired_rows).drop_duplicates(["arm (b)", "against (a)", "test"]), hide_index=True,
                 width="stretch")
    st.caption("Pooled over seeds, on the images both arms explained with the same seed; the correctness row's "
               "difference is the accuracy difference. Not adjusted for multiple arms. A warm-started study "
               "(`--warm-start`) also tests its guided arm against the `continued` control: the same extra epochs "
               "from the baseline without a guide.")
else:
    st.info("This study stored no paired tests.")

st.subheader("Maps on marked test images")
seeds = sorted(per_seed["seed"].unique().tolist())
c1, c2 = st.columns([1, 1])
seed = c1.selectbox("Seed", seeds, key="study-seed")
count = int(c2.number_input("Images", 1, 12, 4, 1, key="study-n"))
runs_by_arm = {arm: per_seed.loc[(per_seed["arm"] == arm) & (per_seed["seed"] == seed), "run_id"].dropna()
               for arm in arms}
runs_by_arm = {arm: str(r.iloc[0]) for arm, r in runs_by_arm.items() if len(r)}
if "baseline" not in runs_by_arm or not shortcut:
    st.info("No baseline run for this seed: no examples.")
else:
    examples = queries.study_examples(runs_by_arm["baseline"], list(runs_by_arm.values()), method, shortcut, count)
    if examples.empty:
        st.info(f"No {shortcut} test image with the marker has a stored {method} map in these runs.")
    else:
        st.caption(f"{method} maps of each arm (seed {seed}) on {shortcut} test images that carry the marker; the "
                   "caption gives the marker's share of the map's positive relevance and of the area.")
        arm_of = {run: arm for arm, run in runs_by_arm.items()}
        size = queries.run_img_size(runs_by_arm["baseline"])
        for image_id, rows in examples.groupby("image_id", sort=False):
            first = rows.iloc[0]
            tiles = [images.render_case(first["path"], None, None, size, zones=False, disc=False)]
            captions = [f"`{image_id}` · {first['label']} · marker area {first['marker_area']:.4f}"]
            for arm in arms:
                row = rows[rows["run_id"] == runs_by_arm.get(arm, "")]
                if row.empty:
                    continue
                r = row.iloc[0]
                out_dir = queries.run_out_dir(r["run_id"])
                full, problem = images.read_heatmap(r["heatmap_path"], r["heatmap_sha256"], out_dir)
                grid = np.asarray(r["grid"], dtype=np.float32).reshape(int(r["grid_h"]), int(r["grid_w"]))
                shown_map, problem = images.choose_map(full, problem, grid,
                                                       None if pd.isna(r["positive_sum"]) else float(r["positive_sum"]))
                tiles.append(images.render_case(r["path"], None, shown_map, size, zones=False, disc=False))
                share = "–" if pd.isna(r["marker_mass"]) else f"{r['marker_mass']:.4f}"
                captions.append(f"{arm_of[r['run_id']]} · pred-explained {r['target_label']} · marker share {share}"
                                + ("" if problem is None else " · token grid"))
            cols = st.columns(len(tiles))
            for col, tile, cap in zip(cols, tiles, captions):
                col.image(tile, caption=cap, width="stretch")
