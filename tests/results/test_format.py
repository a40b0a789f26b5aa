"""One number format for the dashboard and the export."""
from __future__ import annotations

import math

from retcore.results.format import fmt_ci, fmt_num, fmt_p


def test_p_values_are_rounded_one_way():
    assert fmt_p(0.0004) == "<0.001"
    assert fmt_p(0.0123) == "0.012" and fmt_p(0.0999) == "0.100"
    assert fmt_p(0.1) == "0.10" and fmt_p(0.2134) == "0.21" and fmt_p(1.0) == "1.00"
    assert fmt_p(None) == fmt_p(math.nan) == "–"


def test_intervals_and_numbers():
    assert fmt_ci(0.81234, 0.79, 0.833) == "0.812 [0.790, 0.833]"
    assert fmt_ci(0.5, math.nan, 0.6) == "0.500" and fmt_ci(math.inf, 0, 1) == "–"
    assert fmt_ci(0.123, 0.1, 0.2, 2) == "0.12 [0.10, 0.20]"
    assert fmt_num(None) == "–" and fmt_num(2, 1) == "2.0"
