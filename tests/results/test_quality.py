"""The Image quality page's tables."""
from __future__ import annotations

from retcore.results import quality


def test_quality_frame_and_tables(explained_con, run_info):
    run, classes = run_info
    frame = quality.quality_frame(explained_con, run, "test", "lrp", "thirds", "center", classes)
    labelled = explained_con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test' "
                                     "AND label IS NOT NULL", [run]).fetchone()[0]
    assert len(frame) == labelled and frame["score"].notna().any() and frame["value"].notna().all()
    no_method = quality.quality_frame(explained_con, run, "test", None, "thirds", "center", classes)
    assert no_method["score"].isna().all()
    res = quality.quality(explained_con, run, "test", "lrp", "center", classes, None, "blur", "quantile", 2,
                          n_permutations=19)
    assert res["n"] == labelled and len(res["order"]) == 2
    assert res["accuracy"]["n"].sum() == labelled
    assert res["scores"]["stratum"].tolist() == res["order"]
    if not res["drift"].empty:
        assert set(res["drift"]["zone"]) <= {"center", "left", "right"}
    graded = quality.quality(explained_con, run, "test", None, "center", classes, None, "grade", "label", 3)
    assert set(graded["order"]) <= {"good", "usable", "poor"} and graded["scores"].empty
