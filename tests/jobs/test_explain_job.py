"""The explain job on the tiny pipeline: rows, files, resume, errors."""
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

METHODS = ["lrp", "rollout", "lrp_pixels"]


def _q(db, sql, params=()):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def _heatmap_file(explained, stored: str) -> Path:
    """A stored heatmap path: relative to the run's results folder, or absolute when written elsewhere."""
    path = Path(stored)
    return path if path.is_absolute() else explained["run_results"] / path


@pytest.fixture(scope="module")
def explained(tiny_pipeline, tmp_path_factory):
    import shutil

    from jobs.explain import run_explain

    root = tmp_path_factory.mktemp("explained")
    db = root / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    run_explain(tiny_pipeline["run_id"], METHODS, "test", db=db, results=root / "results", batch_size=4,
                device="cpu", faithfulness_images=4)
    return {"db": db, "root": root, "run_id": tiny_pipeline["run_id"],
            "run_results": tiny_pipeline["root"] / "results"}


def test_every_test_image_gets_maps_zones_landmarks_and_quality(explained):
    db, run_id = explained["db"], explained["run_id"]
    n_test = _q(db, "SELECT count(*) AS n FROM images WHERE split = 'test'")["n"].item()
    ex = _q(db, "SELECT * FROM explanations WHERE run_id = ?", [run_id])
    assert len(ex) == n_test * len(METHODS)
    assert set(ex["method"]) == set(METHODS)
    assert (ex["grid_h"] * ex["grid_w"] == ex["grid"].map(len)).all()
    assert (ex["grid_h"] == 4).all()  # 64 px / patch 16, also for lrp_pixels (pooled to tokens)
    row = ex.iloc[0]
    data = _heatmap_file(explained, row["heatmap_path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["heatmap_sha256"]
    heat = np.load(_heatmap_file(explained, row["heatmap_path"]))
    assert heat.dtype == np.float32 and heat.shape == (64, 64)
    zones = _q(db, "SELECT * FROM zone_scores WHERE run_id = ?", [run_id])
    thirds = zones[zones["zone_set"] == "thirds"]
    assert {"center", "left", "right"} <= set(thirds["zone"])
    core = thirds[thirds["zone"].isin(["center", "left", "right"])]
    sums = core.groupby(["image_id", "method"])["mass_share"].sum()
    assert np.allclose(sums[sums > 0], 1.0, atol=1e-6)
    assert {"optic_disc", "macula", "central", "periphery"} <= set(zones.loc[zones["zone_set"] == "anatomy", "zone"])
    assert {"lesion", "disc"} <= set(zones.loc[zones["zone_set"] == "mask", "zone"])
    lm = _q(db, "SELECT * FROM landmarks")
    assert len(lm) == n_test and lm["disc_r"].gt(0).all() and set(lm["quality_grade"]) <= {"good", "usable", "poor"}
    quality = _q(db, "SELECT * FROM image_quality")
    assert {"blur", "glare", "illumination_mean", "off_centre", "fov_coverage"} <= set(quality["metric"])
    faith = _q(db, "SELECT * FROM faithfulness WHERE run_id = ?", [run_id])
    assert set(faith["method"]) == set(METHODS) and set(faith["test"]) == {"positive", "negative"}
    runs = _q(db, "SELECT status FROM runs WHERE job = 'explain'")
    assert list(runs["status"]) == ["succeeded"]


def test_rerun_computes_only_what_is_missing(explained):
    from jobs.explain import run_explain

    db, run_id = explained["db"], explained["run_id"]
    with duckdb.connect(str(db)) as con:
        victim = con.execute("SELECT image_id FROM explanations WHERE method = 'lrp' LIMIT 1").fetchone()[0]
        con.execute("DELETE FROM explanations WHERE image_id = ? AND method = 'lrp'", [victim])
        before = con.execute("SELECT count(*) FROM zone_scores").fetchone()[0]
        stamps = dict(con.execute("SELECT image_id || method, heatmap_path FROM explanations").fetchall())
    mtimes = {k: _heatmap_file(explained, p).stat().st_mtime_ns for k, p in stamps.items()}
    run_explain(run_id, METHODS, "test", db=db, results=explained["root"] / "results", batch_size=4,
                device="cpu", faithfulness_images=4)
    ex = _q(db, "SELECT image_id, method, heatmap_path FROM explanations")
    assert ((ex["image_id"] == victim) & (ex["method"] == "lrp")).sum() == 1
    assert _q(db, "SELECT count(*) AS n FROM zone_scores")["n"].item() == before
    untouched = {k: _heatmap_file(explained, p).stat().st_mtime_ns for k, p in stamps.items()}
    assert untouched == mtimes  # nothing recomputed for the other maps


def test_unknown_method_and_run_are_clear_errors(explained):
    from jobs.explain import run_explain
    from retcore.errors import RetcoreError

    with pytest.raises(RetcoreError, match="unknown explanation method"):
        run_explain(explained["run_id"], ["nope"], db=explained["db"])
    with pytest.raises(RetcoreError, match="no finetune run"):
        run_explain("missing-run", ["lrp"], db=explained["db"])


@pytest.fixture(scope="module")
def every_method(tiny_pipeline, tmp_path_factory):
    """The trained tiny run explained with every registered method (results beside its checkpoints)."""
    import shutil

    from jobs.explain import run_explain
    from retcore.explain import list_methods

    root = tmp_path_factory.mktemp("every-method")
    db = root / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    run_explain(tiny_pipeline["run_id"], list_methods(), "test", db=db, batch_size=4, device="cpu",
                faithfulness_images=0, num_workers=0)
    return {"db": db, "run_id": tiny_pipeline["run_id"], "run_results": tiny_pipeline["root"] / "results",
            "methods": list_methods()}


def test_stored_maps_keep_their_range_and_match_the_grid(every_method):
    """What is stored, not only what is computed: float32 files, finite, not constant, and pooled
    to the token grid they correlate with the database's ``grid``."""
    from retcore.zones import area_transfer

    ex = _q(every_method["db"], "SELECT * FROM explanations WHERE run_id = ?", [every_method["run_id"]])
    assert set(ex["method"]) == set(every_method["methods"])
    for row in ex.itertuples():
        assert not Path(row.heatmap_path).is_absolute()  # relative to the results folder
        heat = np.load(_heatmap_file(every_method, row.heatmap_path))
        assert heat.dtype == np.float32 and np.isfinite(heat).all(), (row.method, row.image_id)
        assert heat.std() > 0, f"{row.method} stored a constant map for {row.image_id}"
        grid = np.asarray(row.grid, np.float64).reshape(row.grid_h, row.grid_w)
        pooled = area_transfer(heat.astype(np.float64), grid.shape, "mean")
        if grid.std() > 0:
            assert np.corrcoef(pooled.ravel(), grid.ravel())[0, 1] > 0.9, (row.method, row.image_id)


def test_tiny_relevance_survives_storage(tmp_path):
    """Relevance of ~1e-13 (ViT-L lrp) is all zeros in float16; the stored file keeps it."""
    from jobs.explain import _atomic_npy

    heat = (np.random.default_rng(0).random((32, 32)) * 1e-13).astype(np.float32)
    assert not heat.astype(np.float16).any()
    _atomic_npy(tmp_path / "m.npy", heat)
    stored = np.load(tmp_path / "m.npy")
    assert stored.dtype == np.float32 and np.array_equal(stored, heat) and stored.std() > 0


def test_a_method_that_cannot_explain_the_model_is_refused_before_anything_is_stored(explained):
    from jobs.explain import run_explain
    from retcore.errors import RetcoreError

    before = _q(explained["db"], "SELECT count(*) AS n FROM explanations")["n"].item()
    with pytest.raises(RetcoreError, match=r"lrp cannot explain .*start_layer 99 is out of range.*drop it"):
        run_explain(explained["run_id"], ["lrp"], "test", db=explained["db"], start_layer=99, device="cpu",
                    num_workers=0, recompute=True)
    assert _q(explained["db"], "SELECT count(*) AS n FROM explanations")["n"].item() == before
