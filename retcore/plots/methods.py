"""Charts of the Methods page: sanity-check curves, faithfulness curves against random,
localisation against ground-truth masks and the cost per image, per explanation method."""
from __future__ import annotations

import altair as alt
import pandas as pd

from retcore.plots._util import require_columns, title_kw
from retcore.plots.theme import OKABE_ITO

__all__ = ["method_cost_chart", "faithfulness_curves_chart", "localisation_chart", "sanity_curves_chart"]

_MAP_COLORS = {"method": OKABE_ITO[0], "random": "#888888"}


def sanity_curves_chart(summary: pd.DataFrame, *, measure: str = "spearman", threshold: float | None = 0.5,
                        width: int = 260, height: int = 200, title: str | None = None) -> alt.FacetChart:
    """Similarity of each method's randomised maps to its trained maps, step by step, one panel per mode.

    Parameters
    ----------
    summary:
        ``retcore.results.sanity.sanity_summary`` output: ``method, mode, step, layer, n_images`` and
        ``<measure>``, ``<measure>_low``, ``<measure>_high``.
    measure:
        ``'spearman'`` or ``'ssim'``.
    threshold:
        Drawn as a dashed rule (the survival threshold); None leaves it out.

    Returns
    -------
    FacetChart
        Per mode (cascading / independent / data): x the randomised layer group in step order, y the
        mean similarity with its 95% band, one line per method.
    """
    require_columns(summary, ["method", "mode", "step", "layer", measure, f"{measure}_low", f"{measure}_high"],
                    "summary")
    data = summary.assign(threshold=threshold)
    x = alt.X("layer:N", sort=alt.SortField("step"), title="randomised up to / layer",
              axis=alt.Axis(labelAngle=-40, labelOverlap=False))
    colour = alt.Color("method:N", title="Method", legend=alt.Legend(orient="bottom"))
    band = alt.Chart().mark_area(opacity=0.18).encode(x=x, y=alt.Y(f"{measure}_low:Q"), y2=f"{measure}_high:Q",
                                                      color=colour)
    line = alt.Chart().mark_line(point=True).encode(
        x=x, y=alt.Y(f"{measure}:Q", title=f"{measure} to the trained map", scale=alt.Scale(domain=[-0.2, 1.0])),
        color=colour,
        tooltip=["method:N", "mode:N", "step:Q", "layer:N", "n_images:Q", alt.Tooltip(f"{measure}:Q", format=".3f"),
                 alt.Tooltip(f"{measure}_low:Q", format=".3f"), alt.Tooltip(f"{measure}_high:Q", format=".3f")])
    layers = [band, line]
    if threshold is not None:
        layers.append(alt.Chart().mark_rule(strokeDash=[4, 4], color="#666666").encode(y="threshold:Q"))
    return (alt.layer(*layers, data=data).properties(width=width, height=height)
            .facet(column=alt.Column("mode:N", title=None)).resolve_scale(x="independent")
            .properties(**title_kw(title)))


def faithfulness_curves_chart(curves: pd.DataFrame, *, width: int = 200, height: int = 150,
                              title: str | None = None) -> alt.FacetChart:
    """Mean probability of the explained class while the image is perturbed, the method's map against
    its random map, one panel per (method, test).

    Parameters
    ----------
    curves:
        ``retcore.results.faithfulness.faithfulness_mean_curves`` output of one baseline and unit:
        ``method, map, test, fraction, probability, low, high, n_images``.

    Returns
    -------
    FacetChart
        Rows methods, columns tests (deletion_morf, deletion_lerf, insertion); the 95% bands are
        bootstrap intervals over images.
    """
    require_columns(curves, ["method", "map", "test", "fraction", "probability", "low", "high"], "curves")
    colour = alt.Color("map:N", title="Map", scale=alt.Scale(domain=list(_MAP_COLORS),
                                                             range=list(_MAP_COLORS.values())),
                       legend=alt.Legend(orient="bottom"))
    x = alt.X("fraction:Q", title="fraction perturbed", scale=alt.Scale(domain=[0, 1]))
    band = alt.Chart().mark_area(opacity=0.2).encode(x=x, y="low:Q", y2="high:Q", color=colour)
    line = alt.Chart().mark_line(point=True).encode(
        x=x, y=alt.Y("probability:Q", title="probability of the class"), color=colour,
        strokeDash=alt.StrokeDash("map:N", legend=None),
        tooltip=["method:N", "map:N", "test:N", alt.Tooltip("fraction:Q", format=".2f"), "n_images:Q",
                 alt.Tooltip("probability:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f"),
                 alt.Tooltip("high:Q", format=".3f")])
    return (alt.layer(band, line, data=curves).properties(width=width, height=height)
            .facet(row=alt.Row("method:N", title=None), column=alt.Column("test:N", title=None))
            .properties(**title_kw(title)))


def localisation_chart(summary: pd.DataFrame, *, width: int = 220, title: str | None = None) -> alt.FacetChart:
    """Mean localisation score per method with its 95% interval, one panel per (mask, measure).

    Parameters
    ----------
    summary:
        ``retcore.results.methods.localisation_summary`` output: ``method, mask, measure, n_images,
        value, low, high``.
    """
    require_columns(summary, ["method", "mask", "measure", "value", "low", "high"], "summary")
    y = alt.Y("method:N", title=None)
    x_title = "score (1 = all relevance on the mask)"
    x = alt.X("value:Q", title=x_title, scale=alt.Scale(domain=[0, 1]))
    bars = alt.Chart().mark_errorbar(ticks=True).encode(y=y, x=alt.X("low:Q", title=x_title), x2="high:Q")
    points = alt.Chart().mark_point(filled=True, size=70, color=OKABE_ITO[0]).encode(
        y=y, x=x, tooltip=["method:N", "mask:N", "measure:N", "n_images:Q", alt.Tooltip("value:Q", format=".3f"),
                           alt.Tooltip("low:Q", format=".3f"), alt.Tooltip("high:Q", format=".3f")])
    return (alt.layer(bars, points, data=summary).properties(width=width)
            .facet(row=alt.Row("mask:N", title="mask"), column=alt.Column("measure:N", title=None))
            .properties(**title_kw(title)))


def method_cost_chart(costs: pd.DataFrame, *, width: int = 360, title: str | None = None) -> alt.Chart:
    """Seconds per image and method (``method, seconds_per_image``) as horizontal bars; with a
    ``measurement`` column (``method_costs``: faithfulness, sanity checks) one bar per measurement."""
    require_columns(costs, ["method", "seconds_per_image"], "costs")
    enc: dict = {}
    if "measurement" in costs:
        enc = {"color": alt.Color("measurement:N", title="measurement",
                                  scale=alt.Scale(range=list(OKABE_ITO[:2]))),
               "yOffset": alt.YOffset("measurement:N")}
    tooltip = ["method:N", *(["measurement:N"] if "measurement" in costs else []),
               alt.Tooltip("seconds_per_image:Q", format=".2f")]
    return alt.Chart(costs).mark_bar(**({} if enc else {"color": OKABE_ITO[0]})).encode(
        y=alt.Y("method:N", title=None, sort="-x"),
        x=alt.X("seconds_per_image:Q", title="seconds per image"),
        tooltip=tooltip, **enc,
    ).properties(width=width, **title_kw(title))
