"""``retcore pipeline --demo``: demo data -> finetune -> predict -> explain, into the database.

Each stage is skipped when its result is already there (the demo data with the
same config, a succeeded finetune run with the same config), so a rerun after
an interruption picks up where it stopped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, ResultsOption, command_line, friendly_errors, set_threads
from jobs.explain import DEFAULT_METHODS

__all__ = ["DEMO_FINETUNE", "main"]

# Hyper-parameters of the demo run: a small ViT trained from scratch on ~560
# images on a 2-core CPU. No pretrained weights, so no layer-wise lr decay.
DEMO_FINETUNE = dict(
    model="demo", epochs=40, warmup_epochs=3, batch_size=32, blr=2e-3, layer_decay=1.0,
    weight_decay=0.05, drop_path=0.0, smoothing=0.1, auto_augment=None, re_prob=0.0,
    crop_scale=(0.7, 1.0), min_lr=1e-5,
)


def _finished_run(db: Path, config: dict) -> str | None:
    from retcore.storage import connect

    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT run_id, config FROM runs WHERE job = 'finetune' AND status = 'succeeded' "
                           "ORDER BY started_at DESC").fetchall()
    for run_id, saved in rows:
        if json.loads(saved) == json.loads(json.dumps(config)):
            return run_id
    return None


def finetune_demo(cfg, manifest: Path, db_path: Path, *, results: Path | None, force: bool, command: str,
                  label: str = "finetune") -> str:
    """Fine-tune ``cfg`` on the demo ``manifest`` (default split settings), or reuse an identical
    succeeded run unless ``force``; return the run id."""
    from jobs.finetune import run_finetune
    from retcore.data import DEFAULT_PATIENT_REGEX

    config = {"finetune": cfg.to_dict(), "data": str(manifest.resolve()), "val": 0.15, "test": 0.15,
              "split_seed": 0, "patient_regex": DEFAULT_PATIENT_REGEX}
    run_id = None if force else _finished_run(db_path, config)
    if run_id:
        typer.echo(f"{label}: reusing finetune run {run_id} (pass --force to retrain)")
        return run_id
    return run_finetune(cfg, manifest, db=db_path, results=results, command=command)


@friendly_errors
def main(
    demo: Annotated[bool, typer.Option("--demo", help="Run on the built-in demo dataset.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Where the demo dataset lives (default data/demo-<shortcut>).",
                                                  show_default=False)] = None,
    shortcut: Annotated[str, typer.Option(help="Class carrying the planted shortcut marker, or 'none'.")] = "glaucoma",
    n_images: int = 800,
    epochs: Annotated[int | None, typer.Option(help="Override the demo's epochs.")] = None,
    seed: int = 0,
    force: Annotated[bool, typer.Option(help="Retrain even if an identical run succeeded.")] = False,
    methods: Annotated[str, typer.Option(help="Explanation methods for the test split ('' = skip).")] = DEFAULT_METHODS,
    db: DbOption = None,
    results: ResultsOption = None,
) -> None:
    """Build the demo data, fine-tune the demo ViT, predict val/test and explain the test split."""
    set_threads()
    if not demo:
        raise typer.BadParameter("only the demo pipeline exists so far: pass --demo")
    from jobs.explain import run_explain
    from jobs.predict import run_predict
    from retcore.demo import DemoConfig, make_demo_dataset
    from retcore.storage.runs import open_db
    from retcore.train.config import FinetuneConfig

    db_path = open_db(db)
    demo_dir = data_dir or Path(f"data/demo-{shortcut}")
    manifest = make_demo_dataset(demo_dir, DemoConfig(n_images=n_images, seed=seed,
                                                      shortcut=None if shortcut == "none" else shortcut),
                                 progress=True)
    params = dict(DEMO_FINETUNE, seed=seed)
    if epochs is not None:
        params["epochs"] = epochs
    cfg = FinetuneConfig(**params)
    run_id = finetune_demo(cfg, manifest, db_path, results=results, force=force, command=command_line())
    for split in ("val", "test"):
        run_predict(run_id, split, db=db_path, command=command_line())
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    if chosen:
        run_explain(run_id, chosen, "test", db=db_path, results=results, command=command_line())
    typer.echo(f"pipeline done: run {run_id} in {db_path}")


if __name__ == "__main__":
    typer.run(main)
