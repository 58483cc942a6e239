"""Shared, seeded fixtures. Tests run on data and models the project makes itself.

Fixtures live in plugin modules, one per owner: data (synthetic datasets), model (tiny
checkpoints), export (tiny exported ONNX files).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores on CI: keep each test process on one thread so xdist workers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

pytest_plugins = ["tests.fixtures_data", "tests.fixtures_model", "tests.fixtures_export"]

_E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e/ `e2e`, so `pytest -m "not e2e"` (make test-fast) skips them."""
    for item in items:
        if _E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)
