"""retcore dashboard: navigation and the filters shared by every page.

``st.navigation`` runs one file per page from ``dashboard/app_pages/`` (not
``pages/``: Streamlit reserves that name for its legacy automatic page discovery). The run /
method / split / class filters are drawn here, once, in the sidebar and bound
to the URL (``?run=...&method=...&split=...&class=...``), so a view can be
shared by link. Every read is a short read-only query (``dashboard.data``); a
job holding the database shows a note and the page retries by itself.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.auth import login_gate
from dashboard.data import DatabaseBusy, db_path, has_schema, held, is_busy
from dashboard.filters import sidebar_filters
from retcore.errors import DatabaseError

st.set_page_config(page_title="retcore", page_icon="👁", layout="wide")
login_gate()  # a team server (retcore dashboard --auth oidc): nothing is read before the login

PAGES = Path(__file__).resolve().parent / "app_pages"
PAGE_FILES = [
    ("overview.py", "Overview", ":material/dashboard:", "overview"),
    ("confidence.py", "Confidence vs focus", ":material/scatter_plot:", "confidence"),
    ("drift.py", "Class drift", ":material/compare_arrows:", "drift"),
    ("quality.py", "Image quality", ":material/photo_filter:", "quality"),
    ("cases.py", "Cases", ":material/photo_library:", "cases"),
    ("compare.py", "Compare runs", ":material/difference:", "compare"),
    ("methods.py", "Methods", ":material/fact_check:", "methods"),
    ("study.py", "Study", ":material/science:", "study"),
    ("jobs.py", "Jobs", ":material/terminal:", "jobs"),
]
BUSY = "Results are being written by a job; this page retries in a few seconds."


def _empty_state() -> None:
    st.title("retcore")
    st.info(
        f"No results database at `{db_path()}` yet.\n\n"
        "Create one with `make demo` (or `retcore pipeline --demo`), or point the dashboard at an existing "
        "database with `retcore dashboard --db PATH`."
    )


@st.fragment(run_every=3)
def _retry_when_free() -> None:
    """Poll the database while a job holds it; rerun the page once it reads again."""
    if is_busy():
        st.caption("waiting for the job to release the database…")
        return
    st.rerun(scope="app")


def _busy() -> None:
    st.warning(BUSY, icon=":material/hourglass_top:")
    _retry_when_free()
    st.stop()


try:
    ready = has_schema()
except DatabaseBusy:
    _busy()
except Exception as exc:  # noqa: BLE001 - the dashboard shows any database problem as one line
    st.error(f"Cannot read `{db_path()}`: {str(exc).splitlines()[0]}")
    st.stop()

if not ready:
    _empty_state()
    st.stop()

navigation = st.navigation([
    st.Page(str(PAGES / name), title=title, icon=icon, url_path=url, default=(url == "overview"))
    for name, title, icon, url in PAGE_FILES
])
with held():  # the page's queries share one open database (dashboard.data.held)
    try:
        sidebar_filters()
        st.sidebar.caption(f"database `{db_path()}`")
        navigation.run()
    except DatabaseBusy:
        _busy()
    except DatabaseError as exc:
        st.error(str(exc).splitlines()[0])
