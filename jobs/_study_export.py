"""``retcore export --study RUN``: the shortcut study's figures and markdown summary."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from retcore.errors import RetcoreError

__all__ = ["HEADLINE_METRICS", "run_study_export"]

HEADLINE_METRICS = ("accuracy", "shortcut_class_accuracy", "marker_relevance_share", "marker_ratio",
                    "center_score", "disc_score_shortcut_class", "lesion_relevance_share", "pointing_game")
"""Metrics drawn in ``study_arms.*`` (all metrics go to the CSV and the summary)."""


def _load(db: Path | None, study: str) -> tuple[str, pd.DataFrame, dict]:
    from retcore.results.study import study_results
    from retcore.storage import connect, resolve_db_path

    path = resolve_db_path(db)
    if not path.exists():
        raise RetcoreError(f"no database at {path}: run `retcore study shortcut` first")
    with connect(path, read_only=True) as con:
        found = study_results(con, study, where=str(path))
    return found.study, found.results, found.config


def run_study_export(study: str, out: Path | None, *, db: Path | None = None,
                     results: Path | None = None) -> list[Path]:
    """Write ``study_arms.{svg,png,pdf,csv}``, ``study_paired.csv`` and ``summary.md``; return the files.

    A progress bar over the figure's files goes to stderr.
    """
    from tqdm.auto import tqdm

    from jobs._common import results_dir
    from jobs._export_sections import FIGURE_FORMATS
    from retcore.plots import save_chart, study_arms_chart
    from retcore.results.study import paired_arms
    from retcore.study import seed_summary

    base = results_dir(db, results)
    study, results, config = _load(db, study)
    out = Path(out) if out is not None else base / "exports" / study
    out.mkdir(parents=True, exist_ok=True)
    per_seed = results[results["seed"] >= 0]
    pairs = paired_arms(results)
    paired = results[results["arm"].isin([pair for pair, _, _ in pairs])]
    summary = seed_summary(per_seed)
    files: list[Path] = []
    chart = study_arms_chart(summary, per_seed[["metric", "arm", "seed", "value"]], metrics=list(HEADLINE_METRICS),
                             title="Shortcut study: mean across seeds with 95% t-interval")
    with tqdm(FIGURE_FORMATS, desc=f"export {study}", unit="file", file=sys.stderr) as bar:
        for fmt in bar:
            bar.set_postfix_str(f"study_arms.{fmt}")
            files.append(save_chart(chart, out / f"study_arms.{fmt}"))
    summary.to_csv(out / "study_arms.csv", index=False)
    per_seed.to_csv(out / "study_per_seed.csv", index=False)
    paired.to_csv(out / "study_paired.csv", index=False)
    files += [out / "study_arms.csv", out / "study_per_seed.csv", out / "study_paired.csv"]

    seeds = sorted(per_seed["seed"].unique().tolist())
    arms_cfg = config.get("finetune", {})
    finetune = arms_cfg.get("guided", {})
    warm = config.get("warm_start") or {}
    schedule = (f"the baseline {arms_cfg.get('baseline', {}).get('epochs', '?')} epochs of the demo recipe; the "
                f"other arms {warm['epochs']} more epochs from the same seed's baseline checkpoint"
                if warm.get("epochs") else f"both arms {finetune.get('epochs', '?')} epochs of the demo recipe")
    arms = list(dict.fromkeys(summary["arm"]))
    lines = [f"# Shortcut study {study}", "",
             f"Shortcut class `{config.get('shortcut', '?')}`, seeds {seeds}, explanation method "
             f"`{config.get('method', '?')}`; guided arm: guide `{finetune.get('guide')}`, form "
             f"`{finetune.get('guide_form')}`, weight {finetune.get('guide_weight')}; {schedule}.", "",
             "| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for metric, g in summary.groupby("metric", sort=False):
        cells = []
        for arm in arms:
            r = g[g["arm"] == arm]
            cells.append("–" if r.empty else f"{r['mean'].iloc[0]:.3f} [{r['low'].iloc[0]:.3f}, {r['high'].iloc[0]:.3f}]")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    for pair, arm_b, arm_a in pairs:
        rows = paired[paired["arm"] == pair]
        lines += ["", f"Paired across test images ({arm_b} − {arm_a}, pooled over seeds):", ""]
        for name in ("wilcoxon_marker_mass", "wilcoxon_center_score", "mcnemar_correct"):
            get = {m: v for m, v in zip(rows["metric"], rows["value"]) if m.startswith(name)}
            if get:
                diff, p, n = get.get(f"{name}_mean_diff"), get.get(f"{name}_p_value"), get.get(f"{name}_n")
                lines.append(f"- {name.replace('_', ' ')}: n = {int(n) if n == n else '?'}, mean difference "
                             f"{diff:+.3g}, p = {p:.3g}")  # a marker-share difference is ~1e-5
    lines += ["", "## Statistical methods", "",
              "- Across seeds: mean and two-sided 95% Student-t interval (k − 1 degrees of freedom).",
              "- Across images (same seed, same test image, one arm against another): Wilcoxon signed-rank test on the "
              "relevance share on the marker (images with a marker) and on the centre zone score; exact McNemar "
              "test (binomial on the discordant pairs) on correctness.",
              "- Marker relevance share: positive relevance inside the ground-truth marker mask / positive "
              "relevance inside the field of view; marker ratio = that share / the marker's area share.",
              "", "## Files", "",
              "- `study_arms.{svg,png,pdf}` and `study_arms.csv`: the headline metrics per arm.",
              "- `study_per_seed.csv`: every metric per arm and seed; `study_paired.csv`: the paired tests."]
    md = out / "summary.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files + [md]
