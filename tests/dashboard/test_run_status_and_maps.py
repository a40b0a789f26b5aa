"""Interrupted and failed runs on the Jobs page; empty relevance maps labelled on the Cases page."""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from dashboard import images
from retcore.storage import runs as runs_mod

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ pure map notes


def test_map_notes_name_the_reason_of_an_empty_or_constant_map():
    ok = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert images.map_notes("lrp", "glaucoma", ok, positive_sum=3.0) == []
    empty = images.map_notes("lrp", "glaucoma", np.zeros((4, 4)), positive_sum=0.0)
    assert [n.text for n in empty] == [
        "no positive relevance for glaucoma: lrp found no evidence for this class in this image"]
    assert images.tile_label(empty) == "no positive relevance"
    negative = images.map_notes("gae", "normal", -ok - 1)
    assert negative[0].kind == "empty", "grid max <= 0 without a stored sum"
    assert images.map_notes("gae", "normal", ok, positive_sum=0.0)[0].kind == "empty", "stored mass <= 0"
    constant = images.map_notes("rollout", "normal", np.full((4, 4), 0.25), positive_sum=4.0)
    assert [n.text for n in constant] == ["constant map: rollout gives no spatial information here"]
    assert images.tile_label(constant) == "constant map"
    assert images.map_notes("x", "c", np.full((2, 2), np.nan))[0].kind == "nonfinite"
    assert images.map_notes("lrp", "c", ok * 1e-13, positive_sum=1e-11) == [], "tiny but real relevance"
    assert images.map_notes("lrp", "c", np.full((4, 4), 3e-13), positive_sum=5e-12)[0].kind == "constant"
    fallback = images.map_notes("lrp", "normal", ok, file_problem="checksum")
    assert [n.kind for n in fallback] == ["file"] and "SHA-256" in fallback[0].text
    assert "token grid from the database" in fallback[0].text and images.tile_label(fallback) is None
    both = images.map_notes("lrp", None, np.zeros((2, 2)), file_problem="missing")
    assert [n.kind for n in both] == ["file", "empty"] and "the explained class" in both[1].text


def test_choose_map_prefers_the_file_unless_it_underflowed():
    grid = np.ones((2, 2), np.float32)
    full = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert images.choose_map(full, None, grid, 3.0)[0] is full
    assert images.choose_map(None, "missing", grid, 3.0) == (grid, "missing")
    shown, problem = images.choose_map(np.zeros((4, 4), np.float16), None, grid, 3.0)
    assert shown is grid and problem == "underflow", "a float16 file of zeros while the stored map is positive"
    zeros = np.zeros((4, 4), np.float32)
    assert images.choose_map(zeros, None, np.zeros((2, 2)), 0.0)[0] is zeros, "a truly empty map stays itself"


def test_sparse_positive_relevance_is_not_clipped_to_a_blank():
    grid = np.zeros((64, 64), np.float32)
    grid[3, 5] = 1.0  # one pixel in 4096: the 99th percentile is 0
    heat = images.display_map(grid, 64)
    assert heat.max() == pytest.approx(1.0)
    assert images.display_map(np.full((4, 4), np.nan), 8).max() == 0


def test_empty_map_tile_is_labelled():
    plain = images.render_case(None, None, np.zeros((4, 4)), 64, size=96)
    labelled = images.render_case(None, None, np.zeros((4, 4)), 64, size=96, label="no positive relevance")
    assert plain.shape == labelled.shape and (plain != labelled).any()


# ----------------------------------------------------------------- heatmap files


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    (root / "runs" / "ft").mkdir(parents=True)
    heat = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    file = root / "heatmaps" / "ft" / "lrp" / "img_t0.npy"
    file.parent.mkdir(parents=True)
    np.save(file, heat)
    return {"root": root, "out_dir": str(root / "runs" / "ft"), "file": file, "heat": heat,
            "sha": hashlib.sha256(file.read_bytes()).hexdigest()}


