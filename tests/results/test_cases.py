"""Gallery rows (with the gallery drift), one case, maps of a few images, reference photos."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retcore.results import cases


def _all_rows(con, run, classes, method="lrp"):
    parts = [cases.case_list(con, run, "test", method, c, kind, "most confident", classes, limit=1000)
             for c in classes for kind in ("TP", "FN")]
    return pd.concat(parts, ignore_index=True)


def test_gallery_drift_is_the_total_variation_from_the_class_mean(explained_con, run_info):
    run, classes = run_info
    rows = _all_rows(explained_con, run, classes)
    labelled = explained_con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test' "
                                     "AND label IS NOT NULL", [run]).fetchone()[0]
    assert len(rows) == labelled and rows["image_id"].is_unique  # TP + FN of every class = every image
    # by hand: thirds mass shares of the predicted class, class means by true label
    p = explained_con.execute("SELECT image_id, label, pred FROM predictions WHERE run_id = ? AND split = 'test' "
                              "AND label IS NOT NULL", [run]).df()
    z = explained_con.execute("SELECT image_id, target, zone, mass_share, score FROM zone_scores WHERE run_id = ? "
                              "AND method = 'lrp' AND zone_set = 'thirds'", [run]).df()
    p["target"] = [classes.index(c) for c in p["pred"]]
    wide = p.merge(z, on=["image_id", "target"]).pivot_table(index=["image_id", "label"], columns="zone",
                                                               values="mass_share").reset_index()
    means = wide.groupby("label")[["center", "left", "right"]].transform("mean")
    wide["drift"] = 0.5 * (wide[["center", "left", "right"]] - means).abs().sum(axis=1)
    got = rows.set_index("image_id")["drift"]
    assert np.allclose(got.loc[wide["image_id"]].to_numpy(), wide["drift"].to_numpy())
    assert ((got >= 0) & (got <= 1)).all()
    center = z[z["zone"] == "center"].merge(p, on=["image_id", "target"]).set_index("image_id")["score"]
    assert np.allclose(rows.set_index("image_id")["center"].loc[center.index], center)


def test_gallery_orders_kinds_and_paging(explained_con, run_info):
    run, classes = run_info
    rows = _all_rows(explained_con, run, classes)
    cls = rows["label"].value_counts().index[0]
    ranked = cases.case_list(explained_con, run, "test", "lrp", cls, "TP", "highest drift", classes, limit=50)
    assert ranked["drift"].is_monotonic_decreasing
    assert (ranked["label"] == cls).all() and (ranked["pred"] == cls).all()
    fp = cases.case_list(explained_con, run, "test", "lrp", cls, "FP", "lowest confidence", classes)
    assert ((fp["label"] != cls) & (fp["pred"] == cls)).all() and fp["confidence"].is_monotonic_increasing
    page = cases.case_list(explained_con, run, "test", None, cls, "FN", "most confident", classes, limit=1, offset=1)
    assert len(page) <= 1 and page["drift"].isna().all()
    if len(page):
        assert page["n_total"].iloc[0] >= 2 and page["path"].iloc[0].startswith("/")
    with pytest.raises(ValueError, match="kind"):
        cases.case_list(explained_con, run, "test", None, cls, "TN", "most confident", classes)


def test_one_case_and_a_few_maps(explained_con, run_info):
    run, classes = run_info
    image_id = explained_con.execute("SELECT image_id FROM predictions WHERE run_id = ? AND split = 'test' "
                                     "ORDER BY image_id LIMIT 1", [run]).fetchone()[0]
    detail = cases.case_detail(explained_con, run, image_id)
    assert set(detail) == {"image", "prediction", "landmarks", "quality", "maps", "zones"}
    assert detail["image"]["path"].iloc[0].startswith("/") and len(detail["prediction"]) == 1
    assert set(detail["maps"]["method"]) == {"gae", "lrp"} and not detail["zones"].empty
    grids = cases.image_grids(explained_con, run, [image_id], "gae", classes)
    assert len(grids) == 1 and grids["target"].iloc[0] == classes.index(detail["prediction"]["pred"].iloc[0])
    assert cases.image_grids(explained_con, run, [], "gae", classes).empty
    assert len(cases.landmarks_for(explained_con, [image_id])) == 1
    ref = cases.reference_images(explained_con, run, "test", classes[0], limit=3)
    assert len(ref) <= 3 and {"path", "fov_cx", "disc_r"} <= set(ref.columns)
