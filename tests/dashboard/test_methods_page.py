"""The Methods page under AppTest: verdicts, sanity and faithfulness charts, empty states."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from retcore.results.methods import faithfulness_line, method_verdicts


@pytest.fixture(scope="module")
def checked(tiny_explained, tmp_path_factory):
    """``tiny_explained`` (lrp and gae maps, faithfulness on 4 images) plus a cascading sanity check
    of ``lrp`` on 2 images."""
    from jobs.sanity import run_sanity

    root = tmp_path_factory.mktemp("methods")
    db = root / "results.duckdb"
    shutil.copy(tiny_explained["db"], db)
    run_sanity(tiny_explained["run_id"], ["lrp"], "test", db=db, results=root / "results", images=2,
               mode="cascading", batch_size=2, device="cpu", num_workers=0)
    return {**tiny_explained, "db": db}


def _params(checked) -> dict:
    return {"run": checked["run_id"], "split": "test"}


def test_page_shows_verdicts_and_charts(app, texts, specs, checked):
    at = app(checked["db"], "methods", _params(checked))
    text = texts(at)
    assert "Methods" in text
    # lrp has a sanity check and faithfulness rows: both halves of its verdict
    lrp = next(m for m in at.markdown if "**lrp**" in m.value).value
    assert "the randomisation check" in lrp and ("passes" in lrp or "fails" in lrp)
    assert "random on deletion_morf" in lrp and "random on insertion" in lrp
    # gae was explained but not sanity-checked
    gae = next(m for m in at.markdown if "**gae**" in m.value).value
    assert "randomisation check not run" in gae and "random on deletion_morf" in gae
    charts = [json.loads(s) for s in specs(at)]
    marks = json.dumps(charts)
    assert len(charts) >= 3  # sanity curves, faithfulness curves, cost (+ localisation where masks exist)
    assert '"layer"' in marks and '"fraction"' in marks and '"seconds_per_image"' in marks
    assert '"field": "measurement"' in marks  # the cost chart splits faithfulness and sanity timings
    assert len(at.get("download_button")) >= 3 * 4
    assert not at.error


def test_page_switches_measure_and_unit(app, texts, specs, checked):
    at = app(checked["db"], "methods", _params(checked))
    at.radio(key="methods-measure").set_value("ssim").run()
    assert not at.exception
    assert any("ssim_low" in s for s in specs(at))
    units = at.selectbox(key="methods-unit").options
    at.selectbox(key="methods-unit").set_value(units[-1]).run()
    assert not at.exception and "random on deletion_morf" in texts(at)


def test_sanity_empty_state_names_the_command(app, texts, tiny_explained):
    at = app(tiny_explained["db"], "methods", {"run": tiny_explained["run_id"], "split": "test"})
    assert f"retcore sanity --run {tiny_explained['run_id']}" in texts(at)
    assert "randomisation check not run" in texts(at)


def test_page_without_any_rows_names_both_commands(app, texts, tiny_pipeline):
    at = app(tiny_pipeline["db"], "methods", {"run": tiny_pipeline["run_id"], "split": "test"})
    text = texts(at)
    assert f"retcore sanity --run {tiny_pipeline['run_id']}" in text
    assert f"retcore explain --run {tiny_pipeline['run_id']}" in text
    assert not at.get("vega_lite_chart")


def test_verdict_wording():
    sanity = pd.DataFrame({"method": ["a", "b"], "flagged": [False, True]})
    faith = pd.DataFrame({
        "method": ["a", "a"], "test": ["deletion_morf", "insertion"], "better": ["lower", "higher"],
        "difference": [-0.02, 0.001], "difference_low": [-0.03, -0.002], "difference_high": [-0.01, 0.004],
        "beats_random": [True, False]})
    out = method_verdicts(sanity, faith).set_index("method")
    assert out.loc["a", "verdict"] == ("passes the randomisation check; beats random on deletion_morf by "
                                       "+0.020 [+0.010, +0.030]; does not beat random on insertion "
                                       "(gain +0.001 [-0.002, +0.004])")
    assert out.loc["a", "beats_random"] == "1/2"
    assert out.loc["b", "verdict"] == "fails the randomisation check; faithfulness not measured"
    data = pd.DataFrame({"method": ["a", "b"], "flagged": [True, pd.NA]})
    both = method_verdicts(sanity, faith, data).set_index("method")
    assert both.loc["a", "verdict"].startswith("passes the randomisation check; fails the data randomisation "
                                               "check; beats random on deletion_morf")
    assert both.loc["a", "data_randomisation"] == "fails" and both.loc["b", "data_randomisation"] == "not run"
    worse = faithfulness_line({"test": "insertion", "better": "higher", "difference": -0.02,
                               "difference_low": -0.03, "difference_high": -0.01, "beats_random": False})
    assert worse.startswith("is worse than random on insertion")


def test_charts_export_as_svg(checked):
    import duckdb

    from retcore.plots import chart_bytes
    from retcore.plots.methods import (faithfulness_curves_chart, localisation_chart, method_cost_chart,
                                       sanity_curves_chart)
    from retcore.results.faithfulness import faithfulness_mean_curves, faithfulness_summary
    from retcore.results.methods import localisation_summary
    from retcore.results.sanity import sanity_summary

    run = checked["run_id"]
    with duckdb.connect(str(checked["db"]), read_only=True) as con:
        sanity = sanity_summary(con, run, n_boot=100)
        summary = faithfulness_summary(con, run, "test", unit="token")
        curves = faithfulness_mean_curves(con, run, "test", baseline=summary["baseline"].iloc[0], unit="token",
                                          n_boot=100)
        loc = localisation_summary(con, run, "test", n_boot=100)
    charts = [sanity_curves_chart(sanity), faithfulness_curves_chart(curves),
              method_cost_chart(summary.groupby("method", as_index=False)["seconds_per_image"].mean())]
    if not loc.empty:
        assert set(loc["measure"]) <= {"pointing_game", "mass_accuracy", "rank_accuracy"}
        assert loc["low"].le(loc["value"]).all() and loc["value"].le(loc["high"]).all()
        charts.append(localisation_chart(loc))
    for c in charts:
        assert chart_bytes(c, "svg").lstrip().startswith(b"<svg")
    print("localisation rows:", len(loc))


def test_empty_database_explains(app, texts, tmp_path):
    from retcore.storage.runs import open_db

    at = app(open_db(tmp_path / "results.duckdb"), "methods")
    assert at.info and "retcore" in texts(at)


def test_costs_join_faithfulness_and_sanity_timings(checked):
    import duckdb

    from retcore.results.faithfulness import faithfulness_summary
    from retcore.results.methods import method_costs
    from retcore.results.sanity import sanity_costs

    with duckdb.connect(str(checked["db"]), read_only=True) as con:
        sanity = sanity_costs(con, checked["run_id"])
        faith = faithfulness_summary(con, checked["run_id"], "test")
    # the sanity job timed the one method it checked, per image
    assert sanity["method"].tolist() == ["lrp"] and (sanity["seconds_per_image"] > 0).all()
    assert sanity["mode"].tolist() == ["cascading"]
    costs = method_costs(faith, sanity)
    assert set(costs["measurement"]) == {"faithfulness", "sanity checks"}
    assert set(costs.loc[costs["measurement"] == "faithfulness", "method"]) == set(faith["method"])
    assert costs["seconds_per_image"].gt(0).all()


def test_verdict_line_follows_the_stored_verdict():
    # interval below 0 but Wilcoxon p 0.08: the stored verdict says "does not beat random", so does the line
    row = {"test": "insertion", "better": "higher", "difference": -0.04, "difference_low": -0.08,
           "difference_high": -0.002, "beats_random": False,
           "verdict": "does not beat random on insertion (higher AUC is better): ..."}
    assert faithfulness_line(row).startswith("does not beat random on insertion (gain -0.040")
    row["verdict"] = "worse than random on insertion (higher AUC is better): ..."
    assert faithfulness_line(row).startswith("is worse than random on insertion")


def test_verdict_line_gives_the_p_value_that_decided():
    row = {"test": "deletion_morf", "better": "lower", "difference": -0.078, "difference_low": -0.150,
           "difference_high": -0.020, "beats_random": False, "wilcoxon_p": 0.081,
           "verdict": "does not beat random on deletion_morf (lower AUC is better): ..."}
    assert faithfulness_line(row) == ("does not beat random on deletion_morf (gain +0.078 [+0.020, +0.150], "
                                      "Wilcoxon p 0.081: the interval excludes 0 but the signed-rank test does "
                                      "not reach p < 0.05)")
    row.update(beats_random=True, wilcoxon_p=0.0004)
    assert faithfulness_line(row) == "beats random on deletion_morf by +0.078 [+0.020, +0.150], Wilcoxon p <0.001"
