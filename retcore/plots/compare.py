"""Figures that compare groups: a drift matrix, accuracy per stratum, and the
paired differences between two runs.

Defaults follow the frames of :mod:`retcore.stats`: ``drift_matrix`` (``group_a``,
``group_b``, ``distance``, ``p_value``), ``accuracy_by_stratum(...).table``
(``stratum``, ``accuracy``, ``low``, ``high``, ``n``) and paired differences A - B
with ``low`` / ``high`` intervals.
"""
from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from retcore.plots._util import ordered, p_text, require_columns, title_kw
from retcore.plots.theme import DIVERGING_SCHEME, OKABE_ITO, SEQUENTIAL_SCHEME

__all__ = ["drift_matrix_chart", "dumbbell_chart", "paired_difference_chart", "stratum_accuracy_chart"]


def drift_matrix_chart(frame: pd.DataFrame, *, x: str = "group_a", y: str = "group_b", value: str = "distance",
                       p: str = "p_value", alpha: float = 0.05, mirror: bool = False,
                       x_order: Sequence[str] | None = None, y_order: Sequence[str] | None = None,
                       x_title: str | None = None, y_title: str | None = None, value_title: str = "Distance",
                       title: str | None = None, cell: int = 64) -> alt.LayerChart:
    """Heatmap of a drift statistic with its p-value written in each cell.

    Cells with ``p < alpha`` get a bold label ending in ``*``. Values with both
    signs use a diverging scale centred on 0, otherwise viridis from 0.

    Parameters
    ----------
    frame:
        One row per cell: ``x``, ``y``, ``value`` and ``p`` (p may be missing), e.g.
        ``retcore.stats.drift_matrix`` (pass ``p="p_holm"`` for Holm-adjusted values).
    mirror:
        Also draw each pair with ``x`` and ``y`` swapped (a symmetric matrix from the
        pairs of ``drift_matrix(..., reference=None)``).

    Returns
    -------
    LayerChart
        ``rect`` (colour = value) + ``text`` (p-value; one layer plain, one bold for p < alpha).
    """
    require_columns(frame, [x, y, value, p], "frame")
    data = pd.DataFrame({"x": frame[x].astype(str), "y": frame[y].astype(str),
                         "value": frame[value].astype(float), "p": frame[p].astype(float)})
    if mirror:
        data = pd.concat([data, data.rename(columns={"x": "y", "y": "x"})], ignore_index=True)
    xs, ys = ordered(data["x"], x_order), ordered(data["y"], y_order)
    significant = data["p"] < alpha
    data["label"] = [p_text(v) + ("*" if s else "") for v, s in zip(data["p"], significant)]
    data["significant"] = significant
    finite = data["value"].replace([np.inf, -np.inf], np.nan).dropna()
    two_sided = len(finite) and finite.min() < 0 < finite.max()
    if two_sided:
        bound = float(finite.abs().max())
        scale = alt.Scale(scheme=DIVERGING_SCHEME, domain=[-bound, bound], domainMid=0)
        data["dark"] = data["value"].abs() > 0.7 * bound
    else:  # distances, effects >= 0: the scale starts at 0 so that colour reads as size
        hi = float(finite.max()) if len(finite) and finite.max() > 0 else 1.0
        scale = alt.Scale(scheme=SEQUENTIAL_SCHEME, domainMin=0)
        data["dark"] = data["value"] < 0.45 * hi  # viridis is dark at its low end
    base = alt.Chart(data).encode(
        x=alt.X("x:N", sort=xs, title=x_title or x.replace("_", " ").capitalize(), axis=alt.Axis(labelAngle=-30, labelOverlap=False)),
        y=alt.Y("y:N", sort=ys, title=y_title or y.replace("_", " ").capitalize()),
        tooltip=[alt.Tooltip("x:N", title=x), alt.Tooltip("y:N", title=y),
                 alt.Tooltip("value:Q", title=value, format=".3f"), alt.Tooltip("p:Q", title=p, format=".4f")],
    )
    heat = base.mark_rect().encode(color=alt.Color("value:Q", scale=scale, title=value_title))
    ink = alt.condition("datum.dark", alt.value("white"), alt.value("black"))
    plain = base.transform_filter("!datum.significant").mark_text(fontSize=10).encode(text="label:N", color=ink)
    bold = base.transform_filter("datum.significant").mark_text(fontSize=10, fontWeight="bold").encode(
        text="label:N", color=ink)
    return (heat + plain + bold).properties(width=cell * len(xs), height=cell * len(ys) * 0.6,
                                    **title_kw(title))


