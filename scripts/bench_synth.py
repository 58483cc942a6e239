"""Measure the synthetic generator's speed: images/s at 320x320 on one core.

    .venv/bin/python scripts/bench_synth.py [--num-images 300] [--size 320]

Times `synthesize()` itself (render, JPEG encode, file writes, the COCO JSON) into a temporary
folder, then the best of several 25-image chunks of render + encode. CPU time is reported beside
wall time: on a shared machine the wall time says more about the neighbours than about the
generator, and even CPU time swells when they compete for the core's caches; the best chunk is
the closest figure to an idle core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2

from edgepose.data.synth import JPEG_QUALITY, render_sample, synthesize
from edgepose.spec import ANNOTATIONS_FILE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-images", type=int, default=300)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one core
    render_sample(args.seed, 0, args.size)  # warm-up: imports, the noise bank
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        out = synthesize(Path(tmp) / "bench", args.num_images, size=args.size, seed=args.seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        people = len(json.loads((out / ANNOTATIONS_FILE).read_text())["annotations"])
    n = args.num_images
    best = float("inf")
    for start in range(0, n - 24, 25):
        t = time.process_time()
        for i in range(start, start + 25):
            cv2.imencode(
                ".jpg", render_sample(args.seed, i, args.size).image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
        best = min(best, (time.process_time() - t) / 25)
    print(
        f"synth {args.size}x{args.size}: synthesize() {n / cpu:.0f} images/s per core (CPU time), "
        f"{n / wall:.0f} images/s wall; best 25-image chunk {1 / best:.0f} images/s per core; "
        f"{people / n:.2f} annotated people/image, {n} images"
    )


if __name__ == "__main__":
    main()
