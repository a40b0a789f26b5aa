"""Render charts to SVG, PNG (300 ppi) and PDF with vl-convert, in the retcore theme."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import altair as alt

from retcore.plots.theme import THEME_NAME, theme_registry

__all__ = ["FORMATS", "PNG_PPI", "chart_bytes", "chart_spec", "save_chart"]

FORMATS = ("svg", "png", "pdf")
PNG_PPI = 300


def chart_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite spec rendered with the ``retcore`` theme, whatever theme is active."""
    with theme_registry().enable(THEME_NAME):
        return chart.to_dict()


def _vl_version() -> str:
    """vl-convert's name of Altair's Vega-Lite version, e.g. ``v6_4``."""
    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"v{major}_{minor}"


def chart_bytes(chart: alt.TopLevelMixin, fmt: str, *, ppi: int = PNG_PPI) -> bytes:
    """The chart as ``svg``, ``png`` or ``pdf`` bytes (for download buttons).

    Parameters
    ----------
    fmt:
        ``svg`` (UTF-8 text), ``png`` (``ppi`` pixels per inch, i.e. ``ppi / 72``
        times the chart's pixel size, with the resolution in the file) or ``pdf`` (vector).
    """
    import vl_convert as vlc

    fmt = fmt.lower().lstrip(".")
    spec = chart_spec(chart)
    version = _vl_version()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, vl_version=version).encode("utf-8")
    if fmt == "png":
        return vlc.vegalite_to_png(spec, vl_version=version, ppi=ppi)
    if fmt == "pdf":
        return vlc.vegalite_to_pdf(spec, vl_version=version)
    raise ValueError(f"unknown figure format {fmt!r}; use one of {', '.join(FORMATS)}")


def save_chart(chart: alt.TopLevelMixin, path: str | os.PathLike[str], *, ppi: int = PNG_PPI) -> Path:
    """Write ``chart`` to ``path``; the suffix (.svg, .png, .pdf) picks the format.

    Returns the path written. Parent folders are created.
    """
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"cannot save a chart as {out.name!r}; use a .svg, .png or .pdf file name")
    data = chart_bytes(chart, fmt, ppi=ppi)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
