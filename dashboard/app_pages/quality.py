"""Image quality: are accuracy and focus worse on blurred, glared, dark or off-centre photos?"""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import analysis, queries
from dashboard.filters import current
from dashboard.ui import chart, fmt_p, require
from retcore import plots
from retcore.plots.theme import OKABE_ITO
from retcore.results.sample import describe

st.title("Image quality")
st.caption("Images grouped into strata by one quality metric — quantile bins, or the good / usable / poor levels of "
           "`retcore.quality` — with accuracy, zone scores and zone-score drift per stratum.")
f = current()
require(f.run, "No run with predictions yet: run `retcore predict --run RUN --split test`.")
require("image_quality" in queries.tables(),
        "This database has no image-quality table yet: run `retcore explain` (it measures quality once per image).")

METRICS = {"blur": "blur (variance of the Laplacian; low = blurred)", "glare": "glare (near-white share)",
           "illumination_mean": "illumination (mean luminance)", "illumination_contrast": "contrast (luminance sd)",
           "off_centre": "off-centre (FOV offset)", "grade": "overall quality grade"}
c1, c2, c3, c4 = st.columns([3, 2, 1, 2])
metric = c1.selectbox("Stratify by", list(METRICS), format_func=METRICS.get, key="q-metric")
mode = c2.radio("Strata", ["quantile bins", "quality labels"], horizontal=True, key="q-mode",
                disabled=metric == "grade")
k = c3.number_input("Bins", 2, 10, 4, key="q-bins", disabled=mode != "quantile bins" or metric == "grade")
zone = c4.selectbox("Zone (thirds)", ["center", "left", "right"], key="q-zone", disabled=not f.method)

mode_key = "quantile" if mode == "quantile bins" else "label"
probe = analysis.quality_order(f.run, f.split, f.method, zone, f.classes, f.cls, metric, mode_key, int(k))
require(probe["n"] > 0, f"No quality measurements for the {f.split} images of run {f.run}: run "
                        f"`retcore explain --run {f.run} --split {f.split}`.")
order = probe["order"]
require(len(order) > 0, f"No image has a {metric} value.")
ref_default = analysis.reference_stratum(metric, order)
reference = st.selectbox("Reference stratum (for drift)", order, index=order.index(ref_default), key="q-ref",
                         help="Defaults to the best-quality stratum.")
res = analysis.quality(f.run, f.split, f.method, zone, f.classes, f.cls, metric, mode_key, int(k), reference)
scope = f"class {f.cls}" if f.cls else "all classes"
if res.get("sampled_from"):
    st.caption(f"The split has {res['sampled_from']:,} images: strata, accuracy, scores and drift use "
               f"{describe(res['n'], res['sampled_from'], 'images')} (labelled, with quality data).")

st.subheader("Accuracy per stratum")
acc = res["accuracy"]
fig = plots.stratum_accuracy_chart(acc, value="accuracy", low="low", high="high", stratum_order=order)
chart(fig, acc, f"accuracy-by-{metric}-{f.run}",
      caption=f"{scope}; accuracy with Wilson 95% intervals. Chi-square test of independence: "
              f"χ² = {res['chi2'].statistic:.2f}, p = {fmt_p(res['chi2'].p_value)}, Cramér's V = "
              f"{res['chi2'].effect:.2f}." if pd.notna(res["chi2"].statistic) else
              f"{scope}; accuracy with Wilson 95% intervals (chi-square not defined: one stratum or one outcome).")

st.subheader(f"{zone} score per stratum")
scores = res["scores"]
if not f.method:
    st.info(f"Run {f.run} has no explanations: run `retcore explain --run {f.run}` for zone scores.")
elif scores.empty:
    st.info("No zone scores for these images.")
else:
    base = alt.Chart(scores).encode(y=alt.Y("stratum:N", sort=order, title=None),
                                    tooltip=["stratum", "n", alt.Tooltip("mean:Q", format=".3f"),
                                             alt.Tooltip("low:Q", format=".3f"), alt.Tooltip("high:Q", format=".3f")])
    one = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(color="#888888", strokeDash=[4, 4]).encode(x="x:Q")
    fig = alt.layer(one, base.mark_errorbar(ticks=True, color=OKABE_ITO[0]).encode(
        x=alt.X("low:Q", title=f"Mean {zone} score ({f.method})", scale=alt.Scale(zero=False)), x2="high:Q"),
        base.mark_point(filled=True, size=60, color=OKABE_ITO[0]).encode(x="mean:Q")).properties(
        width=300, height=max(60, 26 * len(order)))
    kw = res.get("kw")
    chart(fig, scores, f"{zone}-score-by-{metric}-{f.run}-{f.method}",
          caption="Mean with percentile-bootstrap 95% intervals; dashed line: no preference. "
                  + (f"Kruskal-Wallis across strata: H = {kw.statistic:.2f}, p = {fmt_p(kw.p_value)}, "
                     f"ε² = {kw.effect:.3f}." if kw is not None and pd.notna(kw.statistic) else ""))

st.subheader("Zone-score drift per stratum")
drift = res["drift"]
if drift.empty:
    st.info("Needs zone scores in at least two strata.")
else:
    fig = plots.drift_matrix_chart(drift, x="zone", y="stratum", p="p_holm", x_order=["left", "center", "right"],
                                   y_order=order, x_title="Zone", y_title="Stratum", value_title="Wasserstein")
    chart(fig, drift, f"drift-by-{metric}-{f.run}-{f.method}",
          caption=f"Wasserstein distance of each stratum's thirds-zone scores from the reference stratum "
                  f"({reference}); p from {analysis.PERMUTATIONS} permutations (up to "
                  f"{analysis.DRIFT_PER_CLASS:,} images per stratum), Holm-adjusted; * p < 0.05.")
