"""``retcore relocate``: point a copied results database at the folders of this machine.

Image paths are stored relative to their dataset's root and heatmap paths
relative to the results folder, so moving a database means rewriting the
roots only::

    retcore relocate --db copy.duckdb --data-root /mnt/old/eyes=/home/me/eyes \\
        --results-root /mnt/old/results=/home/me/results
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, friendly_errors

__all__ = ["main", "parse_mapping"]


def parse_mapping(text: str, option: str) -> tuple[str, str]:
    """``'OLD=NEW'`` -> ``(OLD, NEW)`` (absolute folders); a clear error otherwise."""
    from retcore.errors import RetcoreError

    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise RetcoreError(f"{option} {text!r} must be OLD=NEW, e.g. {option} /old/folder=/new/folder")
    new_path = Path(new.strip()).expanduser()
    if not new_path.is_absolute():
        new_path = new_path.resolve()
    return old.strip(), str(new_path)


@friendly_errors
def main(
    data_root: Annotated[list[str] | None, typer.Option(help="OLD=NEW: a dataset folder moved (repeatable).")] = None,
    results_root: Annotated[list[str] | None, typer.Option(help="OLD=NEW: a results folder (checkpoints, "
                                                           "heatmaps, logs) moved (repeatable).")] = None,
    db: DbOption = None,
) -> None:
    """Rewrite the dataset and results folders recorded in a (copied) database."""
    from retcore.errors import RetcoreError
    from retcore.storage.runs import open_db
    from retcore.storage.writes import relocate_roots

    data = [parse_mapping(t, "--data-root") for t in data_root or []]
    results = [parse_mapping(t, "--results-root") for t in results_root or []]
    if not data and not results:
        raise RetcoreError("nothing to relocate: pass --data-root OLD=NEW and/or --results-root OLD=NEW")
    db_path = open_db(db, must_exist=True)
    changed = relocate_roots(db_path, data=data, results=results)
    moved = {k: v for k, v in changed.items() if v}
    if not moved:
        raise RetcoreError(f"no recorded path in {db_path} starts with "
                           f"{', '.join(old for old, _ in data + results)}; check the OLD folders "
                           "(the Jobs page lists each run's folders)")
    for name, count in moved.items():
        typer.echo(f"{name}: {count} rows")
    for _, new in data + results:
        if not Path(new).is_dir():
            typer.secho(f"note: {new} does not exist on this machine yet", fg=typer.colors.YELLOW)
    typer.echo(f"relocated {db_path}")


if __name__ == "__main__":
    typer.run(main)