def test_read_heatmap_accepts_absolute_and_results_relative_paths(results):
    absolute, problem = images.read_heatmap(str(results["file"]), results["sha"], results["out_dir"])
    assert problem is None and np.array_equal(absolute, results["heat"])
    relative, problem = images.read_heatmap("heatmaps/ft/lrp/img_t0.npy", results["sha"], results["out_dir"])
    assert problem is None and np.array_equal(relative, results["heat"])
    half = results["file"].with_name("half.npy")
    np.save(half, results["heat"].astype(np.float16))
    old, _ = images.read_heatmap(str(half), None, results["out_dir"])
    assert old.dtype == np.float32, "float16 maps of older databases still load"
    assert images.load_heatmap(str(results["file"]), results["sha"], results["out_dir"]) is not None


def test_read_heatmap_says_why_a_file_is_not_used(results, tmp_path):
    out_dir, sha = results["out_dir"], results["sha"]
    assert images.read_heatmap(str(results["file"]), "0" * 64, out_dir) == (None, "checksum")
    assert images.read_heatmap("heatmaps/ft/lrp/gone.npy", None, out_dir) == (None, "missing")
    assert images.read_heatmap("heatmaps/../../x.npy", None, out_dir) == (None, "outside")
    outside = tmp_path / "x.npy"
    np.save(outside, results["heat"])
    assert images.read_heatmap(str(outside), None, out_dir) == (None, "outside")
    link = results["file"].with_name("link.npy")
    link.symlink_to(outside)
    assert images.read_heatmap(str(link), None, out_dir) == (None, "outside"), "a link leaving the folder"
    assert images.read_heatmap(str(results["file"]), sha, None) == (None, "no folder")
    assert images.read_heatmap(None, sha, out_dir) == (None, "no path")
    assert images.read_heatmap("/etc/hostname", None, out_dir) == (None, "not npy")
    bad = results["file"].with_name("bad.npy")
    bad.write_bytes(b"not numpy")
    assert images.read_heatmap(str(bad), None, out_dir) == (None, "unreadable")
    assert set(images.FILE_PROBLEMS) >= {"checksum", "missing", "outside", "no folder", "unreadable"}


# --------------------------------------------------------------------- jobs page


def _inner_step_that_breaks():
    raise ZeroDivisionError("the inner step broke")


@pytest.fixture
def runs_db(tmp_path, start_and_kill):
    """A database with a failed run (traceback in its log) and a run whose process was killed."""
    from retcore.storage.runs import record_run

    db = tmp_path / "results.duckdb"
    with pytest.raises(ZeroDivisionError):
        with record_run(db, "predict", config={"run": "ft", "split": "test"}, run_id="broken"):
            _inner_step_that_breaks()
    start_and_kill(db, "killed", out_dir=str(tmp_path / "results" / "runs" / "killed"), progress=0.4)
    return db


def test_killed_run_shows_interrupted_once_stale_without_writing(app, runs_db, monkeypatch, texts):
    at = app(runs_db, "jobs")
    table = at.dataframe[0].value.set_index("run_id")
    assert table.loc["killed", "status"] == "running", "fresh heartbeat"
    monkeypatch.setattr(runs_mod, "STALE_AFTER_S", 0.3)
    time.sleep(0.5)
    at = app(runs_db, "jobs", params={"job": "killed"})
    at.selectbox(key="jobs-pick").set_value("killed").run()
    table = at.dataframe[0].value.set_index("run_id")
    assert table.loc["killed", "status"] == "interrupted"
    text = texts(at)
    assert "No heartbeat since" in text and "retcore finetune --resume killed" in text
    with duckdb.connect(str(runs_db), read_only=True) as con:  # the dashboard wrote nothing
        assert con.execute("SELECT status FROM runs WHERE run_id = 'killed'").fetchone()[0] == "running"
    from dashboard import queries

    monkeypatch.setenv("RETCORE_DB", str(runs_db))
    assert queries.runs().set_index("run_id").loc["killed", "status"] == "interrupted"


def test_failed_run_shows_its_log_path_and_traceback(app, runs_db):
    at = app(runs_db, "jobs")
    at.selectbox(key="jobs-pick").set_value("broken").run()
    assert not at.exception
    assert "ZeroDivisionError: the inner step broke" in [e.value for e in at.error]
    logs = [c.value for c in at.code if "Traceback" in c.value]
    assert logs and "_inner_step_that_breaks" in logs[0]
    facts = at.dataframe[1].value.set_index("field")["value"]
    assert facts["log"].endswith(str(Path("results") / "logs" / "broken.log"))


