"""The dashboard never shows a traceback: empty databases, runs without explanations,
moved images, a job holding the lock, stale caches, odd URLs."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import duckdb
import pytest

PAGES = ["overview", "confidence", "drift", "quality", "cases", "compare", "methods", "study", "jobs"]


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    from retcore.storage.runs import open_db

    return open_db(tmp_path_factory.mktemp("empty") / "results.duckdb")


@pytest.mark.parametrize("page", PAGES)
def test_empty_database_every_page_explains(app, empty_db, page, texts):
    at = app(empty_db, page)
    assert at.info, f"{page}: no message on an empty database"
    assert "retcore" in texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_run_without_explanations_every_page_explains(app, tiny_pipeline, page, texts):
    at = app(tiny_pipeline["db"], page)
    if page in ("confidence", "drift"):
        assert "retcore explain --run" in texts(at)
    if page == "cases":
        assert "photos only" in texts(at)
        assert len(at.get("image")) >= 1


@pytest.fixture
def moved_db(tiny_explained, tmp_path):
    db = tmp_path / "moved.duckdb"
    shutil.copy(tiny_explained["db"], db)
    with duckdb.connect(str(db)) as con:
        ids = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY image_id").fetchall()]
        con.execute("UPDATE images SET path = '/nowhere/' || image_id || '.png'")
        # a path outside every dataset root that exists: must never be read
        con.execute("UPDATE images SET path = '/etc/hostname' WHERE image_id = ?", [ids[0]])
    return db


@pytest.mark.parametrize("page", ["cases", "drift"])
def test_moved_images_give_placeholders(app, moved_db, page):
    at = app(moved_db, page)
    assert len(at.get("image")) >= 1


def test_case_view_of_a_moved_image_warns(app, moved_db, texts):
    at = app(moved_db, "cases")
    next(b for b in at.button if b.label == "Open").click().run()
    assert not at.exception
    assert "not readable at its recorded path" in texts(at)


def test_only_files_inside_recorded_roots_are_read(tiny_explained, tmp_path, monkeypatch):
    monkeypatch.setenv("RETCORE_DB", str(tiny_explained["db"]))
    from dashboard import images

    roots = images.allowed_roots()
    assert roots and all(r.is_dir() for r in roots)
    inside = next(p for p in roots[0].rglob("*.png"))
    assert images.is_allowed(inside) == inside.resolve()
    assert images.is_allowed("/etc/hostname") is None
    assert images.is_allowed(roots[0] / ".." / ".." / "etc" / "hostname") is None
    link = roots[0] / "escape.png"
    try:
        link.symlink_to("/etc/hostname")
        assert images.is_allowed(link) is None, "a link leaving the root must not be followed"
    finally:
        link.unlink(missing_ok=True)
    assert images.is_allowed(None) is None and images.load_photo("/etc/passwd") is None
    tile = images.render_case("/etc/passwd", None, None, 64, size=96)
    assert tile.shape == (96, 96, 3)


LOCKER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("UPDATE runs SET progress = progress")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_job_holding_the_lock_shows_a_note_not_a_crash(app, tiny_pipeline, tmp_path):
    db = tmp_path / "busy.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        at = app(db)
        assert any("being written" in w.value for w in at.warning)
    finally:
        proc.kill()
        proc.wait()
    at = app(db)
    assert at.title[0].value == "Overview"


def test_cached_queries_refresh_when_the_database_changes(tiny_pipeline, tmp_path, monkeypatch):
    db = tmp_path / "cache.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    monkeypatch.setenv("RETCORE_DB", str(db))
    from dashboard import data

    before = data.query("SELECT count(*) AS n FROM runs")["n"].item()
    assert data.query("SELECT count(*) AS n FROM runs")["n"].item() == before
    time.sleep(0.01)
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO runs (run_id, job, status, started_at) VALUES ('x', 'predict', 'running', now())")
    assert data.query("SELECT count(*) AS n FROM runs")["n"].item() == before + 1


def test_url_parameters_set_the_filters(app, tiny_explained):
    params = {"run": tiny_explained["run_id"], "method": "gae", "split": "val", "class": "glaucoma"}
    at = app(tiny_explained["db"], params=params)
    side = at.sidebar
    assert side.selectbox(key="f_method").value == "gae"
    assert side.selectbox(key="f_split").value == "val"
    assert side.selectbox(key="f_class").value == "glaucoma"
    side.selectbox(key="f_method").set_value("lrp").run()
    assert at.query_params["method"] in ("lrp", ["lrp"])


def test_unknown_url_values_fall_back_to_defaults(app, tiny_explained):
    params = {"run": "no-such-run", "method": "x' OR 1=1 --", "split": "nope", "class": "'; DROP TABLE runs; --"}
    at = app(tiny_explained["db"], params=params)
    side = at.sidebar
    assert side.selectbox(key="f_run").value == tiny_explained["run_id"]
    assert side.selectbox(key="f_split").value == "test"
    assert side.selectbox(key="f_method").value == "lrp"
