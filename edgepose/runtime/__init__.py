"""Torch-free runtime: numpy, OpenCV and onnxruntime only. This is what ships on a board.

from edgepose.runtime import PoseEstimator, draw_poses
est = PoseEstimator("model.onnx", threads=4)
result = est(cv2.imread("people.jpg"))       # BGR, any size; conf=/iou=/max_det= per call
result.boxes, result.scores, result.keypoints  # (N, 4), (N,), (N, K, 3) in image pixels
"""

from __future__ import annotations

from edgepose.letterbox import LetterboxInfo, letterbox
from edgepose.runtime.draw import draw_poses
from edgepose.runtime.estimator import PoseEstimator
from edgepose.runtime.preprocess import preprocess, to_bgr
from edgepose.runtime.results import Detection, PoseResult
from edgepose.runtime.session import ModelIO, open_session
from edgepose.runtime.sources import Source, SourceKind, read_image, resolve_sources
from edgepose.runtime.timing import Timings

__all__ = [
    "Detection",
    "LetterboxInfo",
    "ModelIO",
    "PoseEstimator",
    "PoseResult",
    "Source",
    "SourceKind",
    "Timings",
    "draw_poses",
    "letterbox",
    "open_session",
    "preprocess",
    "read_image",
    "resolve_sources",
    "to_bgr",
]
