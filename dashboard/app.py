"""retcore dashboard: navigation and the filters shared by every page."""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.data import DatabaseBusy, db_path, has_schema  # noqa: E402

st.set_page_config(page_title="retcore", page_icon="👁", layout="wide")

PAGES = Path(__file__).resolve().parent / "pages"


def _empty_state() -> None:
    st.title("retcore")
    st.info(
        f"No results database at `{db_path()}` yet.\n\n"
        "Create one with `make demo` (or `retcore pipeline --demo`), or point the dashboard at an existing "
        "database with `retcore dashboard --db PATH`."
    )


try:
    ready = has_schema()
except DatabaseBusy:
    st.warning("Results are being written by a job; this page refreshes when they are ready.")
    st.stop()
except Exception as exc:  # noqa: BLE001 - the dashboard shows any database problem as one line
    st.error(f"Cannot read `{db_path()}`: {str(exc).splitlines()[0]}")
    st.stop()

if not ready:
    _empty_state()
    st.stop()

navigation = st.navigation([
    st.Page(str(PAGES / "overview.py"), title="Overview", icon="📊", default=True),
])
navigation.run()
