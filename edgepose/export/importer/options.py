"""Closed option sets of the import (`export --from-onnx`); stdlib only: the CLI offers them without onnx."""

from __future__ import annotations

import enum


class Layout(str, enum.Enum):
    """Third-party output layouts `import_onnx` understands."""

    ULTRALYTICS_POSE = "ultralytics-pose"  # one output (B, 4 + 1 + 3K, N): cx, cy, w, h, score, K x (x, y, v)


class KptConf(str, enum.Enum):
    """What the keypoint visibility channels hold."""

    AUTO = "auto"  # decide from the graph
    LOGIT = "logit"  # pre-sigmoid: the adapter applies a Sigmoid
    PROB = "prob"  # post-sigmoid (Ultralytics exports)
