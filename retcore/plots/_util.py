"""Small helpers shared by the chart builders."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd


def require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise ``ValueError`` naming the columns ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")


def first_column(frame: pd.DataFrame, candidates: Sequence[str], name: str) -> str:
    """The first of ``candidates`` that ``frame`` has; ``ValueError`` when none."""
    for column in candidates:
        if column in frame.columns:
            return column
    raise ValueError(f"{name} needs one of the columns {list(candidates)}; it has {list(frame.columns)}")


def ordered(values: Iterable[object], order: Sequence[str] | None = None) -> list[str]:
    """``order`` (kept values first, then any others) or the order of first appearance."""
    seen = list(dict.fromkeys(str(v) for v in values if pd.notna(v)))
    if order is None:
        return seen
    head = [str(v) for v in order]
    return head + [v for v in seen if v not in head]


def title_kw(title: str | None) -> dict[str, str]:
    """``{"title": title}`` when a title is given, else nothing (for ``.properties``)."""
    return {"title": title} if title else {}


def p_text(p: float) -> str:
    """A p-value as text: ``p<0.001``, ``p=0.012``, ``p=0.34``; empty when missing."""
    if p is None or pd.isna(p):
        return ""
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"
