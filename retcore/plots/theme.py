"""The ``retcore`` Altair theme: one look for the dashboard and for exported figures.

Okabe-Ito colours (safe for the common colour-vision deficiencies), viridis for
sequential scales, blue-orange for diverging ones, readable font sizes, a white
background and no border around the plotting area. Importing
:mod:`retcore.plots` registers and enables it; :func:`save_chart` always renders
with it.
"""
from __future__ import annotations

from typing import Any

import altair as alt

__all__ = [
    "CORRECT_COLORS",
    "DIVERGING_SCHEME",
    "FONT",
    "OKABE_ITO",
    "SEQUENTIAL_SCHEME",
    "THEME_NAME",
    "enable_theme",
    "retcore_theme",
    "theme_registry",
]

THEME_NAME = "retcore"

#: Okabe & Ito (2008), reordered so that the first colours are the most distinct
#: on white (yellow, the weakest on white, comes late).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Colours of correct / incorrect predictions (blue / vermillion).
CORRECT_COLORS: dict[str, str] = {"correct": "#0072B2", "incorrect": "#D55E00"}
SEQUENTIAL_SCHEME = "viridis"
DIVERGING_SCHEME = "blueorange"
FONT = "Arial, Helvetica, DejaVu Sans, sans-serif"

_INK = "#222222"
_GRID = "#E5E5E5"


def retcore_theme() -> dict[str, Any]:
    """Vega-Lite ``config`` of the publication theme."""
    label = {"labelFont": FONT, "labelFontSize": 11, "labelColor": _INK,
             "titleFont": FONT, "titleFontSize": 12, "titleFontWeight": "normal", "titleColor": _INK}
    return {
        "config": {
            "font": FONT,
            "background": "white",
            "padding": 8,
            "view": {"stroke": None, "continuousWidth": 320, "continuousHeight": 240},
            "axis": {**label, "domainColor": _INK, "tickColor": _INK, "gridColor": _GRID,
                     "labelLimit": 220, "titlePadding": 8},
            "axisBand": {"labelOverlap": False},  # every class / zone / method name stays labelled
            "legend": {**label, "symbolSize": 80, "labelLimit": 220},
            "header": {"labelFont": FONT, "labelFontSize": 12, "labelColor": _INK,
                       "titleFont": FONT, "titleFontSize": 12, "titleFontWeight": "normal"},
            "title": {"font": FONT, "fontSize": 14, "fontWeight": "bold", "color": _INK, "anchor": "start",
                      "subtitleFont": FONT, "subtitleFontSize": 11, "subtitleColor": "#555555"},
            "text": {"font": FONT, "fontSize": 11, "color": _INK},
            "range": {"category": list(OKABE_ITO), "heatmap": {"scheme": SEQUENTIAL_SCHEME},
                      "ramp": {"scheme": SEQUENTIAL_SCHEME}, "diverging": {"scheme": DIVERGING_SCHEME}},
            "point": {"size": 40, "filled": True},
            "line": {"strokeWidth": 2},
            "bar": {"color": OKABE_ITO[0]},
            "rect": {"stroke": None},
            "errorbar": {"thickness": 1.5, "ticks": True},
        }
    }


def theme_registry() -> Any:
    """Altair's theme registry: ``alt.theme`` (Altair >= 5.5) or ``alt.themes`` (older)."""
    modern = getattr(alt, "theme", None)
    return modern if hasattr(modern, "register") else alt.themes


def _register() -> None:
    registry = theme_registry()
    if registry is getattr(alt, "theme", None):
        registry.register(THEME_NAME, enable=False)(retcore_theme)
    else:
        registry.register(THEME_NAME, retcore_theme)


def enable_theme() -> None:
    """Make the ``retcore`` theme the active Altair theme (idempotent)."""
    registry = theme_registry()
    if registry.active != THEME_NAME:
        registry.enable(THEME_NAME)


_register()
