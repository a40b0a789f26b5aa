"""Methods: can the maps of the selected run be believed? Per explanation method, a plain verdict
(randomisation check, faithfulness against random), the sanity-check curves, the deletion /
insertion curves against a random map, localisation against ground-truth masks and the cost per
image."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import methods_data as data
from dashboard.filters import current
from dashboard.ui import chart, fmt_ci, fmt_p, require
from retcore.plots.methods import (
    faithfulness_curves_chart,
    localisation_chart,
    method_cost_chart,
    sanity_curves_chart,
)
from retcore.sanity.summary import SURVIVAL_THRESHOLD

st.title("Methods")

f = current()
require(f.run, "No fine-tuning run has predictions yet: run `retcore predict --run RUN --split test`.")
run, split = f.run, f.split or "test"
SANITY_CMD = f"retcore sanity --run {run}"
EXPLAIN_CMD = f"retcore explain --run {run} --split {split} --methods lrp,gae --faithfulness-images 32"

sanity = data.sanity_summary(run)
faith_all = data.faithfulness_summary(run, split)
require(not (sanity.empty and faith_all.empty),
        f"Run {run} has no sanity checks and no faithfulness measurements on {split} yet.\n\n"
        f"Create them with `{SANITY_CMD}` (the randomisation test) and `{EXPLAIN_CMD}` "
        "(maps with deletion / insertion curves against a random map).")

# the faithfulness setting every section below reads
baseline = unit = None
faith = faith_all
if not faith_all.empty:
    left, right = st.columns(2)
    baselines = sorted(faith_all["baseline"].unique())
    units = sorted(faith_all["unit"].unique())
    baseline = left.selectbox("Perturbation baseline", baselines, key="methods-baseline",
                              help="What a removed pixel becomes: `blur` (the image blurred) or `mean` (a flat fill).")
    unit = right.selectbox("Perturbation unit", units, index=units.index("token") if "token" in units else 0,
                           key="methods-unit", help="Whole 16-px tokens or single pixels change together.")
    faith = faith_all[(faith_all["baseline"] == baseline) & (faith_all["unit"] == unit)]

st.subheader(f"Verdicts · run {run}")
sanity_verdicts = data.sanity_verdicts(run)
data_verdicts = data.sanity_verdicts(run, test="data")
verdicts = data.method_verdicts(sanity_verdicts, faith, data_verdicts)
for row in verdicts.itertuples():
    icon = {"passes": ":material/check_circle:", "fails": ":material/error:"}.get(row.randomisation,
                                                                                 ":material/help:")
    st.markdown(f"{icon} **{row.method}** {row.verdict}")
st.caption(f"Randomisation check: fails when, with every layer randomised (cascading), the lower end of the "
           f"95% interval of the Spearman or SSIM similarity to the trained map stays above "
           f"{SURVIVAL_THRESHOLD:g}; the data randomisation check (where `retcore study shortcut "
           "--shuffled-labels` ran) applies the same rule to the model fine-tuned on shuffled labels. "
           f"Faithfulness ({baseline or '–'} baseline, {unit or '–'} steps, {split}): "
           "the AUC gain over a random map of the same resolution on the test's better side, with its "
           "95% bootstrap interval over images; *beats random* when the interval excludes 0 and the "
           "Wilcoxon p < 0.05.")
st.download_button("Verdicts (CSV)", verdicts.to_csv(index=False).encode("utf-8"),
                   file_name=f"verdicts-{run}.csv", mime="text/csv", key="dl-methods-verdicts",
                   on_click="ignore", icon=":material/table:")

st.subheader("Sanity checks: model randomisation")
if sanity.empty:
    st.info(f"No sanity checks for run {run} yet: run `{SANITY_CMD}` (add `--images 8 --mode cascading` "
            "for a quick one).")
else:
    seeds = data.sanity_seeds(run)
    measure = st.radio("Similarity", ["spearman", "ssim"], horizontal=True, key="methods-measure")
    chart(sanity_curves_chart(sanity, measure=measure, threshold=SURVIVAL_THRESHOLD), sanity,
          f"sanity-{run}-{measure}",
          caption=f"Mean {measure} of each method's map on the randomised model to its map on the trained model "
                  f"(1 = unchanged, 0 = unrelated), 95% bootstrap band over {int(sanity['n_images'].max())} "
                  f"images, seed {seeds[0] if seeds else '–'}. Cascading randomises from the head down (the "
                  "last step has no trained weight left); independent one group at a time. Dashed: the "
                  "survival threshold.")

st.subheader(f"Faithfulness against a random map · {split}")
if faith.empty:
    st.info(f"No faithfulness measurements for run {run} on {split} yet: run `{EXPLAIN_CMD}`.")
else:
    curves = data.faithfulness_mean_curves(run, split, baseline=baseline, unit=unit)
    chart(faithfulness_curves_chart(curves), curves, f"faithfulness-{run}-{split}-{baseline}-{unit}",
          caption="Mean probability of the explained class as the image is perturbed in the order of the "
                  "method's map and of a random map, 95% bootstrap band over images. deletion_morf: lower "
                  "is better; deletion_lerf and insertion: higher is better.")
    table = pd.DataFrame({
        "method": faith["method"], "test": faith["test"], "better": faith["better"] + " AUC",
        "images": faith["n_images"], "AUC": faith["auc"].map(lambda v: f"{v:.3f}"),
        "random AUC": faith["random_auc"].map(lambda v: f"{v:.3f}"),
        "difference [95% CI]": [fmt_ci(v, lo, hi, 4) for v, lo, hi in
                                zip(faith["difference"], faith["difference_low"], faith["difference_high"])],
        "Wilcoxon p": faith["wilcoxon_p"].map(fmt_p), "verdict": faith["verdict"].str.split(":").str[0],
    })
    st.dataframe(table, hide_index=True, width="stretch")

st.subheader(f"Localisation against ground-truth masks · {split}")
loc = data.localisation_summary(run, split)
if loc.empty:
    st.caption(f"No localisation rows for run {run} on {split}: its images have no ground-truth masks "
               "(or were not explained).")
else:
    chart(localisation_chart(loc), loc, f"localisation-{run}-{split}",
          caption="Mean over images of each method's explained-class map with 95% bootstrap intervals: "
                  "pointing game (the map's maximum lies on the mask), mass accuracy (share of positive "
                  "relevance on the mask), rank accuracy (share of the top-|mask| pixels on the mask).")

st.subheader("Cost per image")
costs = data.method_costs(faith, data.sanity_costs(run))
if costs.empty:
    st.caption("No timing stored: `retcore explain` stores the faithfulness cost per image and method when "
               "it measures faithfulness, and `retcore sanity` the cost of its randomisation checks.")
else:
    chart(method_cost_chart(costs), costs, f"cost-{run}-{split}",
          caption="Seconds per image and method as the jobs timed them: faithfulness (`retcore explain`: every "
                  "unit and test, random maps included; the job's total divided by its methods) and sanity "
                  "checks (`retcore sanity`: the randomised maps of every step and their comparison, the "
                  "re-initialisation of the layers not included).")
