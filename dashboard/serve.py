"""Serve the dashboard: ``python -m dashboard.serve [streamlit options]``.

``retcore dashboard`` runs this module. It starts ``streamlit run
dashboard/app.py`` in this process after telling Streamlit that the app uses
``st.navigation``: Streamlit otherwise treats a ``pages/`` folder next to the
main script as an old-style (v1) multipage app on its first script run, and a
first visit to e.g. ``/cases`` would run that page without ``app.py`` (no
filters, no database checks).
"""
from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def main(argv: list[str] | None = None) -> None:
    """Run ``streamlit run dashboard/app.py`` with ``argv`` (Streamlit options such as ``--server.port``)."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False  # app.py calls st.navigation: no v1 pages folder
    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
