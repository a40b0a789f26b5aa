"""The shortcut study's reads."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from retcore.errors import RetcoreError
from retcore.results import study


def test_per_image_measurements(explained_con, run_info):
    run, classes = run_info
    frame = study.per_image(explained_con, run, "lrp")
    n = explained_con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test'",
                              [run]).fetchone()[0]
    assert len(frame) == n and frame["image_id"].is_monotonic_increasing
    assert list(frame.columns) == ["image_id", "label", "correct", "marker_mass", "marker_area", "lesion_mass",
                                   "center_score", "disc_score", "pointing_game", "mass_accuracy"]
    raw = explained_con.execute(
        "SELECT z.image_id, z.score FROM zone_scores z JOIN predictions p ON p.run_id = z.run_id "
        "AND p.image_id = z.image_id WHERE z.run_id = ? AND z.method = 'lrp' AND z.zone_set = 'thirds' "
        "AND z.zone = 'center' AND z.target = list_position(?::VARCHAR[], p.pred) - 1", [run, classes]).df()
    got = frame.set_index("image_id")["center_score"]
    assert np.allclose(got.loc[raw["image_id"]], raw["score"])
    assert frame["pointing_game"].notna().any()


def test_study_results_and_errors(explained_copy, explained_con):
    with pytest.raises(RetcoreError, match="has no finished study"):
        study.study_results(explained_con, "latest", where="db")
    db = explained_copy()
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO runs (run_id, job, status, started_at, config) VALUES "
                    "('study-1', 'study', 'succeeded', now(), '{\"shortcut\": \"glaucoma\"}')")
        rows = pd.DataFrame({"study": "shortcut", "study_run_id": "study-1", "arm": ["baseline", "guided"],
                             "seed": 0, "metric": "accuracy", "value": [0.5, 0.6], "n": 10})
        con.register("rows", rows)
        con.execute("INSERT INTO study_results BY NAME SELECT * FROM rows")
        found = study.study_results(con, "latest")
        assert found.study == "study-1" and found.config == {"shortcut": "glaucoma"}
        assert found.results["arm"].tolist() == ["baseline", "guided"]
        with pytest.raises(RetcoreError, match="no study results for 'other'"):
            study.study_results(con, "other")
