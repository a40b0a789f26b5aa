"""The Methods page's reads: :mod:`retcore.results` sanity, faithfulness and localisation readers
bound to the dashboard's cached executor (``dashboard.data.DB``).

The SQL is cached by the executor until the database changes; the bootstrap intervals these
readers compute in Python are cached here on the database stamp, like :mod:`dashboard.analysis`.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import streamlit as st

from dashboard.data import DB, db_path, db_stamp
from retcore.results import faithfulness as _faithfulness
from retcore.results import methods as _methods
from retcore.results import sanity as _sanity

__all__ = ["faithfulness_mean_curves", "faithfulness_summary", "localisation_summary", "method_costs",
           "method_verdicts", "sanity_costs", "sanity_seeds", "sanity_summary", "sanity_verdicts"]


def _stamped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with the dashboard's executor as its first argument, cached on its arguments and the
    database stamp (recomputed when a job writes)."""
    def inner(stamp: float, *args: Any, **kwargs: Any) -> Any:
        del stamp  # part of the cache key only
        return fn(DB, *args, **kwargs)

    # Streamlit keys a cache by module + qualified name + source: give each its own name.
    inner.__qualname__ = inner.__name__ = f"methods_{fn.__name__}"
    cached = st.cache_data(show_spinner=False, max_entries=64)(inner)

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return cached(db_stamp(db_path()), *args, **kwargs)

    return wrapper


sanity_seeds = _stamped(_sanity.sanity_seeds)
sanity_summary = _stamped(_sanity.sanity_summary)
sanity_verdicts = _stamped(_sanity.sanity_verdicts)
sanity_costs = _stamped(_sanity.sanity_costs)
faithfulness_summary = _stamped(_faithfulness.faithfulness_summary)
faithfulness_mean_curves = _stamped(_faithfulness.faithfulness_mean_curves)
localisation_summary = _stamped(_methods.localisation_summary)
method_verdicts = _methods.method_verdicts  # pure: joins the frames above
method_costs = _methods.method_costs  # pure
