"""``retcore export``: a run's figures for a paper, and a summary of its statistics.

Reads the database read-only, through :mod:`retcore.results` (it writes nothing there),
and, for one split of a fine-tuned run, writes to ``--out``:

- every figure as ``<name>.svg``, ``<name>.png`` (300 ppi) and ``<name>.pdf``, in
  the ``retcore`` theme, plus ``<name>.csv`` with the data drawn;
- ``summary.md``: headline and per-class metrics with 95% intervals, the
  explanation statistics, the list of files and the statistical tests used.

Classification figures need only predictions; the explanation figures (zone
score vs confidence, zone-score distributions, drift between classes, mean
heatmaps) need ``retcore explain`` on the split; the Methods page's figures (sanity-check
curves, deletion / insertion curves against a random map, localisation, cost per method) need
``retcore sanity`` and the faithfulness step of ``retcore explain``. The summary says what is
missing. The numbers are those the dashboard shows (one computation in
``retcore.results``); this module only draws and writes them.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobs._common import DbOption, ResultsOption, friendly_errors, results_dir
from jobs._export_sections import (
    FIGURE_FORMATS,
    FigureWriter,
    classification_section,
    explanation_section,
    methods_section,
    strata_section,
    trust_section,
)

if TYPE_CHECKING:
    import pandas as pd

    from retcore.results.drift import ClassMaps
    from retcore.results.headline import Classification
    from retcore.results.methods import MethodsReport
    from retcore.results.strata import StrataTable
    from retcore.results.zones import Focus

__all__ = ["FIGURE_FORMATS", "ExportResult", "RunData", "load_run_data", "main", "run_export"]

LEVEL = 0.95


@dataclass
class RunData:
    """Everything the export draws for one run and split, read and computed through ``retcore.results``.

    ``method`` is None without explanations on the split; ``zone`` None without zone scores
    of ``method``; ``scores`` holds the zone scores of ``zone_set`` (label renamed class_name).
    """

    run_id: str
    split: str
    classes: list[str]
    info: dict[str, Any]
    n_images: int
    report: Classification
    epochs: pd.DataFrame
    strata: StrataTable
    method: str | None = None
    maps: ClassMaps | None = None
    zone_set: str = "anatomy"
    zone: str | None = None
    scores: pd.DataFrame | None = None
    zone_tests: pd.DataFrame | None = None
    focus: Focus | None = None
    trust: MethodsReport | None = None  # sanity checks, faithfulness, localisation (the Methods page)


@dataclass
class ExportResult:
    """What ``run_export`` wrote: the run, the folder, the files and the parts left out."""

    run_id: str
    out: Path
    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading (every query and table comes from retcore.results)


def _pick_zone(zone_set: str, zone: str | None, sets: list[str], zones: list[str], run_id: str) -> str:
    """Check ``--zone-set`` / ``--zone`` against the run's zone scores; the zone to plot against
    confidence (``periphery`` when present, else the set's first zone)."""
    from retcore.errors import RetcoreError

    if zone_set not in sets or not zones:
        raise RetcoreError(f"run {run_id} has no {zone_set!r} zone scores; choose --zone-set from {sets}")
    if zone is None:
        return "periphery" if "periphery" in zones else zones[0]
    if zone not in zones:
        raise RetcoreError(f"zone set {zone_set!r} has no zone {zone!r}; choose --zone from {zones}")
    return zone


def load_run_data(db: Path | None, run: str, split: str = "test", *, method: str | None = None,
                  zone_set: str = "anatomy", zone: str | None = None, n_boot: int = 1000,
                  n_permutations: int = 1000, seed: int = 0) -> RunData:
    """Read and compute run ``run``'s tables for ``split`` in one short read-only connection.

    ``method`` picks the explanation method (default ``lrp`` if present, else the first in
    alphabetical order). Raises ``RetcoreError`` for a missing database, an unknown run, a
    split without predictions, or a method / zone set / zone the run does not have.
    """
    from retcore.errors import DatabaseError, RetcoreError
    from retcore.results import drift, headline, methods, predictions, runs, strata, zones
    from retcore.results.executor import tables
    from retcore.storage import connect, resolve_db_path

    path = resolve_db_path(db)
    with connect(path, read_only=True) as con:
        if not {"runs", "predictions", "metrics", "confusion"} <= tables(con):
            raise DatabaseError(f"{path} is not a retcore results database (no runs/predictions tables); "
                                "check --db")
        info = runs.finetune_run(con, run, split, where=str(path))
        run_id = info["run_id"]
        meta, probs = predictions.split_predictions(con, run_id, split)
        if meta.empty:
            raise RetcoreError(f"run {run_id} has no predictions for split {split!r}; "
                               f"run `retcore predict --run {run_id} --split {split}` first")
        if meta["label"].isna().all():
            raise RetcoreError(f"split {split!r} of run {run_id} has no labelled images; nothing to evaluate")
        classes = predictions.checked_classes(runs.run_classes(con, run_id), meta, probs.shape[1], run_id)
        available = runs.split_methods(con, run_id, split)
        chosen = method or ("lrp" if "lrp" in available else (available[0] if available else None))
        if available and chosen not in available:
            raise RetcoreError(f"run {run_id} has no {chosen!r} explanations on {split}; "
                               f"choose --method from {available}")
        data = RunData(run_id=run_id, split=split, classes=classes, info=info, n_images=len(meta),
                       report=headline.classification(con, run_id, split, classes, n_boot=n_boot, seed=seed,
                                                      level=LEVEL, roc=True),
                       epochs=runs.epochs(con, run_id), strata=strata.accuracy_strata(con, run_id, split, meta, LEVEL),
                       zone_set=zone_set)
        data.trust = methods.methods_report(con, run_id, split, n_boot=n_boot)
        if not available:
            return data
        data.method = chosen
        listed = zones.zone_list(con, run_id, chosen)
        if not listed.empty:
            scores = zones.zone_scores(con, run_id, split, chosen, zone_set, classes)
            data.zone = _pick_zone(zone_set, zone, sorted(set(listed["zone_set"])),
                                   list(dict.fromkeys(scores["zone"])), run_id)
            data.scores = scores.rename(columns={"label": "class_name"})
            data.zone_tests = zones.zone_tests(data.scores, group="class_name")
            data.focus = zones.focus(con, run_id, split, chosen, zone_set, data.zone, classes, methods=("spearman",),
                                     scopes=("overall", "class"), n_boot=n_boot, seed=seed, level=LEVEL)
        data.maps = drift.class_maps(con, run_id, split, chosen, classes, n_permutations=n_permutations, seed=seed)
    return data


# ---------------------------------------------------------------------------------------------
# Writing (the sections are drawn by jobs._export_sections)


def _expected_figures(data: RunData) -> int:
    """How many figures ``run_export`` writes for ``data`` (the progress bar's total)."""
    import numpy as np

    report = data.report
    count = 3 + (report.roc is not None and not report.roc.empty) + (not data.epochs.empty)
    count += not data.strata.table.empty
    if data.maps is not None:
        count += any(np.isfinite(m).all() for m in data.maps.means.values()) + (not data.maps.matrix.empty)
    count += 2 * (data.zone is not None)
    trust = data.trust
    if trust is not None:
        count += 2 * (not trust.sanity.empty) + (not trust.curves.empty) + (not trust.localisation.empty)
        count += not trust.costs.empty
    return int(count)


def run_export(run: str, out: Path | None = None, *, db: Path | None = None, results: Path | None = None,
               split: str = "test",
               method: str | None = None, zone_set: str = "anatomy", zone: str | None = None,
               n_boot: int = 1000, n_permutations: int = 1000, seed: int = 0) -> ExportResult:
    """Export run ``run``'s figures and ``summary.md`` for ``split`` into ``out``.

    ``out`` defaults to ``<results>/exports/<run>/`` (``results`` default: ``results/``
    beside the database). Returns the files
    written and the parts left out (e.g. the explanation figures of an unexplained run).
    A progress bar over the figures goes to stderr.
    """
    from tqdm.auto import tqdm

    data = load_run_data(db, run, split, method=method, zone_set=zone_set, zone=zone, n_boot=n_boot,
                         n_permutations=n_permutations, seed=seed)
    out = Path(out) if out is not None else results_dir(db, results) / "exports" / data.run_id
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=_expected_figures(data), desc=f"export {data.run_id}", unit="figure", file=sys.stderr)
    try:
        result = _write_export(data, out, bar, n_boot=n_boot, n_permutations=n_permutations, seed=seed)
        bar.total = bar.n
    finally:
        bar.close()
    return result


