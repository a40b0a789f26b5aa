"""Every page on the tiny explained pipeline (AppTest): no exception, and its key elements."""
from __future__ import annotations

import json

import pytest

PAGES = ["overview", "confidence", "drift", "quality", "cases", "compare", "methods", "study", "jobs"]


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_without_exception(app, tiny_explained, page):
    at = app(tiny_explained["db"], page)
    assert at.title, f"{page} has no title"


def test_confidence_page_scatter_facets_fit_and_correlations(app, tiny_explained, specs, texts):
    at = app(tiny_explained["db"], "confidence")
    spec = json.loads(specs(at)[0])
    assert spec["facet"]["field"] == "panel", "one panel per class"
    layers = json.dumps(spec["spec"])
    assert "mark" in layers and "area" in layers and "line" in layers and "point" in layers
    corr = at.dataframe[0].value
    assert {"scope", "group", "method", "coefficient [95% CI]", "p"} <= set(corr.columns)
    assert {"overall", "class", "outcome"} <= set(corr["scope"])
    assert at.query_params["zone"] in ("thirds/center", ["thirds/center"])
    at.selectbox(key="conf-set").set_value("anatomy").run()
    assert not at.exception
    assert "anatomy" in "".join(specs(at))


def test_drift_page_distributions_mean_maps_and_matrix(app, tiny_explained, specs, texts):
    at = app(tiny_explained["db"], "drift")
    charts = specs(at)
    assert any("boxplot" in s for s in charts), "zone distributions missing"
    assert any("JS distance" in s for s in charts), "drift matrix missing"
    assert any("Wasserstein" in s for s in charts), "zone-score drift missing"
    images = at.get("image")
    assert len(images) >= 2, "mean maps on a reference fundus missing"
    assert "Kruskal-Wallis" in texts(at)
    at.radio(key="drift-by").set_value("predicted class").run()
    assert not at.exception


def test_quality_page_strata_accuracy_scores_and_drift(app, tiny_explained, specs, texts):
    at = app(tiny_explained["db"], "quality")
    charts = specs(at)
    assert len(charts) == 3
    assert "Wilson" in texts(at)
    for metric in ("glare", "grade"):
        at.selectbox(key="q-metric").set_value(metric).run()
        assert not at.exception
    at.selectbox(key="q-metric").set_value("blur").run()
    at.radio(key="q-mode").set_value("quality labels").run()
    assert not at.exception
    assert any(level in texts(at) + "".join(specs(at)) for level in ("good", "usable", "poor"))


def test_cases_gallery_and_click_through(app, tiny_explained, texts):
    at = app(tiny_explained["db"], "cases")
    assert len(at.get("image")) >= 1
    assert any(b.label == "Open" for b in at.button)
    side_by_side = next(m for m in at.multiselect if m.label == "Methods side by side")
    side_by_side.set_value(["lrp", "gae"]).run()
    assert not at.exception
    at.slider(key="cases-alpha").set_value(0.9).run()
    at.selectbox(key="cases-cmap").set_value("viridis").run()
    assert not at.exception
    opener = next(b for b in at.button if b.label == "Open")
    opener.click().run()
    assert not at.exception
    assert at.query_params["case"]
    text = texts(at)
    assert "confidence" in text and "→" in text
    assert len(at.get("image")) >= 3, "photo plus one map per method expected"
    assert "Zone scores" in text
    next(b for b in at.button if "Back" in b.label).click().run()
    assert not at.exception and "case" not in at.query_params


def test_cases_maps_follow_the_sidebar_method(app, tiny_explained, texts):
    """A kept side-by-side selection drew one method's maps under the sidebar method's numbers."""
    at = app(tiny_explained["db"], "cases")
    methods = list(at.selectbox(key="f_method").options)
    assert len(methods) >= 2
    for method in methods[:2]:
        at.selectbox(key="f_method").set_value(method).run()
        assert not at.exception
        side_by_side = next(m for m in at.multiselect if m.label == "Methods side by side")
        assert side_by_side.value == [method]
    other = methods[0]
    next(m for m in at.multiselect if m.label == "Methods side by side").set_value([other]).run()
    assert f"({methods[1]})" in texts(at), "numbers of another method than the maps say whose they are"


def test_cases_class_without_errors_says_so(app, tiny_explained, texts):
    at = app(tiny_explained["db"], "cases")
    text = texts(at)
    # every kind either shows images or a sentence saying why there are none
    assert "true positives" in text.lower() or "predicted correctly" in text


def test_compare_page_methods_and_single_run(app, tiny_explained, specs, texts):
    at = app(tiny_explained["db"], "compare")
    assert "Only one run" in texts(at)
    at.radio(key="cmp-mode").set_value("two methods").run()
    assert not at.exception
    assert any("Zone score, B" in s for s in specs(at))
    assert at.query_params["compare"] in ("methods", ["methods"])


def test_jobs_page_lists_runs_config_and_rerun_command(app, tiny_explained):
    at = app(tiny_explained["db"], "jobs")
    table = at.dataframe[0].value
    assert {"finetune", "predict", "explain"} <= set(table["job"])
    commands = [c.value for c in at.code]
    assert commands and commands[0].startswith("retcore ")
    explain = table.loc[table["job"] == "explain", "run_id"].iloc[0]
    at.selectbox(key="jobs-pick").set_value(explain).run()
    command = at.code[0].value
    assert "retcore explain --run" in command and "--methods lrp,gae" in command and "--db" in command
    assert at.json, "configuration missing"
