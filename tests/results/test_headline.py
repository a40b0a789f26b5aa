"""The classification report: one computation, so the dashboard's headline equals `retcore export`'s."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retcore.results import headline
from retcore.results.format import fmt_ci

ROOT = Path(__file__).resolve().parents[2]


def _summary_table(text: str, title: str) -> list[list[str]]:
    """The rows of the markdown table under the heading starting with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| metric") and not line.startswith("| class |"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def exported(tiny_explained, tmp_path_factory):
    from jobs.export import run_export

    out = tmp_path_factory.mktemp("headline-export")
    return run_export(tiny_explained["run_id"], out, db=tiny_explained["db"], n_permutations=19).out


def test_dashboard_headline_equals_the_export_summary(tiny_explained, exported, monkeypatch):
    """Every number of the Overview (headline metrics, intervals, per-class table) is the export's."""
    from dashboard import analysis

    monkeypatch.setenv("RETCORE_DB", str(tiny_explained["db"]))
    from dashboard.queries import run_classes

    run = tiny_explained["run_id"]
    classes = tuple(run_classes(run))
    shown = analysis.headline(run, "test", classes)
    text = (exported / "summary.md").read_text()

    # the CSV holds the exact numbers
    csv = pd.read_csv(exported / "headline_metrics.csv")
    dash = shown.headline
    assert list(csv["metric"]) == list(dash["metric"])
    for col in ("value", "low", "high"):
        np.testing.assert_array_equal(csv[col].to_numpy(float), dash[col].to_numpy(float))
    assert list(csv["interval"]) == list(dash["interval"]) and (csv["n"] == shown.n).all()
    assert f"## Headline metrics ({shown.n} labelled images" in text

    # the summary's headline table, cell by cell
    names = dict(headline.HEADLINE)
    rows = _summary_table(text, "## Headline metrics")
    assert [r[0] for r in rows] == [names[m] for m in dash["metric"]]
    for r, (_, d) in zip(rows, dash.iterrows()):
        assert r[1] == fmt_ci(d["value"], d["low"], d["high"]) and r[2] == d["interval"]

    # per class, AUROC included
    per_class = shown.per_class_with_auroc()
    rows = _summary_table(text, "## Per class")
    assert [r[0] for r in rows] == list(per_class["class"])
    for r, (_, d) in zip(rows, per_class.iterrows()):
        expected = [str(d["support"])] + [fmt_ci(d[m], d[f"{m}_low"], d[f"{m}_high"])
                                          for m in ("precision", "recall", "specificity", "f1")]
        expected.append(fmt_ci(d["auroc"], d["auroc_low"], d["auroc_high"]) if math.isfinite(d["auroc"]) else "–")
        assert r[1:] == expected
    np.testing.assert_array_equal(pd.read_csv(exported / "per_class_metrics.csv")["f1_high"].to_numpy(float),
                                  shown.per_class["f1_high"].to_numpy(float))

    # and the Overview page shows those numbers
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    table = dash.set_index("metric")
    for key, label in (("accuracy", "Accuracy"), ("macro_f1", "Macro F1"), ("kappa", "Cohen's κ"),
                       ("ece", "ECE"), ("macro_auroc", "Macro AUROC")):
        assert metrics[label] == f"{table.loc[key, 'value']:.3f}"
    captions = " ".join(c.value for c in at.caption)
    for key in ("accuracy", "ece"):
        assert f"95% CI {table.loc[key, 'low']:.3f}–{table.loc[key, 'high']:.3f}" in captions


def test_report_tables_on_a_tiny_run(plain_con, tiny_pipeline):
    from retcore.results.runs import run_classes

    run = tiny_pipeline["run_id"]
    classes = run_classes(plain_con, run)
    report = headline.classification(plain_con, run, "test", classes, n_boot=200, roc=True)
    labelled = plain_con.execute("SELECT label, pred, correct FROM predictions WHERE run_id = ? AND split = 'test' "
                                 "AND label IS NOT NULL", [run]).df()
    assert report.n == len(labelled)
    acc = report.headline.set_index("metric").loc["accuracy"]
    assert acc["value"] == pytest.approx(labelled["correct"].mean()) and acc["interval"] == "Wilson"
    assert acc["low"] <= acc["value"] <= acc["high"]
    assert list(report.headline["metric"]) == [k for k, _ in headline.HEADLINE]
    # confusion: every pair of classes in class order, counts from the predictions
    assert list(zip(report.confusion["true_label"], report.confusion["pred_label"])) == [
        (a, b) for a in classes for b in classes]
    assert report.confusion["count"].sum() == report.n
    stored = plain_con.execute("SELECT true_label, pred_label, count FROM confusion WHERE run_id = ? "
                               "AND split = 'test'", [run]).df()
    merged = report.confusion.merge(stored, on=["true_label", "pred_label"], suffixes=("", "_stored"))
    assert len(merged) == len(stored) and (merged["count"] == merged["count_stored"]).all()
    assert len(report.reliability) == headline.RELIABILITY_BINS and report.reliability["count"].sum() == report.n
    assert set(report.auroc["class"]) == {*classes, "macro"} and report.roc is not None
    assert not report.stale and report.n_boot_images == 200
    assert "Wilson" in report.interval_detail("accuracy") and "15 equal-width" in report.interval_detail("ece")


def test_stale_stored_accuracy_is_flagged(tiny_pipeline, tmp_path):
    import shutil

    import duckdb

    from retcore.results.runs import run_classes

    db = tmp_path / "stale.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    run = tiny_pipeline["run_id"]
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE metrics SET value = value + 0.25 WHERE run_id = ? AND split = 'test' "
                    "AND metric = 'accuracy' AND class_name = ''", [run])
        report = headline.classification(con, run, "test", run_classes(con, run), n_boot=50)
    assert report.stale


def test_boot_size_shrinks_on_large_selections():
    assert headline.boot_size(0) == 0
    assert headline.boot_size(100) == 1000 and headline.boot_size(5000) == 1000
    assert headline.boot_size(10_000) == 500 and headline.boot_size(10**6) == 100
    assert headline.boot_size(10, full=50) == 50  # never more than asked
    assert re.fullmatch(r"\d+", str(headline.boot_size(123_456)))
