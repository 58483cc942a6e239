"""Closed option sets of the import (`export --from-onnx`); stdlib only: the CLI offers them without onnx."""

from __future__ import annotations

import enum


class Layout(str, enum.Enum):
    """Third-party output layouts `import_onnx` understands."""

    ULTRALYTICS_POSE = "ultralytics-pose"  # one output (B, 4 + 1 + 3K, N): cx, cy, w, h, score, K x (x, y, v)
    # One output (B, N, 6 + 3K), NMS-free (YOLO26-pose): x1, y1, x2, y2, score, class, K x (x, y, v); chosen
    # automatically when an ultralytics-pose import finds this shape.
    ULTRALYTICS_POSE_E2E = "ultralytics-pose-e2e"


class KptConf(str, enum.Enum):
    """What the keypoint visibility channels hold."""

    AUTO = "auto"  # decide from the graph
    LOGIT = "logit"  # pre-sigmoid: the adapter applies a Sigmoid
    PROB = "prob"  # post-sigmoid (Ultralytics exports)
