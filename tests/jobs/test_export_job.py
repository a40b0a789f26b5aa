"""The export job: figures in three formats with their data, summary.md, missing parts, errors."""
from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

CLASSIFICATION = ["confusion_matrix", "per_class_metrics", "reliability", "roc_curves", "training_curves"]
EXPLANATION = ["mean_heatmaps", "heatmap_drift", "zone_distributions", "zone_confidence"]
ROOT = Path(__file__).resolve().parents[2]


def _check_figure(out: Path, name: str) -> None:
    svg = (out / f"{name}.svg").read_text()
    assert svg.startswith("<svg") and ET.fromstring(svg).tag.endswith("svg")
    png = (out / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at = png.index(b"pHYs")
    ppm = struct.unpack(">I", png[at + 4:at + 8])[0]
    assert round(ppm * 0.0254) == 300
    width = struct.unpack(">I", png[16:20])[0]
    assert width == pytest.approx(float(ET.fromstring(svg).get("width")) * 300 / 72, rel=0.02)
    assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert not pd.read_csv(out / f"{name}.csv").empty


@pytest.fixture(scope="module")
def plain_export(tiny_pipeline, tmp_path_factory):
    from jobs.export import run_export

    db = tiny_pipeline["db"]
    before = db.stat().st_mtime_ns
    out = tmp_path_factory.mktemp("export") / "fig"
    result = run_export(tiny_pipeline["run_id"], out, db=db, n_boot=200, n_permutations=99)
    assert db.stat().st_mtime_ns == before  # read-only
    return result


def test_run_without_explanations_exports_classification_figures(plain_export, tiny_pipeline):
    out = plain_export.out
    assert plain_export.run_id == tiny_pipeline["run_id"]
    for name in CLASSIFICATION:
        _check_figure(out, name)
    for name in EXPLANATION:
        assert not (out / f"{name}.svg").exists()
    assert any("explain" in m for m in plain_export.missing)
    assert set(plain_export.files) <= set(out.iterdir())
    headline = pd.read_csv(out / "headline_metrics.csv").set_index("metric")
    assert {"accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "kappa", "ece"} <= set(headline.index)
    acc = headline.loc["accuracy"]
    assert acc["low"] <= acc["value"] <= acc["high"] and acc["interval"] == "Wilson"


def test_summary_lists_metrics_intervals_tests_and_what_is_missing(plain_export):
    text = (plain_export.out / "summary.md").read_text()
    assert text.startswith(f"# Run {plain_export.run_id}")
    for needle in ("## Headline metrics", "| Accuracy | ", "Macro F1", "Cohen's κ", "Macro AUROC",
                   "## Per class", "## Statistical methods", "Wilson score intervals", "Percentile bootstrap",
                   "## Missing", "retcore explain --run", "`confusion_matrix`"):
        assert needle in text, needle
    accuracy_line = next(line for line in text.splitlines() if line.startswith("| Accuracy |"))
    assert "[" in accuracy_line and "]" in accuracy_line  # value [low, high]
    assert "Kruskal-Wallis" not in text  # no zone scores, so that test is not claimed


def test_explained_run_exports_zone_and_heatmap_figures(tiny_explained, tmp_path):
    from jobs.export import run_export

    result = run_export(tiny_explained["run_id"], tmp_path / "fig", db=tiny_explained["db"], n_boot=200,
                        n_permutations=99)
    for name in CLASSIFICATION + EXPLANATION + ["accuracy_by_stratum"]:
        _check_figure(result.out, name)
    text = (result.out / "summary.md").read_text()
    for needle in ("method `lrp`", "Kruskal-Wallis", "Mann-Whitney", "Spearman", "Jensen-Shannon",
                   "Chi-square test", "Holm"):
        assert needle in text, needle
    assert not any("explain" in m for m in result.missing)
    assert "`periphery` zone score" in text  # the default zone of the anatomy set
    scores = pd.read_csv(result.out / "zone_distributions.csv")
    assert {"optic_disc", "macula", "central", "periphery"} <= set(scores["zone"])
    # faithfulness was measured (4 images) but no sanity check was run: said so, curves exported
    _check_figure(result.out, "faithfulness_curves")
    assert "## Can the maps be believed?" in text and "randomisation check not run" in text
    assert any(m.startswith("sanity-check curves") for m in result.missing)


def test_methods_figures_are_exported_with_their_verdicts(tiny_explained, tmp_path):
    import shutil

    from jobs.export import run_export
    from jobs.sanity import run_sanity

    db = tmp_path / "results.duckdb"
    shutil.copy(tiny_explained["db"], db)
    run_sanity(tiny_explained["run_id"], ["lrp", "gae"], "test", db=db, results=tmp_path / "results", images=2,
               mode="cascading", batch_size=2, device="cpu", num_workers=0)
    result = run_export(tiny_explained["run_id"], tmp_path / "fig", db=db, n_boot=100, n_permutations=20)
    for name in ("sanity_spearman", "sanity_ssim", "faithfulness_curves", "method_cost"):
        _check_figure(result.out, name)
    verdicts = pd.read_csv(result.out / "method_verdicts.csv").set_index("method")
    assert set(verdicts.index) == {"lrp", "gae"}
    assert verdicts["randomisation"].isin(["passes", "fails"]).all()
    text = (result.out / "summary.md").read_text()
    for method in ("lrp", "gae"):
        line = next(x for x in text.splitlines() if x.startswith(f"- **{method}** "))
        assert "the randomisation check" in line and "random on deletion_morf" in line, line
    assert "Model-parameter randomisation (Adebayo" in text and "Wilcoxon signed-rank" in text
    costs = pd.read_csv(result.out / "method_cost.csv")
    assert set(costs["measurement"]) == {"faithfulness", "sanity checks"}
    assert not any("sanity" in m or "faithfulness" in m for m in result.missing)


def test_cli_writes_files_and_reports_bad_input_in_one_line(tiny_pipeline, tmp_path):
    from jobs.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["export", "--run", tiny_pipeline["run_id"], "--out", str(tmp_path / "cli"),
                             "--db", str(tiny_pipeline["db"]), "--n-boot", "50", "--permutations", "20"])
    assert ok.exit_code == 0, ok.output
    assert "figures" in ok.output and "not exported: explanation figures" in ok.output
    assert (tmp_path / "cli" / "summary.md").exists()

    unknown = runner.invoke(app, ["export", "--run", "nope", "--out", str(tmp_path / "x"),
                                  "--db", str(tiny_pipeline["db"])])
    assert unknown.exit_code == 2
    assert unknown.stderr.strip().startswith("error: no run 'nope'") and len(unknown.stderr.strip().splitlines()) == 1

    wrong_split = runner.invoke(app, ["export", "--run", "latest", "--split", "train",
                                      "--db", str(tiny_pipeline["db"]), "--out", str(tmp_path / "y")])
    assert wrong_split.exit_code == 2 and "predictions for split 'train'" in wrong_split.stderr


def test_bad_zone_arguments_fail_before_writing(tiny_explained, tmp_path):
    from jobs.export import run_export
    from retcore.errors import RetcoreError

    with pytest.raises(RetcoreError, match="choose --zone-set from"):
        run_export(tiny_explained["run_id"], tmp_path / "a", db=tiny_explained["db"], zone_set="bogus")
    with pytest.raises(RetcoreError, match="choose --zone from"):
        run_export(tiny_explained["run_id"], tmp_path / "b", db=tiny_explained["db"], zone_set="thirds",
                   zone="macula")
    with pytest.raises(RetcoreError, match="choose --method from"):
        run_export(tiny_explained["run_id"], tmp_path / "c", db=tiny_explained["db"], method="nope")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_module_entry_point_reports_a_missing_database(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jobs.export", "--run", "x", "--db", str(tmp_path / "absent.duckdb"),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: database") and "does not exist" in proc.stderr
    assert not (tmp_path / "absent.duckdb").exists() and not (tmp_path / "out").exists()
