"""Numbers as text, one convention for the dashboard and ``retcore export``."""
from __future__ import annotations

import math

__all__ = ["fmt_ci", "fmt_num", "fmt_p"]

DASH = "–"


def _finite(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def fmt_num(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; '–' when missing or not finite."""
    return f"{float(value):.{digits}f}" if _finite(value) else DASH


def fmt_ci(value: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """'0.812 [0.790, 0.833]'; the value alone without finite bounds; '–' without a value."""
    if not _finite(value):
        return DASH
    if not (_finite(low) and _finite(high)):
        return fmt_num(value, digits)
    return f"{fmt_num(value, digits)} [{fmt_num(low, digits)}, {fmt_num(high, digits)}]"


def fmt_p(p: float | None) -> str:
    """A p-value: '<0.001', three decimals below 0.1 ('0.012'), two from 0.1 ('0.34'); '–' when missing."""
    if not _finite(p):
        return DASH
    p = float(p)  # type: ignore[arg-type]
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"
