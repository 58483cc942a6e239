"""Self-check of an imported graph: its detections vs a NumPy decode + reference NMS of its own raw output.

Torch-free. On a few synthetic scenes, at the baked score threshold and at the evaluation one (many
candidates, defaults.EVAL.conf), the wrapped graph runs in onnxruntime with the source's raw output
exposed; the NumPy decode of that raw output through `reference.reference_detections` must give the same
detections (count, order) within PX_TOL px. This proves the adapter and the tail; the source network
itself is not ours. Tolerances and sample scenes are the export check's (`export.selfcheck`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from edgepose import defaults
from edgepose.errors import ExportError
from edgepose.export.importer.layout import PoseLayout
from edgepose.export.importer.options import KptConf
from edgepose.export.reference import reference_detections
from edgepose.export.selfcheck import PROB_TOL, PX_TOL, sample_images
from edgepose.onnxkit.graph import with_outputs
from edgepose.runtime.preprocess import to_input
from edgepose.runtime.session import cpu_session
from edgepose.spec import DETECTIONS_NAME, INPUT_NAME, NUM_DETS_NAME, SCORE_THR_NAME, PoseSpec, row_width

VERIFY_IMAGES = 2


@dataclass(frozen=True)
class ImportCheck:
    images: int
    detections: int  # kept rows compared, over all images and thresholds
    max_box_diff: float  # px
    max_kpt_diff: float  # px
    thresholds: tuple[float, ...]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x.astype(np.float64), -80, 80)))).astype(np.float32)


def decode_raw(raw: np.ndarray, lay: PoseLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (B, 4 + 1 + 3K, N) -> boxes (B, N, 4) x1y1x2y2, scores (B, N), kpts (B, N, 3K), confs as probs."""
    x = np.asarray(raw, np.float32).transpose(0, 2, 1)  # (B, N, C)
    b, n, _ = x.shape
    xy, half = x[..., 0:2], x[..., 2:4] * np.float32(0.5)  # (B, N, 2)
    boxes = np.concatenate([xy - half, xy + half], axis=-1)  # (B, N, 4)
    scores = x[..., 4] if lay.score_prob else _sigmoid(x[..., 4])  # (B, N)
    kpts = x[..., 5:].reshape(b, n, lay.num_keypoints, 3).copy()  # (B, N, K, 3)
    if lay.kpt_conf is KptConf.LOGIT:
        kpts[..., 2] = _sigmoid(kpts[..., 2])
    return boxes, scores, kpts.reshape(b, n, -1)  # (B, N, 3K)


def sample_inputs(n: int, spec: PoseSpec, batch: int) -> list[np.ndarray]:
    """`n` input tensors of `batch` synthetic scenes each (B, 3, H, W), in the graph's input format."""
    x = to_input(sample_images(n * batch, spec.input_size), spec.input_format)  # (n * batch, 3, H, W)
    return [x[i * batch : (i + 1) * batch] for i in range(n)]


# (raw output, score threshold) -> per image the rows the wrapped graph must keep, best first
Reference = Callable[[np.ndarray, float], list[np.ndarray]]


def check_against(
    graph: onnx.ModelProto, raw_name: str, spec: PoseSpec, batch: int, reference: Reference
) -> ImportCheck:
    """The wrapped graph's rows vs `reference` of its own raw output, on VERIFY_IMAGES inputs of `batch`
    synthetic scenes, at the baked and the evaluation score thresholds: the same count, zero padding after
    them, every row within PX_TOL px and PROB_TOL. ExportError on a mismatch."""
    sess = cpu_session(with_outputs(graph, [raw_name], None).SerializeToString())
    thresholds = (spec.conf_threshold, defaults.EVAL.conf)
    inputs = sample_inputs(VERIFY_IMAGES, spec, batch)
    width = row_width(spec.num_keypoints)
    count, box_diff, kpt_diff = 0, 0.0, 0.0
    for x in inputs:
        for thr in thresholds:
            feed = {INPUT_NAME: x, SCORE_THR_NAME: np.array(thr, np.float32)}
            det, num, raw = sess.run([DETECTIONS_NAME, NUM_DETS_NAME, raw_name], feed)
            for b, want in enumerate(reference(raw, thr)):
                got = det[b, : num[b]]
                if got.shape != (len(want), width) or det[b, num[b] :].any():
                    raise ExportError(
                        f"import self-check failed: {num[b]} rows at score threshold {thr:g}, the reference "
                        f"keeps {len(want)}; this is a bug, please report it"
                    )
                if not len(want):
                    continue
                d = np.abs(got - want)
                kd = d[:, 6:].reshape(len(want), -1, 3)  # (n, K, 3)
                box_diff = max(box_diff, float(d[:, :4].max()))
                kpt_diff = max(kpt_diff, float(kd[..., :2].max()))
                prob = max(float(d[:, 4].max()), float(kd[..., 2].max()))
                if box_diff > PX_TOL or kpt_diff > PX_TOL or prob > PROB_TOL:
                    raise ExportError(
                        f"import self-check failed: boxes differ by {box_diff:.3g} px, keypoints by "
                        f"{kpt_diff:.3g} px, scores by {prob:.3g} from the reference; this is a bug, please "
                        "report it"
                    )
                count += len(want)
    return ImportCheck(len(inputs) * batch, count, box_diff, kpt_diff, thresholds)


def verify_import(
    graph: onnx.ModelProto, raw_name: str, spec: PoseSpec, lay: PoseLayout, batch: int
) -> ImportCheck:
    """A raw-grid source wrapped with the adapter and the NMS tail vs the NumPy decode + reference NMS."""

    def reference(raw: np.ndarray, thr: float) -> list[np.ndarray]:
        return reference_detections(
            *decode_raw(raw, lay), conf=thr, iou=spec.iou_threshold, max_det=spec.max_det
        )

    return check_against(graph, raw_name, spec, batch, reference)
