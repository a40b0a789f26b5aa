"""``retcore summarize``: store the summaries the dashboard reads (schema v7) where they are missing.

``retcore predict`` and ``retcore explain`` store them as they write
(:func:`summarize_split`); this command fills them in for a database written before
(or by an interrupted job), so its pages over millions of images read a few rows::

    retcore summarize --db results.duckdb            # every run and split, what is missing
    retcore summarize --run RUN --split test --force # recompute one split's summaries

Without them every page still works: the same tables are computed on read, slowly on
large splits (see ``retcore.results.summaries``).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, friendly_errors

__all__ = ["main", "run_summarize", "summarize_split"]


def summarize_split(db: Path, run: str, split: str, *, methods: Sequence[str] | None = None,
                    predictions: bool = True, report: bool = True) -> dict[str, object]:
    """Store the summaries of finetune run ``run``'s ``split``: class counts and sample cutoffs
    (``predictions``), the zone summaries, gallery rows and Class drift defaults of ``methods``
    (default: every method with zone scores; ``[]``: none) and the classification report with the
    dashboard's settings (``report``).

    Returns what was stored: rows (SQL summaries) and report (True / False when the predictions
    changed meanwhile / None when not asked or nothing is labelled).
    """
    from retcore.results import drift, headline, summaries
    from retcore.results.runs import run_classes
    from retcore.storage import connect
    from retcore.storage.writes import write_report, write_summaries

    with connect(db, read_only=True) as con:
        classes = run_classes(con, run)
        items = summaries.plan(con, run, split, classes, methods, predictions=predictions)
    rows = write_summaries(db, run, split, items) if items else 0
    for method in sorted({item.method for item in items if item.method}):
        with connect(db, read_only=True) as con:  # after the zone summaries: the drift tables read them
            source = summaries.prediction_source(con, run, split)
            defaults = drift.stored_defaults(con, run, split, method, classes)
        for name, key, parts in defaults:
            write_report(db, run, split, name, key, parts, source=source, method=method,
                         current_source=lambda con: summaries.prediction_source(con, run, split))
    stored = None
    if report:
        settings = dict(headline.STORED_SETTINGS)
        with connect(db, read_only=True) as con:
            source = summaries.prediction_source(con, run, split)
            result = headline.compute(con, run, split, classes, **settings)
        if result.n:
            key = summaries.report_key(headline.report_params(classes, result.n_boot, result.n_boot_images,
                                                              settings["seed"], settings["level"]))
            parts = {name: summaries.encode_frame(df) for name, df in headline.report_parts(result).items()}
            stored = write_report(db, run, split, headline.REPORT, key, parts, source=source,
                                  current_source=lambda con: summaries.prediction_source(con, run, split))
    return {"rows": rows, "report": stored}


def run_summarize(db: Path | None = None, run: str | None = None, split: str | None = None,
                  force: bool = False, echo=print) -> int:
    """Store the missing summaries (all of them with ``force``) of every run and split with predictions
    (or of ``run`` / ``split``); returns the (run, split) pairs summarised."""
    from retcore.errors import RetcoreError
    from retcore.results import summaries
    from retcore.storage import connect
    from retcore.storage.runs import open_db

    db_path = open_db(db, must_exist=True)
    with connect(db_path, read_only=True) as con:
        todo = summaries.coverage(con, run)
    if split is not None:
        todo = todo[todo["split"] == split]
    if todo.empty:
        raise RetcoreError(f"no predictions{f' of run {run}' if run else ''}{f' on split {split}' if split else ''} "
                           f"in {db_path}: run `retcore predict` first")
    done = 0
    for row in todo.itertuples(index=False):
        methods = list(row.zone_methods) if force else [m for m in row.zone_methods if m not in row.summarized]
        counts, report = force or not row.counts, force or not row.report
        if not (counts or report or methods):
            continue
        t0 = time.perf_counter()
        out = summarize_split(db_path, row.run_id, row.split, methods=methods, predictions=counts, report=report)
        parts = [*(["class counts", "samples"] if counts else []),
                 *([f"zone summaries ({', '.join(methods)})"] if methods else []),
                 *(["report"] if out["report"] else [])]
        echo(f"{row.run_id} {row.split}: {', '.join(parts) or 'nothing to store'} "
             f"({out['rows']} rows, {time.perf_counter() - t0:.1f} s)")
        done += 1
    if not done:
        echo("every summary is stored already (--force recomputes them)")
    return done


@friendly_errors
def main(
    run: Annotated[str | None, typer.Option(help="Finetune run id (default: every run with predictions).")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute summaries that are stored already.")] = False,
    db: DbOption = None,
) -> None:
    """Store the dashboard's summaries (counts, samples, zone summaries, classification report) where missing."""
    run_summarize(db, run, split, force, echo=typer.echo)


if __name__ == "__main__":
    typer.run(main)
