"""Compare runs: two runs, or two explanation methods, on the same images."""
from __future__ import annotations

import streamlit as st

from dashboard import analysis, queries
from dashboard.filters import current
from dashboard.ui import chart, fmt_p, require
from retcore import plots
from retcore.results.sample import describe

st.title("Compare runs")
st.caption("Paired comparisons on the images both sides share: differences B − A with bootstrap 95% intervals and "
           "paired tests (McNemar for correctness, Wilcoxon signed-rank for confidence and zone scores), "
           "Holm-adjusted within each table.")
f = current()
require(f.run and f.split, "No run with predictions yet: run `retcore predict --run RUN --split test`.")

mode = st.radio("Compare", ["two runs", "two methods"], horizontal=True, key="cmp-mode",
                index=1 if st.query_params.get("compare") == "methods" else 0)
st.query_params["compare"] = "methods" if mode == "two methods" else "runs"
c1, c2 = st.columns(2)
run_a, method_a = f.run, f.method
if mode == "two runs":
    others = [r for r in f.runs if r != f.run]
    require(others, "Only one run has predictions: train another (`retcore finetune ...` then `retcore predict`) to "
                    "compare runs, or compare two explanation methods of this run.")
    c1.markdown(f"**A**: `{run_a}` (sidebar run)")
    wanted = st.query_params.get("run_b")
    run_b = c2.selectbox("B: run", others, index=others.index(wanted) if wanted in others else 0, key="cmp-run-b")
    st.query_params["run_b"] = run_b
    b_methods = queries.run_methods(run_b)
    shared = [m for m in f.methods if m in b_methods]
    method_b = method_a if method_a in shared else (shared[0] if shared else None)
    method_a = method_b
else:
    require(len(f.methods) >= 2, f"Run {f.run} has {len(f.methods)} explanation method(s); explain it with two or "
                                 f"more (`retcore explain --run {f.run} --methods lrp,gae`) to compare methods.")
    run_b = run_a
    a_index = f.methods.index(f.method) if f.method in f.methods else 0
    method_a = c1.selectbox("A: method", f.methods, index=a_index, key="cmp-method-a")
    rest = [m for m in f.methods if m != method_a]
    method_b = c2.selectbox("B: method", rest, key="cmp-method-b")

classes = tuple(f.classes)
if mode == "two runs":
    res = analysis.compare_runs(run_a, run_b, f.split, classes)
    require(res["n"] > 0, f"Runs {run_a} and {run_b} share no {f.split} images.")
    st.subheader("Metric deltas")
    deltas = res["deltas"]
    fig = plots.paired_difference_chart(deltas, item="item", p="p_holm", x_title="Difference (B − A)")
    shared = f"{res['n']:,} shared images" if not res.get("sampled_from") else \
        f"{res['n']:,} shared images, {describe(res['n'], res['sampled_from'], 'images of run A')}"
    chart(fig, deltas, f"metric-deltas-{run_a}-vs-{run_b}",
          caption=f"{shared}. Accuracy and per-class recall: McNemar; confidence: Wilcoxon.")
    st.dataframe(deltas.assign(p=deltas["p_value"].map(fmt_p), p_holm=deltas["p_holm"].map(fmt_p))
                 [["item", "a", "b", "difference", "low", "high", "test", "p", "p_holm"]].round(4),
                 hide_index=True, width="stretch")

if method_a is None:
    st.info("The two runs share no explanation method: no zone-score comparison.")
else:
    zones = queries.zone_list(run_a, method_a)
    sets = sorted(zones["zone_set"].unique(), key=lambda s: (s != "thirds", s)) if not zones.empty else []
    st.subheader(f"Zone-score shifts ({method_a}" + (f" vs {method_b})" if method_b != method_a else ")"))
    if not sets:
        st.info("No zone scores stored.")
    else:
        zone_set = st.selectbox("Zone set", sets, key="cmp-set")
        zr = analysis.compare_zones(run_a, method_a, run_b, method_b, f.split, zone_set, classes,
                                    tuple(queries.run_classes(run_b)))
        if zr["n"] == 0:
            st.info("No image has zone scores on both sides.")
        else:
            shifts = zr["shifts"]
            fig = plots.paired_difference_chart(shifts, item="item", p="p_holm", x_title="Zone score, B − A")
            used = f"{zr['n']:,} images" if not zr.get("sampled_from") else \
                f"{zr['n']:,} images ({describe(zr['n'], zr['sampled_from'], 'images of run A')})"
            chart(fig, shifts, f"zone-shifts-{zone_set}-{run_a}-{method_a}-vs-{run_b}-{method_b}",
                  caption=f"{used}; Wilcoxon signed-rank p, Holm-adjusted over zones.")
            st.subheader(f"Largest {zr['moved_zone']} score changes"
                         + (" (in the sample)" if zr.get("sampled_from") else ""))
            st.dataframe(zr["moved"].round(3), hide_index=True, width="stretch")

if mode == "two runs":
    st.subheader("Cases that changed")
    changed = res["changed"]
    if changed.empty:
        st.success("No image changed between right and wrong.")
    else:
        counts = changed["change"].value_counts()
        st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()) + " (first 200"
                   + (", among the sampled images" if res.get("sampled_from") else "") + "). Open one in Cases with "
                   "`?case=<image_id>`.")
        st.dataframe(changed.round(3), hide_index=True, width="stretch")
