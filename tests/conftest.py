"""Shared, seeded fixtures. Tests run on data and models the project makes itself.

Fixtures live in plugin modules, one per owner: data (synthetic datasets), model (tiny
checkpoints), export (tiny exported ONNX files).
"""

from __future__ import annotations

import os

# Two cores on CI: keep each test process on one thread so xdist workers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

pytest_plugins = ["tests.fixtures_data", "tests.fixtures_model", "tests.fixtures_export"]
