"""With --auth oidc every page asks for the login first and reads nothing before it."""
from __future__ import annotations


def test_oidc_dashboard_shows_only_the_login(app, texts, tiny_pipeline, monkeypatch):
    monkeypatch.setenv("RETCORE_AUTH", "oidc")
    at = app(tiny_pipeline["db"], "overview")
    assert "log in to continue" in texts(at)
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.get("vega_lite_chart") and not at.dataframe and not at.sidebar.selectbox
    assert not at.get("image")


def test_loopback_dashboard_has_no_gate(app, texts, tiny_pipeline, monkeypatch):
    monkeypatch.setenv("RETCORE_AUTH", "none")
    at = app(tiny_pipeline["db"], "overview")
    assert "log in" not in texts(at).lower() and at.get("vega_lite_chart")
