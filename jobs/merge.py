"""``retcore merge``: load the shards of a sharded ``retcore predict`` or ``retcore explain`` into the database.

``torchrun ... -m jobs.predict|jobs.explain`` (or ``--nproc N``) merges by itself on rank 0 when
every rank has finished. Run this when the ranks ran on machines without a shared results
folder: copy (or mount) each node's ``<results>/shards/<run>/predict-<split>/`` (``--stage
predict``, the default) or ``.../explain-<split>/`` (``--stage explain``) and pass them with
``--from``; explain's heatmap files must be copied to the same place under ``<results>/heatmaps/``.
The merge is one transaction per split, keyed by image (and method, target): running it twice
writes the same rows once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, RunResultsOption, command_line, friendly_errors

__all__ = ["main", "run_merge"]


def run_merge(run: str, split: str = "test", *, db: Path | None = None, results: Path | None = None,
              sources: list[Path] | None = None, command: str = "", stage: str = "predict") -> int:
    """Merge ``split``'s ``stage`` shards ('predict' | 'explain') of fine-tuning run ``run`` (from
    ``sources``, default the run's own shard folder) into the database; return the number of rows
    merged (predictions, or explanations)."""
    from jobs._runs import results_root_of, split_images
    from jobs._shards import explain_shard_dir, merge_predictions, shard_dir
    from retcore.errors import DataError
    from retcore.results.runs import run_classes
    from retcore.storage import connect
    from retcore.storage.runs import open_db, record_run

    if stage not in ("predict", "explain"):
        raise DataError(f"--stage {stage!r} must be 'predict' or 'explain'")
    db_path = open_db(db, must_exist=True)
    trained, images = split_images(db_path, run, split)
    root = results_root_of(trained, db, results)
    default = (shard_dir if stage == "predict" else explain_shard_dir)(root, trained.run_id, split)
    folders = [Path(s) for s in sources] if sources else [default]
    absent = [f for f in folders if not f.is_dir()]
    if absent:
        raise DataError(f"no shard folder {absent[0]}; pass the folders the ranks wrote with --from")
    with connect(db_path, read_only=True) as con:
        classes = run_classes(con, trained.run_id)
    config = {"run": trained.run_id, "split": split, "stage": stage, "from": [str(f) for f in folders]}
    with record_run(db_path, "merge", config=config, command=command, parent_run_id=trained.run_id) as rec:
        if stage == "predict":
            return len(merge_predictions(db_path, trained.run_id, split, classes, images["image_id"].tolist(),
                                         folders, predict_run_id=rec.run_id))
        return _merge_explanations(db_path, trained, split, images, classes, folders, rec.run_id)


def _merge_explanations(db_path: Path, trained, split: str, images, classes: list[str], folders: list[Path],
                        merge_run_id: str) -> int:
    """Merge explain shards: every method and target kind found in them (the image's explained
    class is read from the database as the explain job read it)."""
    from jobs._shards import merge_explanations, read_table_shards
    from jobs.explain import _stored_targets
    from retcore.errors import DataError

    rows = read_table_shards(folders, "explanations")
    if rows.empty:
        raise DataError(f"no explanation shards under {', '.join(map(str, folders))}; pass the folders the ranks "
                        "wrote (<results>/shards/<run>/explain-<split>) with --from")
    rows = rows[rows["run_id"] == trained.run_id]
    merged = 0
    for kind, part in rows.groupby("target_kind"):
        targets = _stored_targets(db_path, trained.run_id, split, images, classes, str(kind))
        n, _ = merge_explanations(db_path, trained.run_id, targets, sorted(set(part["method"])), str(kind), folders,
                                  image_ids=images["image_id"].tolist(), explain_run_id=merge_run_id,
                                  dataset_id=trained.dataset_id)
        merged += n
    return merged


@friendly_errors
def main(
    run: Annotated[str, typer.Option(help="Finetune run id, or 'latest'.")] = "latest",
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    sources: Annotated[list[Path] | None, typer.Option("--from", help="Shard folders (repeatable; default: the "
                                                                      "run's own under <results>/shards/).",
                                                       show_default=False)] = None,
    stage: Annotated[str, typer.Option(help="Which shards: 'predict' or 'explain'.")] = "predict",
    db: DbOption = None,
    results: RunResultsOption = None,
) -> None:
    """Merge the shards of a sharded `retcore predict` or `retcore explain` into the database."""
    n = run_merge(run, split, db=db, results=results, sources=sources, command=command_line(), stage=stage)
    typer.echo(f"merged {n} {split} {'predictions' if stage == 'predict' else 'explanations'}")


if __name__ == "__main__":
    typer.run(main)
