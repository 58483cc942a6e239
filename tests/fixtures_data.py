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
    """`make(num_images=12, size=128, seed=101, version=SYNTH_VERSION) -> dataset dir` (images/ +
    annotations.json). `version` 1 labels keypoints on every person (the overfit tests: in 128-px images
    version 2's COCO protocol leaves most people without keypoints).

    Cached per arguments for the session; tests must not modify the returned folder.
    """
    from edgepose.data.synth import SYNTH_VERSION, synthesize

    cache: dict[tuple[int, int, int, int], Path] = {}

    def make(
        num_images: int = SYNTH_IMAGES,
        size: int = SYNTH_SIZE,
        seed: int = SYNTH_SEED,
        version: int = SYNTH_VERSION,
    ) -> Path:
        key = (num_images, size, seed, version)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"synth_v{version}_s{seed}_n{num_images}_{size}")
            cache[key] = synthesize(root / "ds", num_images, size=size, seed=seed, version=version)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def synth_dataset(synth_dataset_factory: Callable[..., Path]) -> Path:
    """A 12-image, 128x128 synthetic dataset (seed 101): DIR/images/000000.jpg ..., DIR/annotations.json."""
    return synth_dataset_factory()
