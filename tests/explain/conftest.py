"""Fixtures of the explanation tests (factories in ``explain_factories``)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(single_thread):
    """Every test here runs single-threaded (``single_thread`` in tests/conftest.py)."""
