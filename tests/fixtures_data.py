"""Session-scoped data fixtures shared by unit and e2e tests: small seeded synthetic datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SYNTH_SEED = 101
SYNTH_IMAGES = 12
SYNTH_SIZE = 128


@pytest.fixture(scope="session")
def synth_dataset_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`make(num_images=12, size=128, seed=101) -> dataset dir` (images/ + annotations.json).

    Cached per arguments for the session; tests must not modify the returned folder.
    """
    from edgepose.data.synth import synthesize

    cache: dict[tuple[int, int, int], Path] = {}

    def make(num_images: int = SYNTH_IMAGES, size: int = SYNTH_SIZE, seed: int = SYNTH_SEED) -> Path:
        key = (num_images, size, seed)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"synth_s{seed}_n{num_images}_{size}")
            cache[key] = synthesize(root / "ds", num_images, size=size, seed=seed)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def synth_dataset(synth_dataset_factory: Callable[..., Path]) -> Path:
    """A 12-image, 128x128 synthetic dataset (seed 101): DIR/images/000000.jpg ..., DIR/annotations.json."""
    return synth_dataset_factory()
