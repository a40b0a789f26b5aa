"""``retcore merge``: load the prediction shards of a sharded ``retcore predict`` into the database.

``torchrun ... -m jobs.predict`` (or ``retcore predict --nproc N``) merges by itself on rank 0 when
every rank has finished. Run this when the ranks ran on machines without a shared results
folder: copy (or mount) each node's ``<results>/shards/<run>/predict-<split>/`` and pass them with
``--from``. The merge is one transaction per split, keyed by image: running it twice writes the
same rows once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors

__all__ = ["main", "run_merge"]


def run_merge(run: str, split: str = "test", *, db: Path | None = None, results: Path | None = None,
              sources: list[Path] | None = None, command: str = "") -> int:
    """Merge ``split``'s shards of fine-tuning run ``run`` (from ``sources``, default the run's own
    shard folder) into the database; return the number of predictions merged."""
    from jobs._runs import results_root_of, split_images
    from jobs._shards import merge_predictions, shard_dir
    from retcore.errors import DataError
    from retcore.results.runs import run_classes
    from retcore.storage import connect
    from retcore.storage.runs import open_db, record_run

    db_path = open_db(db)
    trained, images = split_images(db_path, run, split)
    root = results_root_of(trained, db, results)
    folders = [Path(s) for s in sources] if sources else [shard_dir(root, trained.run_id, split)]
    absent = [f for f in folders if not f.is_dir()]
    if absent:
        raise DataError(f"no shard folder {absent[0]}; pass the folders the ranks wrote with --from")
    with connect(db_path, read_only=True) as con:
        classes = run_classes(con, trained.run_id)
    config = {"run": trained.run_id, "split": split, "from": [str(f) for f in folders]}
    with record_run(db_path, "merge", config=config, command=command, parent_run_id=trained.run_id) as rec:
        rows = merge_predictions(db_path, trained.run_id, split, classes, images["image_id"].tolist(), folders,
                                 predict_run_id=rec.run_id)
    return len(rows)


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    sources: Annotated[list[Path] | None, typer.Option("--from", help="Shard folders (repeatable; default: the "
                                                                      "run's own under <results>/shards/).",
                                                       show_default=False)] = None,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Merge the prediction shards of a sharded `retcore predict` into the database."""
    n = run_merge(run, split, db=db, results=results, sources=sources, command=command_line())
    typer.echo(f"merged {n} {split} predictions")


if __name__ == "__main__":
    typer.run(main)
