"""Class drift: does the model look at different places for different classes?"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, images, queries
from dashboard.filters import current
from dashboard.ui import chart, fmt_p, require
from retcore import plots
from retcore.results.drift import default_reference

st.title("Class drift")
st.caption("Where the relevance goes, class by class: zone-score distributions, the mean relevance map of each "
           "class, and distances between classes with permutation p-values.")
f = current()
require(f.run, "No run with predictions yet: run `retcore predict --run RUN --split test`.")
require(f.method, f"Run {f.run} has no explanations yet: run "
                  f"`retcore explain --run {f.run} --split {f.split or 'test'}`.")
classes = list(f.classes)

zones = queries.zone_list(f.run, f.method)
require(not zones.empty, f"No zone scores stored for {f.method} on run {f.run}.")
sets = sorted(zones["zone_set"].unique(), key=lambda s: (s != "thirds", s))
c1, c2, c3 = st.columns(3)
zone_set = c1.selectbox("Zone set", sets, key="drift-set")
by_label = c2.radio("Group images by", ["true class", "predicted class"], horizontal=True, key="drift-by")
by = "pred" if by_label == "predicted class" else "label"
reference = c3.selectbox("Reference class (zone-score drift)", classes,
                         index=classes.index(default_reference(classes)) if classes else 0, key="drift-ref")

# ------------------------------------------------------------------ distributions
st.subheader("Zone-score distributions")
zd = analysis.zone_drift(f.run, f.split, f.method, zone_set, tuple(classes), by, reference)
require(not zd.values.empty, f"No {zone_set} zone scores for the {f.split} split.")
values = zd.values
if f.cls:
    st.caption(f"All classes are shown (drift compares classes); the class filter ({f.cls}) is highlighted in the "
               "tables.")
fig = plots.zone_distribution_chart(values, value="score", zone="zone", group="class", group_order=classes,
                                    y_title=f"Zone score ({f.method})")
chart(fig, values, f"zone-distributions-{zone_set}-{f.run}-{f.method}",
      caption=f"Box plots of up to {analysis.DRIFT_PER_CLASS:,} images per class; dashed line: score 1 (no "
              "preference). The table gives exact quantiles over every image.")
summary = zd.summary
if not summary.empty:
    st.dataframe(summary.round(3), hide_index=True, width="stretch")
tests = zd.tests
if not tests.empty:
    st.markdown("**Do classes differ?** Kruskal-Wallis across classes per zone (Holm-adjusted over zones):")
    st.dataframe(tests.assign(p=tests["p_value"].map(fmt_p), p_holm=tests["p_holm"].map(fmt_p))
                 [["zone", "n", "H", "epsilon2", "p", "p_holm"]].round(3), hide_index=True, width="stretch")

# -------------------------------------------------------------------- mean maps
st.subheader("Mean relevance map per class")
maps = analysis.class_maps(f.run, f.split, f.method, tuple(classes), by)
if not maps.means:
    st.info("No relevance maps stored for this selection.")
else:
    size = queries.run_img_size(f.run)
    view, where = images.reference_view(queries.reference_images(f.run, f.split, reference), size)
    vmax = max(float(np.nanmax(m)) for m in maps.means.values())
    cols = st.columns(min(4, len(maps.means)))
    for i, (name, mean) in enumerate(maps.means.items()):
        tile = images.render_on(view, mean, vmax=vmax)
        cols[i % len(cols)].image(tile, caption=f"{name} (n={maps.counts[name]:,})", width="stretch")
    note = (f"Each map is the mean of the class's normalised maps (positive part, sum 1), drawn on {where} in the "
            "model-input frame with one colour scale for all classes.")
    if maps.capped:
        note += f" Classes with more images use a deterministic sample of {analysis.DRIFT_PER_CLASS:,}."
    st.caption(note)
    long = pd.concat([plots.grid_frame(m).assign(class_name=c) for c, m in maps.means.items()], ignore_index=True)
    grid_charts = [plots.heatmap_grid_chart(m, title=c, size=160, domain=[0, vmax]) for c, m in maps.means.items()]
    chart(alt.hconcat(*grid_charts).resolve_scale(color="shared"), long, f"mean-maps-{f.run}-{f.method}")

    st.subheader("Drift matrix between classes")
    matrix = maps.matrix
    if matrix.empty:
        st.info("Only one class has maps: nothing to compare.")
    else:
        fig = plots.drift_matrix_chart(matrix, p="p_holm", mirror=True, x_order=classes, y_order=classes,
                                       x_title="Class", y_title="Class", value_title="JS distance")
        chart(fig, matrix, f"drift-matrix-{f.run}-{f.method}",
              caption=f"Jensen-Shannon distance (base 2, 0 = same mean map, 1 = disjoint) between the classes' mean "
                      f"maps; p from {analysis.PERMUTATIONS} label permutations, Holm-adjusted over pairs; * p < 0.05.")

st.subheader(f"Zone-score drift from {reference}")
drift = zd.drift
if drift.empty:
    st.info(f"No other class to compare with {reference}.")
else:
    fig = plots.drift_matrix_chart(drift, x="zone", y="group_a", p="p_holm", y_order=classes, x_title="Zone",
                                   y_title="Class", value_title="Wasserstein")
    chart(fig, drift, f"zone-drift-{zone_set}-{f.run}-{f.method}",
          caption=f"1-D Wasserstein distance between each class's zone scores and {reference}'s (in score units); "
                  f"p from {analysis.PERMUTATIONS} permutations, Holm-adjusted over the whole table; * p < 0.05.")