def test_log_outside_the_runs_results_folder_is_not_read(app, runs_db, tmp_path):
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "broken.log").write_text("Traceback: secret")
    with duckdb.connect(str(runs_db)) as con:
        con.execute("UPDATE runs SET log_path = ? WHERE run_id = 'broken'", [str(stray / "broken.log")])
    at = app(runs_db, "jobs")
    at.selectbox(key="jobs-pick").set_value("broken").run()
    assert not any("secret" in c.value for c in at.code)
    assert any("not readable here" in c.value for c in at.caption)


# -------------------------------------------------------------------- cases page


def _captions(at) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def test_case_view_labels_an_empty_map_and_a_failed_file_check(app, tiny_explained, tmp_path):
    db = tmp_path / "empty-map.duckdb"
    shutil.copy(tiny_explained["db"], db)
    run = tiny_explained["run_id"]
    results = tiny_explained["root"] / "results"
    with duckdb.connect(str(db)) as con:
        # the copied run's maps lie in this results folder; point the run there
        con.execute("UPDATE runs SET out_dir = ? WHERE run_id = ?", [str(results / "runs" / run), run])
        image_id, target_label, gae_path = con.execute(
            "SELECT image_id, target_label, heatmap_path FROM explanations WHERE run_id = ? AND method = 'gae' "
            "ORDER BY image_id LIMIT 1", [run]).fetchone()
        n = con.execute("SELECT grid_h * grid_w FROM explanations WHERE run_id = ? AND image_id = ? "
                        "AND method = 'lrp'", [run, image_id]).fetchone()[0]
        con.execute("UPDATE explanations SET grid = ?, positive_sum = 0, heatmap_sha256 = ? "
                    "WHERE run_id = ? AND image_id = ? AND method = 'lrp'", [[0.0] * n, "0" * 64, run, image_id])
        gae = Path(gae_path) if Path(gae_path).is_absolute() else results / gae_path
        con.execute("UPDATE explanations SET heatmap_path = ? WHERE run_id = ? AND image_id = ? AND method = 'gae'",
                    [gae.relative_to(results).as_posix(), run, image_id])  # the new, relative form
    at = app(db, "cases")
    at.query_params["case"] = image_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = _captions(at)
    lrp = next(c for c in captions if c.startswith("lrp"))
    assert "SHA-256" in lrp and "token grid" in lrp
    assert f"no positive relevance for {target_label}: lrp found no evidence for this class in this image" in lrp
    gae_caption = next(c for c in captions if c.startswith("gae"))
    assert "token grid" not in gae_caption and "no positive relevance" not in gae_caption, \
        "a relative path under the results folder is read"


def test_gallery_with_an_empty_map_says_so(app, tiny_explained, tmp_path, texts):
    db = tmp_path / "empty-gallery.duckdb"
    shutil.copy(tiny_explained["db"], db)
    run = tiny_explained["run_id"]
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE explanations SET grid = list_transform(grid, lambda x: 0.0::FLOAT), positive_sum = 0 "
                    "WHERE run_id = ? AND method = 'lrp'", [run])
        for table in ("zone_summaries", "gallery_rows"):  # as write_explanation_batch drops them
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run])
    at = app(db, "cases")
    next(m for m in at.multiselect if m.label == "Methods side by side").set_value(["lrp"]).run()
    assert not at.exception
    assert "lrp: no positive relevance" in texts(at)


def test_jobs_page_reads_a_v3_database_without_log_path(app, tmp_path, texts):
    from retcore.storage.migrations import MIGRATIONS

    db = tmp_path / "v3.duckdb"
    with duckdb.connect(str(db)) as con:  # written by the v3 code; the dashboard never migrates
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
        for number, statements in enumerate(MIGRATIONS[:3], start=1):
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
        con.execute("INSERT INTO runs (run_id, job, status, started_at, finished_at, error) VALUES "
                    "('old', 'predict', 'failed', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', 'ValueError: x')")
    at = app(db, "jobs")
    assert at.dataframe[0].value["status"].tolist() == ["failed"]
    assert "No log was recorded" in texts(at)
