"""Small building blocks every page uses: chart + downloads, clear stops, number formats."""
from __future__ import annotations

import re

import altair as alt
import pandas as pd
import streamlit as st

from retcore.results.format import fmt_ci, fmt_p

__all__ = ["chart", "download_chart", "fmt_ci", "fmt_p", "require", "slug"]

_MIME = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf", "csv": "text/csv"}


def slug(name: str) -> str:
    """A file-name-safe version of ``name``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "chart"


def _renderer(chart: alt.TopLevelMixin, fmt: str):
    def render() -> bytes:
        from retcore.plots import chart_bytes

        return chart_bytes(chart, fmt)

    return render


def download_chart(chart: alt.TopLevelMixin, df: pd.DataFrame, name: str) -> None:
    """Download buttons for ``chart`` as SVG, PNG (300 ppi) and PDF, and for its data ``df`` as CSV.

    Figures are rendered only when a button is clicked (deferred), so offering
    them costs nothing while the page draws.
    """
    base = slug(name)
    cols = st.columns(4, gap="small")
    for col, fmt, label in zip(cols, ("svg", "png", "pdf"), ("SVG", "PNG 300 ppi", "PDF")):
        col.download_button(label, _renderer(chart, fmt), file_name=f"{base}.{fmt}", mime=_MIME[fmt],
                            key=f"dl-{base}-{fmt}", on_click="ignore", icon=":material/download:")
    csv = df.to_csv(index=False).encode("utf-8")
    cols[3].download_button("CSV", csv, file_name=f"{base}.csv", mime=_MIME["csv"], key=f"dl-{base}-csv",
                            on_click="ignore", icon=":material/table:")


def chart(chart_obj: alt.TopLevelMixin, df: pd.DataFrame, name: str, *, caption: str | None = None) -> None:
    """Show ``chart_obj`` at its own size with its download buttons (and an optional caption).

    ``autosize: pad`` keeps the chart's designed plot size: Streamlit otherwise fits the
    whole figure (axis labels and legend included) into the spec's ``width``, which
    squeezes charts with long labels.
    """
    st.altair_chart(chart_obj.properties(autosize=alt.AutoSizeParams(type="pad")), width="content")
    if caption:
        st.caption(caption)
    download_chart(chart_obj, df, name)


def require(condition: object, message: str, *, level: str = "info") -> None:
    """Stop the page with a clear ``message`` when ``condition`` is falsy."""
    if not condition:
        getattr(st, level)(message)
        st.stop()
