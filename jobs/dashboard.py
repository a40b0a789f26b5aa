"""``retcore dashboard``: serve the Streamlit app (127.0.0.1 unless asked otherwise)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from jobs._common import DbOption, friendly_errors

__all__ = ["dashboard_command", "main"]

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def dashboard_command(host: str, port: int, db: Path | None, *, auth: str = "none", secrets: Path | None = None,
                      allow: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` argv and environment ``retcore dashboard`` starts (checked first:
    :func:`jobs._serve.check_serve` refuses a non-loopback host without a login)."""
    from jobs._serve import check_serve
    from retcore.storage import resolve_db_path

    serve = check_serve(host, auth, secrets=secrets, allow=allow)
    env = dict(os.environ, RETCORE_DB=str(resolve_db_path(db).resolve()), **serve.env)
    if "RETCORE_ALLOW" not in serve.env:
        env.pop("RETCORE_ALLOW", None)
    args = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port",
            str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false", *serve.options]
    return args, env


@friendly_errors
def main(
    host: Annotated[str, typer.Option(help="Address to bind. A non-loopback address (e.g. 0.0.0.0) needs "
                                           "--auth oidc.")] = "127.0.0.1",
    port: int = 8501,
    auth: Annotated[str, typer.Option(help="none (loopback only) | oidc (Streamlit login, \\[auth] in "
                                           "secrets.toml) | proxy (an authenticating reverse proxy in front of "
                                           "a loopback-bound server).")] = "none",
    secrets: Annotated[Path | None, typer.Option(help="secrets.toml with the \\[auth] section (default "
                                                      ".streamlit/secrets.toml).", show_default=False)] = None,
    allow: Annotated[str | None, typer.Option(help="With --auth oidc: e-mail addresses or @domains allowed, "
                                                   "comma-separated.", show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Serve the dashboard (reads the database read-only)."""
    args, env = dashboard_command(host, port, db, auth=auth, secrets=secrets, allow=allow)
    who = {"oidc": ", OIDC login", "proxy": ", behind your authenticating proxy"}.get(auth, "")
    typer.echo(f"dashboard on http://{host}:{port} (database {env['RETCORE_DB']}{who})")
    os.execvpe(args[0], args, env)


if __name__ == "__main__":
    typer.run(main)
