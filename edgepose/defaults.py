"""Every default a user can change, in one place (standard library only).

`PoseSpec`, the library functions and every CLI option read these (a CLI option either imports the
constant, so `--help` shows the real value, or defaults to None meaning "the library's"). Editing a
value here changes what `edgepose export` bakes in, what `bench` measures at and what `--help` prints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Score threshold, NMS IoU threshold and the most detections kept per image."""

    conf: float
    iou: float
    max_det: int


# Deployment: what an exported graph bakes in and what latency is measured at.
DEPLOY = Thresholds(conf=0.25, iou=0.45, max_det=100)
# Evaluation (COCO AP): a low score threshold so the precision-recall curve is complete.
EVAL = Thresholds(conf=0.001, iou=0.65, max_det=100)

# ONNX: the opset an export writes (loads on onnxruntime >= 1.12); 16-bit Q/DQ in the default domain
# needs 21, which quantization raises to when it needs it.
DEFAULT_OPSET = 17

# Mixed precision: the share of quantizable layers kept at high precision (the paper keeps ~30%).
MIXED_BUDGET = 0.3

# `edgepose bench` latency: onnxruntime intra-op threads, timed and untimed runs per model.
BENCH_THREADS = 2
BENCH_RUNS = 50
BENCH_WARMUP = 5

# Letterbox padding value (YOLO's grey), used by training, export verification and the runtime.
LETTERBOX_COLOR = 114