def _write_export(data: RunData, out: Path, bar: Any, *, n_boot: int, n_permutations: int,
                  seed: int) -> ExportResult:
    """The body of :func:`run_export`: figures through a :class:`_Writer` on ``bar``, then summary.md."""
    writer = FigureWriter(out, bar)
    result = ExportResult(data.run_id, out)
    split, info = data.split, data.info

    lines = [f"# Run {data.run_id}: split `{split}`", ""]
    lines += [f"Model `{info.get('model') or '?'}`, dataset `{info.get('dataset_id') or '?'}`, "
              f"{data.n_images} images, classes {', '.join(data.classes)}. "
              f"Exported {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
              + (f" from code version `{info['code_version']}`." if info.get("code_version") else "."), ""]
    lines += classification_section(data, writer)
    lines += strata_section(data, writer)
    if data.method is None:
        result.missing.append(
            f"explanation figures (mean heatmaps, heatmap drift, zone scores): run {data.run_id} has no "
            f"explanations on {split}; run `retcore explain --run {data.run_id} --split {split}`")
    else:
        ex_lines, ex_missing = explanation_section(data, writer, n_permutations)
        lines += ex_lines
        result.missing += ex_missing
    trust_lines, trust_missing = trust_section(data, writer)
    lines += trust_lines
    result.missing += trust_missing
    if not data.strata.has_quality:
        result.missing.append("image-quality strata: no image_quality rows (computed by `retcore explain`)")
    if result.missing:
        lines += ["", "## Missing", ""] + [f"- Not exported: {m}." for m in result.missing]

    lines += ["", "## Figures", "",
              "Each figure is written as `.svg`, `.png` (300 ppi) and `.pdf`, with its data as `.csv`.", ""]
    lines += [f"- `{name}`: {caption}" for name, caption in writer.figures]
    lines += ["", "## Statistical methods", ""]
    lines += methods_section({name for name, _ in writer.figures}, n_boot, n_permutations, seed)
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result.files = writer.files + [summary]
    return result


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <results>/exports/<run>).",
                                             show_default=False)] = None,
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    method: Annotated[str | None, typer.Option(help="Explanation method (default: lrp if present).",
                                               show_default=False)] = None,
    zone_set: Annotated[str, typer.Option(help="Zone set of the zone-score figures: thirds | anatomy | mask.")]
    = "anatomy",
    zone: Annotated[str | None, typer.Option(help="Zone plotted against confidence (default: periphery, "
                                                  "else the set's first zone).", show_default=False)] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 1000,
    permutations: Annotated[int, typer.Option(help="Permutations for the drift p-values.")] = 1000,
    seed: int = 0,
    study: Annotated[str | None, typer.Option(help="Export a shortcut study instead of a run: its run id, or "
                                                   "'latest'.", show_default=False)] = None,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Write a run's figures (SVG, PNG 300 ppi, PDF + CSV) and summary.md with intervals and tests."""
    if study is not None:
        from jobs._study_export import run_study_export

        files = run_study_export(study, out, db=db, results=results)
        typer.echo(f"study: {len(files)} files -> {files[-1].parent}")
        return
    result = run_export(run, out, db=db, results=results, split=split, method=method, zone_set=zone_set, zone=zone,
                        n_boot=n_boot, n_permutations=permutations, seed=seed)
    figures = len([f for f in result.files if f.suffix == ".svg"])
    typer.echo(f"{result.run_id}: {figures} figures, {len(result.files)} files -> {result.out}")
    for item in result.missing:
        typer.echo(f"not exported: {item}")


if __name__ == "__main__":
    typer.run(main)
