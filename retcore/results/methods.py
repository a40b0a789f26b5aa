"""The Methods page's reads: localisation against ground-truth masks per method, and one plain
verdict per method from the sanity checks and the faithfulness summary.

``localisation`` (``retcore explain``, where an image has ground-truth masks) holds per (run,
image, method, target, mask) the pointing game, relevance mass accuracy and relevance rank
accuracy of the map (:func:`retcore.evaluate.localisation_scores`). The readers here use the
explained-class map of each image (:mod:`retcore.results.explained`). A database without the
table reads as empty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from retcore.results.executor import Source, frame, tables
from retcore.results.explained import explained_target
from retcore.results.runs import run_classes
from retcore.stats import N_BOOT, bootstrap_mean

__all__ = ["LOCALISATION_MEASURES", "LOCALISATION_SUMMARY_COLUMNS", "MethodsReport", "default_setting",
           "faithfulness_line", "localisation_summary", "method_costs", "method_verdicts", "methods_report"]

#: Columns of ``localisation`` that score a map against a mask (1 = all relevance on the mask).
LOCALISATION_MEASURES = ("pointing_game", "mass_accuracy", "rank_accuracy")
#: Columns of :func:`localisation_summary`.
LOCALISATION_SUMMARY_COLUMNS = ["method", "mask", "measure", "n_images", "value", "low", "high"]

_LOCALISATION = """
SELECT l.method, l.mask, l.image_id, {measures}
FROM localisation l JOIN predictions p ON p.run_id = l.run_id AND p.image_id = l.image_id
WHERE l.run_id = ? AND p.split = ? AND l.method = ? AND {target}
ORDER BY l.mask, l.image_id
"""


def _localisation_methods(q: Source, run: str) -> list[str]:
    return frame(q, "SELECT DISTINCT method FROM localisation WHERE run_id = ? ORDER BY method", (run,))[
        "method"].tolist()


def localisation_summary(q: Source, run: str, split: str = "test", *, methods: list[str] | None = None,
                         n_boot: int = N_BOOT, level: float = 0.95) -> pd.DataFrame:
    """Mean localisation per (method, mask, measure) of ``run`` on ``split`` with a percentile-bootstrap
    interval over images (columns :data:`LOCALISATION_SUMMARY_COLUMNS`; ``measure`` one of
    :data:`LOCALISATION_MEASURES`), from each image's explained-class map. Empty when the run has no
    localisation rows (its images have no ground-truth masks, or it was not explained)."""
    if "localisation" not in tables(q):
        return pd.DataFrame(columns=LOCALISATION_SUMMARY_COLUMNS)
    classes = run_classes(q, run)
    out = []
    for method in _localisation_methods(q, run):
        if methods is not None and method not in methods:
            continue
        target, params = explained_target(q, run, method, classes, "l.target")
        rows = frame(q, _LOCALISATION.format(measures=", ".join(LOCALISATION_MEASURES), target=target),
                     (run, split, method, *params))
        for mask, group in rows.groupby("mask", sort=True):
            for measure in LOCALISATION_MEASURES:
                values = group[measure].to_numpy(np.float64)
                n = int(np.isfinite(values).sum())
                if n == 0:
                    continue
                est = bootstrap_mean(values, n_boot=n_boot, seed=0, level=level)
                out.append({"method": method, "mask": mask, "measure": measure, "n_images": n,
                            "value": est.value, "low": est.low, "high": est.high})
    return pd.DataFrame(out, columns=LOCALISATION_SUMMARY_COLUMNS)


def faithfulness_line(row: pd.Series | dict) -> str:
    """One faithfulness summary row as plain words: "beats random on deletion_morf by 0.012 [0.004,
    0.020]" (the AUC gain over the random map on the test's better side, with its 95% interval),
    "is worse than random on ..." or "does not beat random on ... (gain -0.001 [...])", each with
    the Wilcoxon p when the row has one, and the reason when the interval alone excludes 0. Beating
    and losing follow the stored ``verdict`` (interval, Wilcoxon p < 0.05 and a difference of at
    least 0.001); a row without one is worse when its interval lies below 0."""
    sign = -1.0 if row["better"] == "lower" else 1.0
    gain = sign * float(row["difference"])
    ends = sorted((sign * float(row["difference_low"]), sign * float(row["difference_high"])))
    p = row.get("wilcoxon_p") if hasattr(row, "get") else None
    p_text = ""
    if p is not None and not pd.isna(p):
        p_text = ", Wilcoxon p <0.001" if float(p) < 0.001 else f", Wilcoxon p {float(p):.3f}"
    interval = f"{gain:+.3f} [{ends[0]:+.3f}, {ends[1]:+.3f}]{p_text}"
    if bool(row["beats_random"]):
        return f"beats random on {row['test']} by {interval}"
    stored = row.get("verdict") if hasattr(row, "get") else None
    worse = str(stored).startswith("worse") if isinstance(stored, str) else ends[1] < 0
    if worse:  # the stored verdict's rule: the interval on the worse side and Wilcoxon p < 0.05
        return f"is worse than random on {row['test']} ({interval})"
    why = ""
    if p_text and (ends[0] > 0 or ends[1] < 0):  # the interval alone would decide; the test does not
        why = ": the interval excludes 0 but the signed-rank test does not reach p < 0.05"
    elif isinstance(stored, str) and "counted as an effect" in stored:
        why = ": below the 0.001 counted as an effect"
    return f"does not beat random on {row['test']} (gain {interval}{why})"


def method_costs(faithfulness: pd.DataFrame, sanity: pd.DataFrame) -> pd.DataFrame:
    """Seconds per image of each method's measurements: ``faithfulness`` (``faithfulness_summary``'s
    rows; its ``seconds_per_image``, averaged over the rows of a method) and ``sanity``
    (``sanity_costs``' rows). Columns method, measurement ('faithfulness' / 'sanity checks'),
    seconds_per_image; methods without a timing are left out."""
    parts = []
    if len(faithfulness) and "seconds_per_image" in faithfulness:
        timed = faithfulness.dropna(subset=["seconds_per_image"])
        if len(timed):
            parts.append(timed.groupby("method", as_index=False)["seconds_per_image"].mean()
                         .assign(measurement="faithfulness"))
    if len(sanity):
        parts.append(sanity[["method", "seconds_per_image"]].assign(measurement="sanity checks"))
    columns = ["method", "measurement", "seconds_per_image"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns].sort_values(["method", "measurement"], ignore_index=True)


def method_verdicts(sanity: pd.DataFrame, faithfulness: pd.DataFrame,
                    data_sanity: pd.DataFrame | None = None) -> pd.DataFrame:
    """One plain verdict per method: ``sanity`` (``sanity_verdicts``' rows) and ``faithfulness``
    (``faithfulness_summary``'s rows of one baseline and unit) joined per method.

    Returns columns method, randomisation ('passes' / 'fails' / 'not run'), beats_random (how many
    of the method's faithfulness tests it beats random on, of how many: 'k/n', '' when none stored)
    and verdict: "passes the randomisation check; beats random on deletion_morf by +0.012 [+0.004,
    +0.020]; does not beat random on insertion (gain ...)". The AUC gain is method - random on the
    test's better side (positive = better than random). ``data_sanity`` (``sanity_verdicts(...,
    test='data')``) adds the data randomisation test where it was run (column data_randomisation:
    'passes' / 'fails' / 'not run')."""
    methods = list(dict.fromkeys([*sanity.get("method", pd.Series(dtype=str)).tolist(),
                                  *faithfulness.get("method", pd.Series(dtype=str)).tolist()]))
    rows = []
    for method in sorted(methods):
        parts = []
        s = sanity[sanity["method"] == method] if len(sanity) else sanity
        if len(s) == 0 or pd.isna(s["flagged"].iloc[0]):
            randomisation = "not run"
            parts.append("randomisation check not run")
        else:
            randomisation = "fails" if bool(s["flagged"].iloc[0]) else "passes"
            parts.append(f"{randomisation} the randomisation check")
        d = (data_sanity[data_sanity["method"] == method] if data_sanity is not None and len(data_sanity)
             else pd.DataFrame())
        data_randomisation = "not run"
        if len(d) and not pd.isna(d["flagged"].iloc[0]):
            data_randomisation = "fails" if bool(d["flagged"].iloc[0]) else "passes"
            parts.append(f"{data_randomisation} the data randomisation check")
        f = faithfulness[faithfulness["method"] == method] if len(faithfulness) else faithfulness
        if len(f) == 0:
            beats = ""
            parts.append("faithfulness not measured")
        else:
            beats = f"{int(f['beats_random'].astype(bool).sum())}/{len(f)}"
            parts += [faithfulness_line(r) for _, r in f.iterrows()]
        rows.append({"method": method, "randomisation": randomisation, "data_randomisation": data_randomisation,
                     "beats_random": beats, "verdict": "; ".join(parts)})
    return pd.DataFrame(rows, columns=["method", "randomisation", "data_randomisation", "beats_random", "verdict"])


@dataclass
class MethodsReport:
    """Everything the Methods page shows for one run and split, read at once (``retcore export``).

    ``baseline`` / ``unit``: the faithfulness setting of ``faithfulness`` and ``curves`` (None
    when none is stored). Frames are empty where the measurement was not run.
    """

    run_id: str
    split: str
    baseline: str | None
    unit: str | None
    sanity: pd.DataFrame  # sanity_summary: the curves
    verdicts: pd.DataFrame  # method_verdicts
    faithfulness_all: pd.DataFrame  # faithfulness_summary, every baseline and unit
    faithfulness: pd.DataFrame  # the rows of (baseline, unit)
    curves: pd.DataFrame  # faithfulness_mean_curves of (baseline, unit)
    localisation: pd.DataFrame  # localisation_summary
    costs: pd.DataFrame  # method_costs

    @property
    def empty(self) -> bool:
        return self.sanity.empty and self.faithfulness_all.empty and self.localisation.empty


def default_setting(summary: pd.DataFrame) -> tuple[str | None, str | None]:
    """The faithfulness (baseline, unit) shown first: ``blur`` and ``token`` when stored, else the
    first stored in alphabetical order; (None, None) without rows."""
    if summary.empty:
        return None, None
    baselines, units = sorted(summary["baseline"].unique()), sorted(summary["unit"].unique())
    return ("blur" if "blur" in baselines else baselines[0]), ("token" if "token" in units else units[0])


def methods_report(q: Source, run: str, split: str = "test", *, baseline: str | None = None,
                   unit: str | None = None, n_boot: int = N_BOOT) -> MethodsReport:
    """Read run ``run``'s sanity checks, faithfulness (of ``baseline`` / ``unit``, default
    :func:`default_setting`), localisation and costs on ``split``, with the verdict per method."""
    from retcore.results.faithfulness import faithfulness_mean_curves, faithfulness_summary
    from retcore.results.sanity import sanity_costs, sanity_summary, sanity_verdicts

    sanity = sanity_summary(q, run, n_boot=n_boot)
    faith_all = faithfulness_summary(q, run, split)
    chosen = default_setting(faith_all)
    baseline, unit = baseline or chosen[0], unit or chosen[1]
    faith = faith_all[(faith_all["baseline"] == baseline) & (faith_all["unit"] == unit)].reset_index(drop=True)
    curves = (faithfulness_mean_curves(q, run, split, baseline=baseline, unit=unit, n_boot=n_boot)
              if len(faith) else pd.DataFrame())
    verdicts = method_verdicts(sanity_verdicts(q, run, n_boot=n_boot), faith,
                               sanity_verdicts(q, run, n_boot=n_boot, test="data"))
    return MethodsReport(run, split, baseline if len(faith) else None, unit if len(faith) else None, sanity,
                         verdicts, faith_all, faith, curves, localisation_summary(q, run, split, n_boot=n_boot),
                         method_costs(faith, sanity_costs(q, run)))
