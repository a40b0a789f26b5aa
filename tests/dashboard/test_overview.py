"""AppTest of the dashboard on an empty, a missing and a populated database."""
from __future__ import annotations


def test_missing_database_explains_how_to_create_one(app, tmp_path):
    at = app(tmp_path / "absent.duckdb")
    assert any("make demo" in i.value for i in at.info)


def test_empty_database_shows_no_runs_message(app, tmp_path):
    from retcore.storage.runs import open_db

    db = open_db(tmp_path / "empty.duckdb")
    at = app(db)
    assert any("no runs yet" in i.value for i in at.info)


def test_overview_shows_runs_metrics_and_confusion(app, tiny_pipeline, specs):
    at = app(tiny_pipeline["db"])
    assert at.title[0].value == "Overview"
    runs = at.dataframe[0].value
    assert {"finetune", "predict"} <= set(runs["job"]) and set(runs["status"]) == {"succeeded"}
    assert at.sidebar.selectbox(key="f_run").value == tiny_pipeline["run_id"]
    labels = {m.label: m.value for m in at.metric}
    assert {"Accuracy", "Macro F1", "Macro AUROC", "Cohen's κ", "ECE"} <= set(labels)
    assert 0.0 <= float(labels["Accuracy"]) <= 1.0
    assert any("95% CI" in c.value for c in at.caption), "headline intervals missing"
    charts = specs(at)
    assert any("pred_label" in s for s in charts), "confusion matrix chart missing"
    assert any("mean_confidence" in s for s in charts), "reliability diagram missing"
    per_class = at.dataframe[1].value
    assert {"precision", "recall", "f1", "specificity", "auroc"} <= set(per_class.columns)
    assert per_class["precision"].str.contains(r"\[").any(), "per-class intervals missing"
    at.sidebar.selectbox(key="f_split").set_value("val").run()
    assert not at.exception
    assert at.query_params["split"] == ["val"] or at.query_params["split"] == "val"


def test_every_chart_offers_svg_png_pdf_and_csv(app, tiny_pipeline):
    at = app(tiny_pipeline["db"])
    buttons = at.get("download_button")
    names = [b.proto.label for b in buttons]
    n_charts = len(at.get("vega_lite_chart"))
    assert n_charts >= 4
    for label in ("SVG", "PNG 300 ppi", "PDF", "CSV"):
        assert names.count(label) == n_charts, (label, names)
