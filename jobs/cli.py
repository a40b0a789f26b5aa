"""The ``retcore`` command: one subcommand per job."""
from __future__ import annotations

import typer

from jobs import (dashboard, demo_data, explain, export, finetune, ingest, merge, pipeline, predict, relocate, sanity,
                  study, summarize)

app = typer.Typer(
    name="retcore",
    help="Interpretable retinal-disease classification: fine-tune, predict, explain, and browse the results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo-data")(demo_data.main)
app.command("ingest")(ingest.main)
app.command("finetune")(finetune.main)
app.command("predict")(predict.main)
app.command("explain")(explain.main)
app.command("sanity")(sanity.main)
app.command("pipeline")(pipeline.main)
app.command("dashboard")(dashboard.main)
app.command("export")(export.main)
app.command("relocate")(relocate.main)
app.command("merge")(merge.main)
app.command("summarize")(summarize.main)
app.add_typer(study.app, name="study")

if __name__ == "__main__":
    app()
