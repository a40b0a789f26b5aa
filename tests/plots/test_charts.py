"""Chart builders: specs through ``to_dict()`` (marks, encodings, theme)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import retcore.plots as rp
from retcore import stats
CLASSES = ["normal", "cataract", "diabetic_retinopathy", "glaucoma"]


def _marks(spec: dict) -> list[str]:
    """Every mark type in a (possibly layered / faceted / concatenated) spec."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "mark" in node:
                mark = node["mark"]
                out.append(mark["type"] if isinstance(mark, dict) else mark)
            for key in ("layer", "hconcat", "vconcat", "concat"):
                for child in node.get(key, []):
                    walk(child)
            if "spec" in node:
                walk(node["spec"])

    walk(spec)
    return out


def _encodings(spec: dict) -> list[dict]:
    out: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            if "encoding" in node:
                out.append(node["encoding"])
            for key in ("layer", "hconcat", "vconcat", "concat"):
                for child in node.get(key, []):
                    walk(child)
            if "spec" in node:
                walk(node["spec"])

    walk(spec)
    return out


def _field(enc: dict, channel: str) -> str | None:
    value = enc.get(channel)
    return value.get("field") if isinstance(value, dict) else None


def _data(spec: dict) -> list[dict]:
    """Inline rows of the spec (Altair keeps them in ``datasets``)."""
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def test_theme_is_registered_enabled_and_in_every_spec(predictions):

    assert rp.theme_registry().active == rp.THEME_NAME
    spec = rp.confusion_matrix_chart(pd.DataFrame({"true_label": ["a"], "pred_label": ["a"], "count": [1]})).to_dict()
    config = spec["config"]
    assert config["range"]["category"] == list(rp.OKABE_ITO)
    assert config["view"]["stroke"] is None
    assert config["axis"]["labelFontSize"] >= 10 and config["title"]["fontSize"] >= 12
    with rp.theme_registry().enable("default"):
        assert rp.chart_spec(rp.heatmap_grid_chart(np.eye(2)))["config"]["view"]["stroke"] is None


def test_confusion_matrix_fills_missing_cells_and_labels_row_shares():
    confusion = pd.DataFrame({"true_label": ["a", "a", "b"], "pred_label": ["a", "b", "b"], "count": [3, 1, 2]})
    spec = rp.confusion_matrix_chart(confusion, classes=["a", "b"]).to_dict()
    assert _marks(spec) == ["rect", "text"]
    rect, text = spec["layer"]
    assert rect["encoding"]["color"]["field"] == "share"
    assert text["encoding"]["text"]["field"] == "label"
    assert _field(rect["encoding"], "x") == "pred_label" and _field(rect["encoding"], "y") == "true_label"
    rows = {(r["true_label"], r["pred_label"]): r for r in _data(spec)}
    assert len(rows) == 4 and rows[("b", "a")]["count"] == 0
    assert rows[("a", "a")]["share"] == pytest.approx(0.75) and rows[("a", "a")]["label"] == "3\n75%"


def test_confusion_matrix_reads_the_stats_table(predictions):
    table = stats.confusion_table(predictions["label"], predictions["pred"], CLASSES)
    rows = _data(rp.confusion_matrix_chart(table, classes=CLASSES).to_dict())
    assert len(rows) == 16 and sum(r["count"] for r in rows) == len(predictions)


def test_per_class_metric_bars_have_interval_error_bars(predictions):
    per_class = stats.per_class_metrics(predictions["label"], predictions["pred"], CLASSES, n_boot=50)
    spec = rp.per_class_metric_chart(per_class, metrics_order=["recall", "precision"]).to_dict()
    assert _marks(spec) == ["bar", "errorbar"]
    bars, errs = spec["layer"]
    assert _field(bars["encoding"], "xOffset") == "metric" and _field(errs["encoding"], "xOffset") == "metric"
    assert errs["encoding"]["y"]["field"] == "low" and errs["encoding"]["y2"]["field"] == "high"
    rows = _data(spec)
    assert {r["metric"] for r in rows} == {"recall", "precision"} and len(rows) == 8
    assert all(r["low"] <= r["value"] <= r["high"] for r in rows)
    db_rows = pd.DataFrame({"metric": ["f1", "f1", "accuracy"], "class_name": ["a", "b", ""],
                            "value": [0.5, 0.7, 0.6]})
    spec = rp.per_class_metric_chart(db_rows).to_dict()
    assert _marks(spec) == ["bar"] and {r["class_name"] for r in _data(spec)} == {"a", "b"}


