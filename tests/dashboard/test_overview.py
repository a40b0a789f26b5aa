"""AppTest of the dashboard on an empty, a missing and a populated database."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _run(monkeypatch, db) -> AppTest:
    monkeypatch.setenv("RETCORE_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_missing_database_explains_how_to_create_one(monkeypatch, tmp_path):
    at = _run(monkeypatch, tmp_path / "absent.duckdb")
    assert any("make demo" in i.value for i in at.info)


def test_empty_database_shows_no_runs_message(monkeypatch, tmp_path):
    from retcore.storage.runs import open_db

    db = open_db(tmp_path / "empty.duckdb")
    at = _run(monkeypatch, db)
    assert any("no runs yet" in i.value for i in at.info)


def test_overview_shows_runs_metrics_and_confusion(monkeypatch, tiny_pipeline):
    at = _run(monkeypatch, tiny_pipeline["db"])
    assert at.title[0].value == "Overview"
    runs = at.dataframe[0].value
    assert set(runs["job"]) == {"finetune", "predict"} and set(runs["status"]) == {"succeeded"}
    assert at.selectbox[0].value == tiny_pipeline["run_id"]
    labels = {m.label: m.value for m in at.metric}
    assert {"Accuracy", "Macro F1", "Macro AUROC", "Cohen's κ"} <= set(labels)
    assert 0.0 <= float(labels["Accuracy"]) <= 1.0
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("pred_label" in s for s in specs), "confusion matrix chart missing"
    per_class = at.dataframe[1].value
    assert {"precision", "recall", "f1", "specificity"} <= set(per_class.columns)
    at.radio[0].set_value("val").run()
    assert not at.exception
