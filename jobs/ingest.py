"""``retcore ingest``: register a dataset (decode and hash every file, split, record bad files).

The pipeline's first stage on its own: the same source layouts and split
options as ``finetune``. An ingest whose source lists the files already
registered under the same split settings is reused; ``--force`` reads every
file again.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors

__all__ = ["ingest_run_config", "main", "options_run_config"]


def ingest_run_config(source: Path, split: Mapping[str, Any], strict: bool) -> dict:
    """The ``runs.config`` of an ingest of ``source`` with split settings ``split``
    (``val``, ``test``, ``split_seed``, ``patient_regex``)."""
    return {"data": str(Path(source).resolve()), **split, "strict": strict}


def _split(options: Mapping[str, Any]) -> dict:
    from jobs.pipeline import _split_settings

    return _split_settings(options["val"], options["test"], options["split_seed"], options["patient_regex"])


def options_run_config(options: Mapping[str, Any]) -> dict:
    """The ``runs.config`` that ``retcore ingest`` with ``options`` records."""
    return ingest_run_config(options["data"], _split(options), options["strict"])


@friendly_errors
def main(
    data: Annotated[Path, typer.Option(help="Class folders, split folders or a CSV manifest.", show_default=False)],
    val: Annotated[float, typer.Option(help="Validation share when the data has no split.")] = 0.15,
    test: Annotated[float, typer.Option(help="Test share when the data has no split.")] = 0.15,
    split_seed: Annotated[int, typer.Option(help="Seed of the patient-grouped split.")] = 0,
    patient_regex: Annotated[str | None, typer.Option(help="Regex with a (?P<patient>...) group.")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first bad image instead of skipping it.")] = False,
    force: Annotated[bool, typer.Option(help="Read every file again even if the same files are registered.")] = False,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Register a dataset: decode and hash every image, split by patient, record bad files."""
    options = dict(locals())  # every option by name; jobs.rerun parses a rerun command into the same dict
    from jobs.pipeline import ingest_stage
    from retcore.errors import RetcoreError
    from retcore.storage.runs import open_db

    if not data.exists():
        raise RetcoreError(f"--data {data} does not exist; pass a class-folder root, split-folder root or CSV")
    ingest_stage(data, open_db(db), split=_split(options), strict=strict, force=force, command=command_line(),
                 results=results)


if __name__ == "__main__":
    typer.run(main)
