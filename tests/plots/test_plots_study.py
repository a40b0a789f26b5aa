"""The shortcut-study chart."""
from __future__ import annotations

import pandas as pd

from retcore.plots import study_arms_chart


def test_study_arms_chart_spec() -> None:
    summary = pd.DataFrame({"metric": ["accuracy", "accuracy", "marker_ratio", "marker_ratio"],
                            "arm": ["baseline", "guided"] * 2, "mean": [0.7, 0.8, 5.0, 1.2],
                            "low": [0.6, 0.75, 3.0, 0.9], "high": [0.8, 0.85, 7.0, 1.5], "seeds": 3})
    seeds = pd.DataFrame({"metric": "accuracy", "arm": ["baseline", "guided"], "seed": [0, 0],
                          "value": [0.7, 0.8]})
    spec = study_arms_chart(summary, seeds, metrics=["marker_ratio", "accuracy"]).to_dict()
    assert spec["facet"]["field"] == "metric" and spec["facet"]["sort"] == ["marker_ratio", "accuracy"]
    marks = [layer["mark"]["type"] for layer in spec["spec"]["layer"]]
    assert marks == ["errorbar", "point", "point"]
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert {r["kind"] for r in spec["datasets"][next(iter(spec["datasets"]))]} == {"mean", "seed"}


def test_study_arms_chart_draws_only_the_metrics_asked_for_and_any_number_of_arms() -> None:
    arms = ["baseline", "guided: anatomy/relevance x1", "guided: center/grad_x_input x1"]
    summary = pd.DataFrame({"metric": ["accuracy"] * 3 + ["marker_ratio"] * 3, "arm": arms * 2,
                            "mean": [0.7, 0.8, 0.75, 5.0, 1.2, 2.0], "low": 0.0, "high": 9.0, "seeds": 3})
    spec = study_arms_chart(summary, metrics=["marker_ratio"], arms=arms).to_dict()
    rows = spec["datasets"][next(iter(spec["datasets"]))]
    assert {r["metric"] for r in rows} == {"marker_ratio"} and spec["facet"]["sort"] == ["marker_ratio"]
    colour = spec["spec"]["layer"][0]["encoding"]["color"]["scale"]
    assert colour["domain"] == arms and len(set(colour["range"])) == 3
