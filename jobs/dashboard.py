"""``retcore dashboard``: serve the Streamlit app (127.0.0.1 unless asked otherwise)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, friendly_errors

__all__ = ["main"]

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@friendly_errors
def main(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the dashboard to the network.")] = "127.0.0.1",
    port: int = 8501,
    db: DbOption = None,
) -> None:
    """Serve the dashboard (reads the database read-only)."""
    from retcore.storage import resolve_db_path

    env = dict(os.environ, RETCORE_DB=str(resolve_db_path(db).resolve()))
    args = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port",
            str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    typer.echo(f"dashboard on http://{host}:{port} (database {env['RETCORE_DB']})")
    os.execvpe(args[0], args, env)


if __name__ == "__main__":
    typer.run(main)
