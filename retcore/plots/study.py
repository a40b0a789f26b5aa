"""Charts of the shortcut study (``retcore study shortcut``)."""
from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from retcore.plots._util import ordered, require_columns, title_kw
from retcore.plots.theme import OKABE_ITO

__all__ = ["study_arms_chart"]


def study_arms_chart(summary: pd.DataFrame, seeds: pd.DataFrame | None = None, *,
                     metrics: Sequence[str] | None = None, arms: Sequence[str] = ("baseline", "guided"),
                     columns: int = 3, title: str | None = None) -> alt.FacetChart:
    """Per-metric panels: each arm's mean across seeds with its 95% interval (and each seed as a dot).

    Parameters
    ----------
    summary:
        ``retcore.study.seed_summary`` output: ``metric, arm, mean, low, high, seeds``.
    seeds:
        Optional per-seed rows ``metric, arm, seed, value`` drawn as small hollow points.
    metrics:
        Panels to draw, in this order (default: every metric of ``summary``); only these.
    arms:
        The arms in their order (colours, named in the legend below the panels).

    Returns
    -------
    FacetChart
        One panel per metric (independent y scales): ``errorbar`` + ``point`` (+ seed ``point``).
    """
    require_columns(summary, ["metric", "arm", "mean", "low", "high"], "summary")
    order = ordered(summary["metric"]) if metrics is None else [m for m in metrics if m in set(summary["metric"])]
    data = summary[summary["metric"].isin(order)].assign(kind="mean")
    if seeds is not None and not seeds.empty:
        require_columns(seeds, ["metric", "arm", "seed", "value"], "seeds")
        extra = seeds[seeds["metric"].isin(order)].rename(columns={"value": "seed_value"}).assign(kind="seed")
        data = pd.concat([data, extra], ignore_index=True)
    palette = [OKABE_ITO[i % len(OKABE_ITO)] for i in (0, 3, 1, 2, 4, 5, 6, 7)]
    colour = alt.Color("arm:N", title="Arm", scale=alt.Scale(domain=list(arms), range=palette[:len(arms)]),
                       legend=alt.Legend(orient="bottom", columns=1, labelLimit=400))
    x = alt.X("arm:N", sort=list(arms), title=None, axis=alt.Axis(labels=False, ticks=False))  # the legend names them
    base = alt.Chart().encode(x=x, color=colour)
    bars = base.transform_filter(alt.datum.kind == "mean").mark_errorbar(ticks=True).encode(
        y=alt.Y("low:Q", title=None, scale=alt.Scale(zero=False)), y2="high:Q")
    means = base.transform_filter(alt.datum.kind == "mean").mark_point(filled=True, size=80).encode(
        y="mean:Q", tooltip=["metric:N", "arm:N", alt.Tooltip("mean:Q", format=".3f"),
                             alt.Tooltip("low:Q", format=".3f"), alt.Tooltip("high:Q", format=".3f")])
    layers = [bars, means]
    if seeds is not None and not seeds.empty:
        layers.append(base.transform_filter(alt.datum.kind == "seed").mark_point(size=30, opacity=0.7).encode(
            y="seed_value:Q", tooltip=["metric:N", "arm:N", "seed:O", alt.Tooltip("seed_value:Q", format=".3f")]))
    return alt.layer(*layers, data=data).properties(width=140, height=140).facet(
        facet=alt.Facet("metric:N", sort=order, title=None), columns=columns, **title_kw(title)
    ).resolve_scale(y="independent")
