"""The Overview shows the ECE of ``retcore.stats.calibration_error`` with its interval."""
from __future__ import annotations


def test_overview_shows_ece_with_its_interval(app, tiny_pipeline):
    at = app(tiny_pipeline["db"])
    metrics = list(at.metric)
    labels = [m.label for m in metrics]
    ece = metrics[labels.index("ECE")]
    assert ece.value != "–"
    # each headline metric is followed by its "95% CI low–high" caption, ECE's included
    captions = [c.value for c in at.caption if c.value.startswith("95% CI")]
    assert len(captions) == len(labels), (labels, captions)
    low, high = (float(x) for x in captions[labels.index("ECE")].removeprefix("95% CI ").split("–"))
    assert 0.0 <= low < high <= 1.0
    assert "bootstrap" in ece.proto.help
    assert any(c.value.startswith(f"ECE {ece.value} [") for c in at.caption), "reliability caption lacks the interval"
