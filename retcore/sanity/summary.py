"""Aggregating sanity-check similarities over images, and the verdict per method.

Input: the long rows of ``sanity_checks`` (one per method, mode, step, image) with columns
``method, mode, step, layer, image_id, spearman, ssim``.

- :func:`summarize`: per (method, mode, step) the mean similarity over the images with a
  percentile-bootstrap interval (:func:`retcore.stats.bootstrap_mean`, images resampled,
  NaN values dropped).
- :func:`verdicts`: per method, at the **fully randomised step** (cascading mode, the step
  that randomises ``patch_embed``, i.e. every layer), the method is **flagged** when the
  interval's lower end of the Spearman correlation or of the SSIM is above
  :data:`SURVIVAL_THRESHOLD`: its maps survive the randomisation of every weight, so they
  show the input (edges, bright regions) more than what the model learned. A method whose
  similarity falls to ~0 passes. Methods without that step (independent mode only, or a
  job still running) get ``flagged = NA``. ``test='data'`` gives the same verdict for the
  data randomisation rows (the model fine-tuned on shuffled labels, :mod:`retcore.sanity.labels`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from retcore.sanity.labels import DATA_LAYER, DATA_MODE
from retcore.stats import N_BOOT, bootstrap_mean

__all__ = ["FULLY_RANDOMIZED", "MEASURES", "SURVIVAL_THRESHOLD", "TESTS", "summarize", "verdicts"]

SURVIVAL_THRESHOLD = 0.5
"""A map "survives" randomisation when the lower end of its similarity interval (Spearman of
absolute maps or SSIM) at the fully randomised step is above this. Adebayo et al. read the
curves and give no cut-off; 0.5 is this product's: above it the map keeps most of its rank
order (or structure) although no trained weight is left, while maps that depend on the model
fall to about 0 (on the demo model every token-grid method ends within [-0.2, 0.15])."""

FULLY_RANDOMIZED = "patch_embed"
"""The layer group whose cascading step leaves no trained weight (the last group)."""

#: The two randomisation tests: name -> (mode, layer) of the step a verdict reads, and its wording.
TESTS = {"model": ("cascading", FULLY_RANDOMIZED, "the randomisation check", "with every layer randomised"),
         "data": (DATA_MODE, DATA_LAYER, "the data randomisation check", "against the model trained on shuffled labels")}

MEASURES = ("spearman", "ssim")
"""Similarity columns of ``sanity_checks``."""

_SUMMARY_COLUMNS = ["method", "mode", "step", "layer", "n_images"] + [
    f"{m}{s}" for m in MEASURES for s in ("", "_low", "_high")]


def summarize(rows: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Mean similarity per (method, mode, step) with bootstrap intervals.

    Args:
        rows: long rows with ``method, mode, step, layer, image_id, spearman, ssim``.
        n_boot, seed, level: of the percentile bootstrap over images.

    Returns:
        One row per (method, mode, step), sorted so: method, mode, step, layer, n_images
        (images with a row), spearman, spearman_low, spearman_high, ssim, ssim_low, ssim_high.
    """
    if rows.empty:
        return pd.DataFrame(columns=_SUMMARY_COLUMNS)
    out = []
    for (method, mode, step), group in rows.groupby(["method", "mode", "step"], sort=True):
        row = {"method": method, "mode": mode, "step": int(step), "layer": str(group["layer"].iloc[0]),
               "n_images": int(group["image_id"].nunique())}
        for measure in MEASURES:
            est = bootstrap_mean(group[measure].to_numpy(dtype=np.float64), n_boot=n_boot, seed=seed, level=level)
            row.update({measure: est.value, f"{measure}_low": est.low, f"{measure}_high": est.high})
        out.append(row)
    return pd.DataFrame(out, columns=_SUMMARY_COLUMNS)


def verdicts(summary: pd.DataFrame, threshold: float = SURVIVAL_THRESHOLD, *, test: str = "model") -> pd.DataFrame:
    """One verdict per method from :func:`summarize`'s output.

    Args:
        summary: :func:`summarize`'s output.
        threshold: :data:`SURVIVAL_THRESHOLD` by default.
        test: ``'model'`` (the fully randomised cascading step) or ``'data'`` (the model
            fine-tuned on shuffled labels).

    Returns:
        method, step, layer (the step read), n_images, spearman(+_low, _high),
        ssim(+_low, _high), flagged (True = maps survive randomisation, False = pass, NA = that
        step was not computed), verdict (one line of text).
    """
    if test not in TESTS:
        raise ValueError(f"unknown randomisation test {test!r}: choose one of {', '.join(TESTS)}")
    mode, layer, name, where = TESTS[test]
    columns = ["method", "step", "layer", "n_images", *[c for c in _SUMMARY_COLUMNS if c.startswith(MEASURES)],
               "flagged", "verdict"]
    out = []
    for method in dict.fromkeys(summary["method"]) if len(summary) else []:
        last = summary[(summary["method"] == method) & (summary["mode"] == mode) & (summary["layer"] == layer)]
        if last.empty:
            hint = ("run `retcore sanity --mode cascading`" if test == "model"
                    else "run `retcore study shortcut --shuffled-labels`")
            out.append({"method": method, "flagged": pd.NA, "verdict": f"{name} has not been run: {hint}"})
            continue
        row = last.iloc[0].to_dict()
        survives = [m for m in MEASURES if np.isfinite(row[f"{m}_low"]) and row[f"{m}_low"] > threshold]
        row["flagged"] = bool(survives)
        text = (f"spearman {row['spearman']:.2f} [{row['spearman_low']:.2f}, {row['spearman_high']:.2f}], "
                f"ssim {row['ssim']:.2f} [{row['ssim_low']:.2f}, {row['ssim_high']:.2f}] {where}")
        row["verdict"] = (f"fails {name} ({' and '.join(survives)} stays above {threshold:g}): "
                          if survives else f"passes {name}: ") + text
        out.append({k: row.get(k) for k in columns})
    return pd.DataFrame(out, columns=columns)
