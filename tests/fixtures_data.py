"""Session-scoped data fixtures shared by unit and e2e tests."""

from __future__ import annotations

