"""The filters every page shares (run, method, split, class), bound to the URL.

``app.py`` draws them in the sidebar once per script run with
:func:`sidebar_filters`; pages read the current values with :func:`current`.
The values live in ``st.session_state`` (so they survive page switches) and
are mirrored into ``st.query_params`` (so a view can be shared by link: a new
session starts from the link's ``?run=...&method=...&split=...&class=...``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from dashboard import queries

__all__ = ["ALL_CLASSES", "Filters", "current", "sidebar_filters"]

ALL_CLASSES = "All classes"
#: URL parameter -> session-state key of the widget.
URL_KEYS = {"run": "f_run", "method": "f_method", "split": "f_split", "class": "f_class"}
_STATE = "filters"


@dataclass(frozen=True)
class Filters:
    """Current selection. ``cls`` is None for all classes; ``method`` None when the run has no explanations."""

    run: str | None = None
    method: str | None = None
    split: str | None = None
    cls: str | None = None
    runs: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    classes: tuple[str, ...] = field(default_factory=tuple)

    def url(self) -> dict[str, str]:
        """The query parameters that reproduce this selection."""
        out = {"run": self.run, "method": self.method, "split": self.split, "class": self.cls}
        return {k: v for k, v in out.items() if v}


def _seed(key: str, options: list[str], default: str | None) -> None:
    """Put a valid value into the widget state before the widget is drawn.

    Priority: the current widget value, then the URL (a shared link), then ``default``.
    """
    url_name = next(k for k, v in URL_KEYS.items() if v == key)
    value = st.session_state.get(key)
    if value not in options:
        from_url = st.query_params.get(url_name)
        value = from_url if from_url in options else default
        st.session_state[key] = value


def _default_split(splits: list[str]) -> str | None:
    return "test" if "test" in splits else (splits[0] if splits else None)


def sidebar_filters() -> Filters:
    """Draw the run / method / split / class selectors in the sidebar and sync the URL."""
    runs = queries.trained_runs()
    run_ids = runs["run_id"].tolist()
    sidebar = st.sidebar
    sidebar.markdown("**Filters**")
    if not run_ids:
        filters = Filters()
        st.session_state[_STATE] = filters
        return filters
    labels = dict(zip(runs["run_id"], runs["label"]))
    _seed("f_run", run_ids, run_ids[0])
    run = sidebar.selectbox("Run", run_ids, key="f_run", format_func=lambda r: labels.get(r, r),
                            help="Fine-tuning runs that have predictions, newest first.")

    splits = queries.run_splits(run)
    _seed("f_split", splits, _default_split(splits))
    split = sidebar.selectbox("Split", splits, key="f_split") if splits else None

    methods = queries.run_methods(run)
    if methods:
        _seed("f_method", methods, "lrp" if "lrp" in methods else methods[0])
        method = sidebar.selectbox("Explanation method", methods, key="f_method")
    else:
        method = None
        sidebar.caption("No explanations for this run yet.")

    classes = queries.run_classes(run)
    options = [ALL_CLASSES, *classes]
    _seed("f_class", options, ALL_CLASSES)
    chosen = sidebar.selectbox("Class", options, key="f_class")
    cls = None if chosen == ALL_CLASSES else chosen

    filters = Filters(run=run, method=method, split=split, cls=cls, runs=tuple(run_ids), methods=tuple(methods),
                      splits=tuple(splits), classes=tuple(classes))
    st.session_state[_STATE] = filters
    sync_url(filters)
    return filters


def sync_url(filters: Filters) -> None:
    """Mirror ``filters`` into the URL, keeping the page's own parameters."""
    wanted = filters.url()
    for name in URL_KEYS:
        if name in wanted:
            if st.query_params.get(name) != wanted[name]:
                st.query_params[name] = wanted[name]
        elif name in st.query_params:
            del st.query_params[name]


def current() -> Filters:
    """The filters drawn by ``app.py`` in this script run.

    A page script run on its own (without ``app.py``, e.g. by a test) draws
    them itself.
    """
    if _STATE not in st.session_state:
        return sidebar_filters()
    return st.session_state[_STATE]
