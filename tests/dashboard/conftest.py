"""Helpers for the dashboard tests: run the app with AppTest on a given database."""
from __future__ import annotations

from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["overview", "confidence", "drift", "quality", "cases", "compare", "methods", "study", "jobs"]


@pytest.fixture
def app(monkeypatch):
    """Factory: ``app(db, page='overview', params=None)`` -> an AppTest that has run that page."""
    from streamlit.testing.v1 import AppTest


    def run(db, page: str = "overview", params: dict | None = None, check: bool = True):
        monkeypatch.setenv("RETCORE_DB", str(db))
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in (params or {}).items():
            at.query_params[key] = value
        at.run()
        if page != "overview":
            at.switch_page(f"app_pages/{page}.py").run()
        if check:
            assert not at.exception, [e.value for e in at.exception]
        return at

    return run


def _texts(at) -> str:
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def _specs(at) -> list[str]:
    return [c.proto.spec for c in at.get("vega_lite_chart")]


@pytest.fixture
def texts():
    """``texts(at)``: every title, header, markdown, caption and alert text of the page, joined."""
    return _texts


@pytest.fixture
def specs():
    """``specs(at)``: the Vega-Lite specs (JSON text) of the page's charts."""
    return _specs
