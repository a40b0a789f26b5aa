"""Confidence vs focus: does the model grow more confident when it looks at a zone?"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import analysis, queries
from dashboard.filters import current
from dashboard.ui import chart, fmt_ci, fmt_p, require
from retcore import plots
from retcore.results.sample import describe

#: Points drawn in the scatter (the statistics always use every image).
MAX_POINTS = 4000

st.title("Confidence vs focus")
st.caption("Each point is an image: its zone score (share of positive relevance in the zone divided by the zone's "
           "share of the field of view; 1 = no preference) against the model's confidence, per true class, with a "
           "least-squares line and its 95% confidence band.")
f = current()
require(f.run, "No run with predictions yet: run `retcore predict --run RUN --split test`.")
require(f.method, f"Run {f.run} has no explanations yet: run "
                  f"`retcore explain --run {f.run} --split {f.split or 'test'}` to get zone scores.")

zones = queries.zone_list(f.run, f.method)
require(not zones.empty, f"No zone scores stored for {f.method} on run {f.run}.")
sets = sorted(zones["zone_set"].unique(), key=lambda s: (s != "thirds", s))
c1, c2 = st.columns(2)
url_zone = st.query_params.get("zone", "thirds/center")
default_set, _, default_zone = url_zone.partition("/")
zone_set = c1.selectbox("Zone set", sets, index=sets.index(default_set) if default_set in sets else 0,
                        key="conf-set")
names = zones.loc[zones["zone_set"] == zone_set, "zone"].tolist()
zone = c2.selectbox("Zone", names, index=names.index(default_zone) if default_zone in names else 0, key="conf-zone")
st.query_params["zone"] = f"{zone_set}/{zone}"

res = analysis.focus(f.run, f.split, f.method, zone_set, zone, f.classes, f.cls)
require(res.n > 0, f"No {zone_set}/{zone} scores for the {f.split} split of run {f.run} "
                   f"({'class ' + f.cls if f.cls else 'all classes'}).")
corr = res.correlations
notes = {}
for row in corr[(corr["scope"] == "class") & (corr["method"] == "spearman")].itertuples():
    if pd.notna(row.value):
        notes[row.group] = f"ρ={row.value:.2f}, p={fmt_p(row.p_value)}"
points = res.points.rename(columns={"label": "class_name"})[["image_id", "class_name", "score", "confidence",
                                                             "correct"]]
sampled = res.n > MAX_POINTS
if sampled:  # the chart draws a sample; the statistics use every image
    points = points.sample(MAX_POINTS, random_state=0).sort_values("image_id").reset_index(drop=True)
fig = plots.zone_confidence_chart(points, facet_order=list(f.classes), notes=notes,
                                  x_title=f"{zone} score ({zone_set}, {f.method})")
caption = f"{res.n:,} images."
if res.sampled:  # more images than the statistics take: a fixed sample, stated
    caption = f"{res.total:,} images; the chart and the statistics use {describe(res.n, res.total)}."
if sampled:
    caption += (f" The chart draws a random sample of {len(points):,} of them (its line and band are fitted on "
                "that sample); the table below uses " + (f"all {res.n:,}." if res.sampled else "every image."))
chart(fig, points, f"confidence-vs-{zone_set}-{zone}-{f.run}-{f.method}", caption=caption)

st.subheader("Correlation of confidence with the zone score")
table = pd.DataFrame({
    "scope": corr["scope"], "group": corr["group"], "method": corr["method"], "n": corr["n"],
    "coefficient [95% CI]": [fmt_ci(v, lo, hi) for v, lo, hi in zip(corr["value"], corr["low"], corr["high"])],
    "p": [fmt_p(p) for p in corr["p_value"]],
})
st.dataframe(table, hide_index=True, width="stretch")
st.caption(f"Spearman ρ and Pearson r with percentile-bootstrap intervals ({res.n_boot} resamples over images) "
           "and two-sided p-values of zero correlation. Undefined (–) when a group has fewer than 3 images or a "
           "constant score.")
st.download_button("Correlation table (CSV)", corr.to_csv(index=False).encode(), file_name="correlations.csv",
                   mime="text/csv", on_click="ignore", key="dl-correlations-csv")
out = res.outcome
if out is not None and pd.notna(out.p_value):
    st.markdown(f"**Correct vs incorrect:** Mann-Whitney U = {out.statistic:.0f}, p = {fmt_p(out.p_value)}, "
                f"rank-biserial r = {out.effect:+.2f} (positive: higher {zone} score when correct).")
else:
    st.caption("Correct vs incorrect: not testable here (one of the groups is empty).")