def stratum_accuracy_chart(frame: pd.DataFrame, *, stratum: str = "stratum", value: str = "accuracy",
                           low: str = "low", high: str = "high", color: str | None = None,
                           facet: str | None = None, stratum_order: Sequence[str] | None = None,
                           x_title: str = "Accuracy", title: str | None = None) -> alt.LayerChart | alt.FacetChart:
    """Accuracy (or any proportion) per stratum as points with interval bars.

    Parameters
    ----------
    frame:
        One row per stratum: ``stratum``, ``value``, ``low``, ``high`` and,
        optionally, ``n`` plus the ``color`` / ``facet`` columns (e.g. run, quality metric);
        e.g. ``retcore.stats.accuracy_by_stratum(...).table`` (Wilson intervals).
    color:
        Column that splits each stratum into offset, coloured points.
    facet:
        Column that splits the strata into rows of panels (independent y).

    Returns
    -------
    LayerChart or FacetChart
        ``errorbar`` (x = low, x2 = high) + ``point`` (x = value), y = stratum.
    """
    require_columns(frame, [stratum, value, low, high] + [c for c in (color, facet) if c], "frame")
    data = frame.copy()
    order = ordered(data[stratum], stratum_order)
    tooltip = [alt.Tooltip(f"{stratum}:N"), alt.Tooltip(f"{value}:Q", format=".3f"),
               alt.Tooltip(f"{low}:Q", format=".3f"), alt.Tooltip(f"{high}:Q", format=".3f")]
    if "n" in data.columns:
        tooltip.append("n:Q")
    enc: dict = {"y": alt.Y(f"{stratum}:N", sort=order, title=None), "tooltip": tooltip}
    if color:
        enc["yOffset"] = alt.YOffset(f"{color}:N")
        enc["color"] = alt.Color(f"{color}:N", title=color.replace("_", " ").capitalize())
    base = alt.Chart().encode(**enc)
    unit = alt.Scale(domain=[0, 1])
    axis = alt.Axis(tickCount=5, format=".1f")
    bars = base.mark_errorbar(ticks=True, **({} if color else {"color": OKABE_ITO[0]})).encode(
        x=alt.X(f"{low}:Q", title=x_title, scale=unit, axis=axis), x2=f"{high}:Q")
    dots = base.mark_point(filled=True, size=60, **({} if color else {"color": OKABE_ITO[0]})).encode(
        x=alt.X(f"{value}:Q", title=x_title, scale=unit, axis=axis))
    n_rows = len(order) * (data[color].nunique() if color else 1)
    height = max(60, (22 if color else 26) * (n_rows if not facet else max(
        data.groupby(facet)[stratum].nunique().max(), 1) * (data[color].nunique() if color else 1)))
    layer = alt.layer(bars, dots, data=data).properties(width=300, height=height)
    if facet:
        return layer.facet(row=alt.Row(f"{facet}:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
                           ).resolve_scale(y="independent").properties(**title_kw(title))
    return layer.properties(**title_kw(title))


def paired_difference_chart(frame: pd.DataFrame, *, item: str = "metric", delta: str = "difference",
                            low: str = "low", high: str = "high", p: str | None = "p_value",
                            item_order: Sequence[str] | None = None, x_title: str = "Difference (A − B)",
                            title: str | None = None) -> alt.LayerChart:
    """Forest plot of paired differences between two runs with intervals and a zero line.

    Points whose interval excludes 0 are drawn in vermillion, the others in blue;
    when ``p`` is a column its value is written at the right.

    Parameters
    ----------
    frame:
        One row per compared item (metric, class, zone...): ``item``, ``delta``, ``low``, ``high``[, ``p``].

    Returns
    -------
    LayerChart
        Dashed zero ``rule`` + ``errorbar`` + ``point`` (+ ``text`` with p-values).
    """
    require_columns(frame, [item, delta, low, high], "frame")
    data = frame.copy()
    data["_item"] = data[item].astype(str)
    data["interval"] = np.where((data[low] > 0) | (data[high] < 0), "excludes 0", "includes 0")
    order = ordered(data["_item"], item_order)
    y = alt.Y("_item:N", sort=order, title=None)
    colour = alt.Color("interval:N", title="Interval", legend=alt.Legend(orient="bottom"),
                       scale=alt.Scale(domain=["excludes 0", "includes 0"], range=[OKABE_ITO[3], OKABE_ITO[0]]))
    tooltip = [alt.Tooltip("_item:N", title=item), alt.Tooltip(f"{delta}:Q", format=".4f"),
               alt.Tooltip(f"{low}:Q", format=".4f"), alt.Tooltip(f"{high}:Q", format=".4f")]
    has_p = p is not None and p in data.columns
    if has_p:
        data["p_text"] = data[p].map(p_text)
        tooltip.append(alt.Tooltip(f"{p}:Q", format=".4f"))
    base = alt.Chart().encode(y=y, tooltip=tooltip)
    zero = alt.Chart().mark_rule(color="#888888", strokeDash=[4, 4]).encode(x=alt.datum(0))
    bars = base.mark_errorbar(ticks=True).encode(x=alt.X(f"{low}:Q", title=x_title), x2=f"{high}:Q", color=colour)
    dots = base.mark_point(filled=True, size=60).encode(x=alt.X(f"{delta}:Q", title=x_title), color=colour)
    layers: list[alt.Chart] = [zero, bars, dots]
    if has_p:
        layers.append(base.mark_text(align="left", dx=6, fontSize=10).encode(
            x=alt.value(300), text="p_text:N", color=alt.value("#444444")))
    return alt.layer(*layers, data=data).properties(width=300, height=max(60, 26 * len(order)),
                                                    **title_kw(title))


def dumbbell_chart(frame: pd.DataFrame, *, item: str = "metric", run: str = "run", value: str = "value",
                   item_order: Sequence[str] | None = None, run_order: Sequence[str] | None = None,
                   x_title: str = "Value", title: str | None = None) -> alt.LayerChart:
    """Each item's value in two (or more) runs on one line: a dumbbell chart.

    Parameters
    ----------
    frame:
        Long format: ``item``, ``run``, ``value``.

    Returns
    -------
    LayerChart
        Grey ``rule`` spanning the runs' values + ``point`` coloured by run.
    """
    require_columns(frame, [item, run, value], "frame")
    data = frame[[item, run, value]].copy()
    data[item] = data[item].astype(str)
    data[run] = data[run].astype(str)
    items, runs = ordered(data[item], item_order), ordered(data[run], run_order)
    span = data.groupby(item)[value].agg(lo="min", hi="max").reset_index()
    y = alt.Y(f"{item}:N", sort=items, title=None)
    rule = alt.Chart(span).mark_rule(color="#BBBBBB", strokeWidth=3).encode(
        y=y, x=alt.X("lo:Q", title=x_title, scale=alt.Scale(zero=False)), x2="hi:Q")
    dots = alt.Chart(data).mark_point(filled=True, size=80).encode(
        y=y, x=alt.X(f"{value}:Q", title=x_title, scale=alt.Scale(zero=False)),
        color=alt.Color(f"{run}:N", sort=runs, title="Run"),
        tooltip=[f"{item}:N", f"{run}:N", alt.Tooltip(f"{value}:Q", format=".4f")])
    return alt.layer(rule, dots).properties(width=300, height=max(60, 26 * len(items)),
                                            **title_kw(title))