def test_reliability_chart_from_stats_curve(predictions):
    bins = stats.reliability_curve(predictions["confidence"], predictions["correct"], n_bins=10)
    spec = rp.reliability_chart(bins).to_dict()
    assert _marks(spec) == ["line", "errorbar", "line", "point"]
    diagonal, errs, _, points = spec["layer"]
    assert [r["x"] for r in spec["datasets"][diagonal["data"]["name"]]] == [0.0, 1.0]
    assert errs["encoding"]["y"]["field"] == "accuracy_low" and points["encoding"]["size"]["field"] == "count"
    assert sum(r["count"] for r in spec["datasets"][spec["layer"][1]["data"]["name"]]) == len(predictions)


def test_roc_chart_puts_auc_in_the_legend(predictions):
    probs = np.stack(predictions["probs"])
    roc = stats.roc_curves(predictions["label"], probs, CLASSES)
    auroc = stats.auroc_table(predictions["label"], probs, CLASSES, n_boot=50)
    spec = rp.roc_chart(roc, auroc=auroc, classes=CLASSES).to_dict()
    assert _marks(spec) == ["line", "line"]
    curves = spec["layer"][1]["encoding"]
    assert curves["x"]["field"] == "fpr" and curves["y"]["field"] == "tpr" and curves["order"]["field"] == "step"
    assert any(c.startswith("glaucoma (AUC ") and "[" in c for c in curves["color"]["sort"])


def test_training_curves_two_panels_and_best_epoch():
    epochs = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.3, 1.0, 0.8], "val_loss": [1.2, 1.1, 1.0],
                           "lr": [1e-3, 5e-4, 1e-4], "val_accuracy": [0.4, 0.5, 0.6], "val_macro_f1": [0.3, 0.4, 0.5],
                           "is_best": [False, False, True]})
    spec = rp.training_curves_chart(epochs).to_dict()
    assert len(spec["hconcat"]) == 2
    assert _marks(spec) == ["rule", "line", "rule", "line"]
    series = {r.get("series") for r in _data(spec)}
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1"} <= series and "lr" not in series


def test_fit_band_covers_the_fit_and_follows_a_known_line():
    x = np.linspace(0, 1, 50)
    y = 2 * x + 1 + np.random.default_rng(0).normal(scale=0.05, size=50)
    band = rp.fit_band(x, y)
    assert (band["lo"] <= band["fit"]).all() and (band["fit"] <= band["hi"]).all()
    assert band["fit"].iloc[0] == pytest.approx(1, abs=0.05) and band["fit"].iloc[-1] == pytest.approx(3, abs=0.05)
    assert rp.fit_band([1, 1, 1], [1, 2, 3]).empty and rp.fit_band([1, 2], [1, 2]).empty


def test_zone_confidence_scatter_is_faceted_with_band_line_and_points(zones):
    center = zones[zones["zone"] == "center"]
    spec = rp.zone_confidence_chart(center, notes={"glaucoma": "rho=0.1"}).to_dict()
    assert spec["facet"]["field"] == "panel" and spec["columns"] == 4
    assert _marks(spec) == ["area", "line", "point", "text"]
    area, line, points, _ = spec["spec"]["layer"]
    assert area["encoding"]["y"]["field"] == "lo" and area["encoding"]["y2"]["field"] == "hi"
    assert points["encoding"]["color"]["field"] == "outcome"
    assert points["encoding"]["color"]["scale"]["range"][:2] == [rp.CORRECT_COLORS["correct"],
                                                                  rp.CORRECT_COLORS["incorrect"]]
    rows = _data(spec)
    assert {r["layer"] for r in rows} == {"point", "fit", "note"}
    assert sum(r["layer"] == "point" for r in rows) == len(center)


@pytest.mark.parametrize("kind,mark", [("box", "boxplot"), ("density", "area")])
def test_zone_distribution_facets_by_zone(zones, kind, mark):
    spec = rp.zone_distribution_chart(zones, kind=kind).to_dict()
    assert spec["facet"]["column"]["field"] == "zone"
    assert _marks(spec) == [mark, "rule"]
    with pytest.raises(ValueError, match="kind"):
        rp.zone_distribution_chart(zones, kind="violin")


