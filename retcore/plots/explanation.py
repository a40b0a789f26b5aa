"""Figures of where the model looks: zone score against confidence, zone-score
distributions, and a relevance grid as a heatmap."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from retcore.plots._util import ordered, require_columns, title_kw
from retcore.plots.theme import CORRECT_COLORS, SEQUENTIAL_SCHEME

__all__ = ["fit_band", "grid_frame", "heatmap_grid_chart", "zone_confidence_chart", "zone_distribution_chart"]

_OUTCOMES = {"correct": (CORRECT_COLORS["correct"], "circle"),
             "incorrect": (CORRECT_COLORS["incorrect"], "triangle-up"),
             "unknown": ("#999999", "square")}


def grid_frame(grid: np.ndarray | Sequence[Sequence[float]]) -> pd.DataFrame:
    """A 2-D grid (row 0 at the top) as a long frame ``row``, ``col``, ``value``."""
    array = np.asarray(grid, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"grid must be 2-D, got shape {array.shape}")
    rows, cols = np.indices(array.shape)
    return pd.DataFrame({"row": rows.ravel(), "col": cols.ravel(), "value": array.ravel()})


def fit_band(x: Sequence[float], y: Sequence[float], *, level: float = 0.95, points: int = 40) -> pd.DataFrame:
    r"""Least-squares line of ``y`` on ``x`` with a pointwise confidence band of the mean.

    With residual standard deviation :math:`s` and :math:`S_{xx}=\sum (x_i-\bar x)^2`,
    the band is :math:`\hat y(x) \pm t_{n-2,(1+\text{level})/2}\, s\,\sqrt{1/n + (x-\bar x)^2/S_{xx}}`.

    Returns
    -------
    DataFrame
        ``x``, ``fit``, ``lo``, ``hi`` on ``points`` evenly spaced x values over
        the data's range; empty when fewer than 3 finite pairs or constant ``x``.
    """
    from scipy import stats

    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = len(xs)
    empty = pd.DataFrame(columns=["x", "fit", "lo", "hi"], dtype=float)
    if n < 3:
        return empty
    mean_x = xs.mean()
    sxx = float(((xs - mean_x) ** 2).sum())
    if sxx <= 0:
        return empty
    slope = float(((xs - mean_x) * (ys - ys.mean())).sum() / sxx)
    intercept = float(ys.mean() - slope * mean_x)
    resid = ys - (intercept + slope * xs)
    s = float(np.sqrt((resid ** 2).sum() / (n - 2)))
    t = float(stats.t.ppf((1 + level) / 2, n - 2))
    grid = np.linspace(xs.min(), xs.max(), points)
    fit = intercept + slope * grid
    half = t * s * np.sqrt(1.0 / n + (grid - mean_x) ** 2 / sxx)
    return pd.DataFrame({"x": grid, "fit": fit, "lo": fit - half, "hi": fit + half})


def _outcome(values: pd.Series) -> pd.Series:
    return values.map(lambda v: "unknown" if v is None or pd.isna(v) else ("correct" if bool(v) else "incorrect"))


def zone_confidence_chart(frame: pd.DataFrame, *, x: str = "score", y: str = "confidence",
                          facet: str = "class_name", correct: str = "correct", level: float = 0.95,
                          facet_order: Sequence[str] | None = None, notes: Mapping[str, str] | None = None,
                          x_title: str = "Zone score", y_title: str = "Confidence",
                          columns: int = 4, title: str | None = None) -> alt.FacetChart:
    """Zone score against confidence per image, coloured by correct / incorrect,
    one panel per class, with a least-squares line and its confidence band.

    Parameters
    ----------
    frame:
        One row per image: columns ``x``, ``y``, ``facet`` and ``correct`` (bool or missing).
    level:
        Coverage of the band of the fitted mean (see :func:`fit_band`).
    notes:
        Optional text per facet value (e.g. ``"ρ=0.41, p=0.003"``), written in the panel's corner.

    Returns
    -------
    FacetChart
        Facets of a layer: ``area`` (band), ``line`` (fit), ``point`` (images), ``text`` (notes).
    """
    require_columns(frame, [x, y, facet, correct], "frame")
    order = ordered(frame[facet], facet_order)
    pts = pd.DataFrame({"panel": frame[facet].astype(str), "x": frame[x].astype(float),
                        "y": frame[y].astype(float), "outcome": _outcome(frame[correct]), "layer": "point"})
    if "image_id" in frame.columns:
        pts["image_id"] = frame["image_id"].astype(str)
    parts = [pts]
    for name, group in pts.groupby("panel", sort=False):
        band = fit_band(group["x"], group["y"], level=level)
        if not band.empty:
            parts.append(band.assign(panel=name, layer="fit"))
    for name, text in (notes or {}).items():
        parts.append(pd.DataFrame({"panel": [str(name)], "note": [text], "layer": ["note"]}))
    data = pd.concat(parts, ignore_index=True)
    present = [o for o in _OUTCOMES if o in set(pts["outcome"])]
    xs = alt.X("x:Q", title=x_title, scale=alt.Scale(zero=False), axis=alt.Axis(tickCount=5))
    band = alt.Chart().transform_filter("datum.layer == 'fit'").mark_area(opacity=0.2, color="#555555").encode(
        x=xs, y=alt.Y("lo:Q", title=y_title), y2="hi:Q")
    line = alt.Chart().transform_filter("datum.layer == 'fit'").mark_line(color="#222222", strokeWidth=1.5).encode(
        x=xs, y=alt.Y("fit:Q", title=y_title))
    tooltip = [alt.Tooltip("x:Q", title=x, format=".3f"), alt.Tooltip("y:Q", title=y, format=".3f"), "outcome:N"]
    if "image_id" in pts.columns:
        tooltip.insert(0, "image_id:N")
    dots = alt.Chart().transform_filter("datum.layer == 'point'").mark_point(filled=True, opacity=0.75).encode(
        x=xs, y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=False)),
        color=alt.Color("outcome:N", title="Prediction",
                        scale=alt.Scale(domain=present, range=[_OUTCOMES[o][0] for o in present])),
        shape=alt.Shape("outcome:N", title="Prediction",
                        scale=alt.Scale(domain=present, range=[_OUTCOMES[o][1] for o in present])),
        tooltip=tooltip)
    layers: list[alt.Chart] = [band, line, dots]
    if notes:
        layers.append(alt.Chart().transform_filter("datum.layer == 'note'").mark_text(
            align="left", baseline="top", fontSize=10).encode(x=alt.value(4), y=alt.value(4), text="note:N"))
    return alt.layer(*layers, data=data).properties(width=200, height=180).facet(
        facet=alt.Facet("panel:N", sort=order, title=None), columns=columns, spacing=20,
    ).properties(**title_kw(title))


def zone_distribution_chart(frame: pd.DataFrame, *, value: str = "score", zone: str = "zone",
                            group: str = "class_name", kind: str = "box", reference: float | None = 1.0,
                            zone_order: Sequence[str] | None = None, group_order: Sequence[str] | None = None,
                            y_title: str = "Zone score", title: str | None = None) -> alt.FacetChart:
    """Distribution of a zone score per class, one panel per zone.

    Parameters
    ----------
    frame:
        Long format, one row per image and zone: ``value``, ``zone``, ``group``.
    kind:
        ``"box"`` (Tukey boxplot) or ``"density"`` (kernel density per class).
    reference:
        Score drawn as a dashed rule (1.0 = no preference for the zone); None for none.

    Returns
    -------
    FacetChart
        Column facets by zone of ``boxplot`` (or ``area`` densities) plus the reference ``rule``.
    """
    require_columns(frame, [value, zone, group], "frame")
    if kind not in {"box", "density"}:
        raise ValueError(f"kind must be 'box' or 'density', not {kind!r}")
    groups = ordered(frame[group], group_order)
    zones = ordered(frame[zone], zone_order)
    data = pd.DataFrame({"zone": frame[zone].astype(str), "group": frame[group].astype(str),
                         "value": frame[value].astype(float)}).dropna()
    color = alt.Color("group:N", sort=groups, title=group.replace("_", " ").capitalize())
    if kind == "box":
        main = alt.Chart().mark_boxplot(size=18, extent=1.5, median={"color": "white"}).encode(
            x=alt.X("group:N", sort=groups, title=None, axis=alt.Axis(labelAngle=-30, labelOverlap=False)),
            y=alt.Y("value:Q", title=y_title), color=color)
        rule_enc = {"y": alt.datum(reference)}
        width = max(120, 28 * len(groups))
    else:
        main = alt.Chart().transform_density(
            "value", groupby=["zone", "group"], as_=["value", "density"]).mark_area(
            opacity=0.35, line=True).encode(
            x=alt.X("value:Q", title=y_title), y=alt.Y("density:Q", title="Density", stack=None), color=color)
        rule_enc = {"x": alt.datum(reference)}
        width = 180
    layers: list[alt.Chart] = [main]
    if reference is not None:
        layers.append(alt.Chart().mark_rule(color="#888888", strokeDash=[4, 4]).encode(**rule_enc))
    return alt.layer(*layers, data=data).properties(width=width, height=200).facet(
        column=alt.Column("zone:N", sort=zones, title=None)).properties(**title_kw(title))


def heatmap_grid_chart(grid: np.ndarray | pd.DataFrame, *, title: str | None = None, size: int = 240,
                       scheme: str = SEQUENTIAL_SCHEME, domain: Sequence[float] | None = None,
                       value_title: str = "Relevance") -> alt.Chart:
    """A 2-D grid (e.g. the mean token relevance of a class) as a rect heatmap,
    row 0 at the top, cells square.

    Parameters
    ----------
    grid:
        2-D array, or a long frame ``row``, ``col``, ``value`` (see :func:`grid_frame`).
    size:
        Width of the chart in pixels (the height follows the grid's aspect).
    domain:
        Colour-scale domain (default: the data's range).

    Returns
    -------
    Chart
        ``rect`` with ``x = col``, ``y = row``, ``color = value``; axes hidden.
    """
    frame = grid if isinstance(grid, pd.DataFrame) else grid_frame(grid)
    require_columns(frame, ["row", "col", "value"], "grid")
    n_rows = int(frame["row"].max()) + 1 if len(frame) else 1
    n_cols = int(frame["col"].max()) + 1 if len(frame) else 1
    hidden = alt.Axis(labels=False, ticks=False, domain=False, title=None, grid=False)
    scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain is not None else alt.Scale(scheme=scheme)
    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("col:O", axis=hidden, sort="ascending"),
        y=alt.Y("row:O", axis=hidden, sort="ascending"),
        color=alt.Color("value:Q", scale=scale, title=value_title),
        tooltip=["row:O", "col:O", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=size, height=round(size * n_rows / n_cols), **title_kw(title))
