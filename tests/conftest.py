"""Shared, seeded fixtures. Tests run on data the project makes itself."""

from __future__ import annotations

import os

# Two cores on CI: keep each test process on one thread so xdist workers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
