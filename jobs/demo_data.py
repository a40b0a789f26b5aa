"""``retcore demo-data``: build the semi-synthetic demo fundus set."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs._common import friendly_errors

__all__ = ["main"]


@friendly_errors
def main(
    out: Annotated[Path, typer.Option(help="Output folder (images/, masks/, manifest.csv).")] = Path("data/demo"),
    n_images: int = 800,
    img_size: int = 224,
    shortcut: Annotated[str, typer.Option(help="Class that carries the planted marker in train/val, or 'none'.")] = "none",
    seed: int = 0,
    workers: int = 2,
) -> None:
    """Build the demo dataset from scikit-image's real fundus photograph."""
    from retcore.demo import DemoConfig, make_demo_dataset

    cfg = DemoConfig(n_images=n_images, img_size=img_size, shortcut=None if shortcut == "none" else shortcut,
                     seed=seed, workers=workers)
    manifest = make_demo_dataset(out, cfg, progress=True)
    typer.echo(f"demo manifest: {manifest}")


if __name__ == "__main__":
    typer.run(main)