def test_heatmap_grid_keeps_shape_and_aspect():
    grid = np.arange(12, dtype=float).reshape(3, 4)
    spec = rp.heatmap_grid_chart(grid, size=200).to_dict()
    assert spec["mark"]["type"] == "rect"
    assert spec["encoding"]["x"]["field"] == "col" and spec["encoding"]["y"]["field"] == "row"
    assert spec["width"] == 200 and spec["height"] == 150
    rows = _data(spec)
    assert len(rows) == 12 and next(r for r in rows if r["row"] == 2 and r["col"] == 3)["value"] == 11.0


def test_drift_matrix_writes_p_values_and_centres_signed_effects():
    frame = pd.DataFrame({"zone": ["center", "left", "center", "left"], "class_name": ["a", "a", "b", "b"],
                          "effect": [0.4, -0.2, 0.05, 0.0], "p": [0.0004, 0.2, 0.03, 1.0]})
    spec = rp.drift_matrix_chart(frame, x="zone", y="class_name", value="effect", p="p").to_dict()
    assert _marks(spec) == ["rect", "text", "text"]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domainMid"] == 0
    assert spec["layer"][2]["mark"]["fontWeight"] == "bold"
    labels = {r["label"] for r in _data(spec)}
    assert {"p<0.001*", "p=0.20", "p=0.030*", "p=1.00"} == labels


def test_drift_matrix_of_stats_pairs_can_be_mirrored(zones):
    center = zones[zones["zone"] == "center"]
    drift = stats.drift_matrix(center["score"].to_numpy(), center["class_name"].to_numpy(), n_permutations=50)
    spec = rp.drift_matrix_chart(drift, mirror=True, p="p_holm").to_dict()
    rows = _data(spec)
    assert len(rows) == 2 * len(drift) == 12
    assert "scheme" in spec["layer"][0]["encoding"]["color"]["scale"]  # distances >= 0: sequential


def test_stratum_accuracy_points_with_intervals_and_facets(predictions):
    frame = predictions.assign(grade=np.where(np.arange(len(predictions)) % 3 == 0, "poor", "good"))
    table = stats.accuracy_by_stratum(frame, "grade").table
    plain = rp.stratum_accuracy_chart(table).to_dict()
    assert _marks(plain) == ["errorbar", "point"]
    bars = plain["layer"][0]["encoding"]
    assert bars["x"]["field"] == "low" and bars["x2"]["field"] == "high"
    both = pd.concat([table.assign(metric="grade"), table.assign(metric="copy")])
    faceted = rp.stratum_accuracy_chart(both, facet="metric").to_dict()
    assert faceted["facet"]["row"]["field"] == "metric"
    coloured = rp.stratum_accuracy_chart(both, color="metric").to_dict()
    assert coloured["layer"][1]["encoding"]["yOffset"]["field"] == "metric"


def test_paired_difference_forest_and_dumbbell():
    frame = pd.DataFrame({"metric": ["accuracy", "macro_f1"], "difference": [0.05, -0.01],
                          "low": [0.01, -0.04], "high": [0.09, 0.02], "p_value": [0.01, 0.6]})
    spec = rp.paired_difference_chart(frame).to_dict()
    assert _marks(spec) == ["rule", "errorbar", "point", "text"]
    assert {r["interval"] for r in _data(spec)} == {"excludes 0", "includes 0"}
    long = pd.DataFrame({"metric": ["accuracy"] * 2, "run": ["A", "B"], "value": [0.7, 0.75]})
    dumbbell = rp.dumbbell_chart(long).to_dict()
    assert _marks(dumbbell) == ["rule", "point"]


def test_specs_are_json_serialisable(predictions, zones):
    charts = [rp.heatmap_grid_chart(np.full((2, 2), np.nan)),
              rp.zone_confidence_chart(zones[zones["zone"] == "left"])]
    for chart in charts:
        json.dumps(chart.to_dict(), allow_nan=False)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="count"):
        rp.confusion_matrix_chart(pd.DataFrame({"true_label": ["a"], "pred_label": ["a"]}))


def test_every_class_name_is_labelled_on_class_axes():
    """Vega hid the labels of rotated class names that overlapped (only 'cataract' and 'normal' were shown)."""
    m = pd.DataFrame({"class_name": CLASSES, "precision": [1, 1, .5, .5], "recall": [1, 1, .4, .6],
                      "f1": [1, 1, .45, .55]})
    cm = pd.DataFrame([(a, b, 3) for a in CLASSES for b in CLASSES], columns=["true_label", "pred_label", "count"])
    for chart in (rp.per_class_metric_chart(m), rp.confusion_matrix_chart(cm)):
        text = json.dumps(chart.to_dict())
        assert '"labelOverlap": false' in text
