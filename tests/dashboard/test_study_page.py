"""The Study page on two miniature shortcut studies that share their baseline runs: arms side by side
with intervals, per seed, paired tests, maps on marked images, another study's arm added."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def studies(tiny_study, tiny_warm_study, tiny_config):
    """``tiny_study`` (anatomy/relevance, seeds 0 and 1) and a second study of the center guide with the
    pixel-level ``grad_x_input`` form on the same data, seed 0: it reuses the first one's baseline run."""
    from jobs.study import run_shortcut_study

    center = run_shortcut_study(tiny_config(epochs=1, warmup_epochs=0, guide="center", guide_form="grad_x_input"),
                                tiny_study["demo"], seeds=[0], **tiny_study["common"])
    return {"db": tiny_study["db"], "anatomy": tiny_study["study"], "center": center, "warm": tiny_warm_study["study"]}


def test_study_runs_name_their_guided_arm(studies):
    import duckdb

    from retcore.results.study import study_runs

    with duckdb.connect(str(studies["db"]), read_only=True) as con:
        rows = study_runs(con).set_index("run_id")
        baselines = con.execute("SELECT DISTINCT run_id FROM study_results WHERE arm = 'baseline' AND "
                                "study_run_id IN (?, ?)", [studies["anatomy"], studies["center"]]).fetchall()
    ids = rows.index.tolist()
    assert ids.index(studies["center"]) < ids.index(studies["anatomy"])  # newest first
    assert rows.loc[studies["center"], "arm"] == "guided: center/grad_x_input x1"
    assert rows.loc[studies["anatomy"], "arm"] == "guided: anatomy/relevance x1"
    assert len(baselines) == 2  # the second study reused the first one's baseline runs (one per seed)


def test_study_examples_are_marked_shortcut_images_with_readable_photos(studies):
    import duckdb

    from retcore.results.study import study_examples, study_results

    with duckdb.connect(str(studies["db"]), read_only=True) as con:
        rows = study_results(con, studies["anatomy"]).results
        seed0 = rows[(rows["seed"] == 0)].groupby("arm")["run_id"].first().to_dict()
        # the miniature test split may hold no marked glaucoma image: take the class of a marked one
        label = con.execute("SELECT i.label FROM zone_scores z JOIN images i USING (image_id) WHERE z.run_id = ? "
                            "AND z.method = 'gae' AND z.zone_set = 'mask' AND z.zone = 'marker' AND z.area_share > 0 "
                            "ORDER BY z.image_id LIMIT 1", [seed0["baseline"]]).fetchone()
        assert label is not None, "no marked test image at all"
        examples = study_examples(con, seed0["baseline"], list(seed0.values()), "gae", label[0], 6)
    assert len(examples) >= 2 and set(examples["label"]) == {label[0]} and (examples["marker_area"] > 0).all()
    assert set(examples["run_id"]) <= set(seed0.values())
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in examples["path"])  # photos, not placeholders


def test_study_page_shows_arms_tests_and_maps(app, studies, specs, texts):
    at = app(studies["db"], "study", params={"study": studies["anatomy"]})
    assert at.query_params["study"] in (studies["anatomy"], [studies["anatomy"]])
    spec = json.loads(specs(at)[0])
    assert spec["facet"]["field"] == "metric"
    assert "guided: anatomy/relevance x1" in specs(at)[0] and "baseline" in specs(at)[0]
    table = at.dataframe[0].value
    assert {"baseline", "guided: anatomy/relevance x1", "guided: anatomy/relevance x1 − baseline"} <= set(table.columns)
    assert "accuracy" in table.index and "[" in table.loc["accuracy", "baseline"]  # mean [95% CI]
    paired = at.dataframe[2].value
    assert set(paired["test"]) == {"McNemar, correct (exact)", "Wilcoxon, marker share", "Wilcoxon, centre score"}
    assert "Maps on marked test images" in texts(at)
    assert len(at.get("image")) >= 3 or "No glaucoma test image with the marker" in texts(at)
    # the other study's guided arm beside this one: three arms, one shared baseline
    at.multiselect(key="study-extra").set_value([studies["center"]]).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert {"baseline", "guided: anatomy/relevance x1", "guided: center/grad_x_input x1"} <= set(table.columns)
    assert "guided: center/grad_x_input x1" in specs(at)[0]
    assert len(at.dataframe[2].value) == 6


def test_study_page_shows_a_warm_started_study_with_its_control(app, studies, specs):
    at = app(studies["db"], "study", params={"study": studies["warm"]})
    assert not at.exception
    guided, continued = "guided: anatomy/relevance x1, +1 ep from baseline", "continued: +1 ep from baseline, no guide"
    table = at.dataframe[0].value
    assert {"baseline", guided, continued, f"{guided} − baseline", f"{continued} − baseline"} <= set(table.columns)
    assert guided in specs(at)[0] and continued in specs(at)[0]
    paired = at.dataframe[2].value
    assert set(zip(paired["arm (b)"], paired["against (a)"])) == {
        (guided, "baseline"), (continued, "baseline"), (guided, continued)}
    assert len(paired) == 9  # three pairs x three tests
    # differences of marker shares (~1e-5) keep their digits: signed, 3 significant figures, never a bare 0
    diffs = paired["mean difference (b − a)"]
    assert all(d[0] in "+-" and float(d) == float(f"{float(d):.3g}") for d in diffs)


def test_study_page_without_a_study_says_how_to_run_one(app, tiny_explained, texts):
    at = app(tiny_explained["db"], "study")
    assert "retcore study shortcut" in texts(at)
