"""What the export self-checks share (`export.verify` and `export.erpose_verify` for our exports,
`export.importer.verify` and `export.importer.end2end` for imported graphs): tolerances and the sample
scenes, made into input tensors the way deployment does.

Torch-free (numpy, OpenCV, the runtime's preprocessing). The low score threshold every check also runs
at is the evaluation setting, `edgepose.defaults.EVAL.conf`, read at call time.
"""

from __future__ import annotations

import numpy as np

from edgepose.runtime.preprocess import preprocess_batch
from edgepose.spec import InputFormat, PoseSpec

VERIFY_SEED = 7  # synthetic sample scenes; a seed no dataset role uses (train 1, val 2, calibration 3)
PX_TOL = 0.01  # boxes and keypoint x, y, in network-input pixels
# ... plus this share of the coordinate itself: float32 carries ~7 digits, so a model that is not trained
# yet (keypoints decoded 1e5-1e6 px off the image) differs by tenths of a pixel from rounding alone.
PX_REL_TOL = 4e-6
PROB_TOL = 1e-4  # scores and keypoint confidences


def sample_images(n: int, size: tuple[int, int], seed: int = VERIFY_SEED) -> np.ndarray:
    """(n, 3, H, W) uint8 RGB synthetic scenes with people, letterboxed as `runtime.preprocess` does.

    uint8, so one sample feeds a float and a uint8 graph alike (`runtime.preprocess.to_input`).
    """
    from edgepose.data.synth import render_sample

    spec = PoseSpec(input_size=size, input_format=InputFormat.UINT8)
    scenes = [render_sample(seed, i, max(size)).image for i in range(n)]  # (S, S, 3) uint8 BGR each
    images, _ = preprocess_batch(scenes, spec)  # (n, 3, H, W) uint8 RGB
    return images
