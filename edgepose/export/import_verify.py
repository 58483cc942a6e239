"""Self-check of an imported graph: its detections vs a NumPy decode + reference NMS of its own raw output.

Torch-free. On a few synthetic scenes, at the baked score threshold and at the evaluation one (many
candidates), the wrapped graph runs in onnxruntime with the source's raw output exposed; the NumPy
decode of that raw output through `reference.reference_detections` must give the same detections (count,
order) within PX_TOL px. This proves the adapter and the tail; the source network itself is not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgepose.errors import ExportError
from edgepose.export.import_layout import KptConf, PoseLayout
from edgepose.export.reference import reference_detections
from edgepose.spec import DETECTIONS_NAME, INPUT_NAME, NUM_DETS_NAME, SCORE_THR_NAME, PoseSpec

VERIFY_SEED = 105  # synthetic scenes; a seed no dataset role uses
VERIFY_IMAGES = 2
PX_TOL = 0.01  # boxes and keypoint x, y, network-input pixels
PROB_TOL = 1e-4  # scores and keypoint confidences
LOW_CONF = 0.001  # the evaluation setting


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


def sample_inputs(n: int, size: tuple[int, int], batch: int) -> list[np.ndarray]:
    """`n` synthetic scenes as float RGB [0, 1] input tensors of `batch` images each (B, 3, H, W)."""
    from edgepose.data.synth import render_sample
    from edgepose.letterbox import letterbox

    images = []
    for i in range(n * batch):
        boxed, _ = letterbox(render_sample(VERIFY_SEED, i, max(size)).image, size)  # (H, W, 3) BGR
        images.append(boxed[:, :, ::-1].transpose(2, 0, 1))  # (3, H, W) RGB
    x = np.stack(images).astype(np.float32) / np.float32(255.0)  # (n * batch, 3, H, W)
    return [x[i * batch : (i + 1) * batch] for i in range(n)]


def verify_import(
    graph: onnx.ModelProto, raw_name: str, spec: PoseSpec, lay: PoseLayout, batch: int
) -> ImportCheck:
    """Run the checks in the module docstring; ExportError when the graph disagrees with the reference."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(graph)
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(raw_name))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    thresholds = (spec.conf_threshold, LOW_CONF)
    inputs = sample_inputs(VERIFY_IMAGES, spec.input_size, batch)
    count, box_diff, kpt_diff = 0, 0.0, 0.0
    for x in inputs:
        for thr in thresholds:
            feed = {INPUT_NAME: x, SCORE_THR_NAME: np.array(thr, np.float32)}
            det, num, raw = sess.run([DETECTIONS_NAME, NUM_DETS_NAME, raw_name], feed)
            want = reference_detections(
                *decode_raw(raw, lay), conf=thr, iou=spec.iou_threshold, max_det=spec.max_det
            )
            for b, ref in enumerate(want):
                got = det[b, : num[b]]
                if got.shape != ref.shape:
                    raise ExportError(
                        f"import self-check failed: {num[b]} detections at score threshold {thr:g}, "
                        f"the reference "
                        f"keeps {len(ref)}; this is a bug, please report it"
                    )
                if len(ref) == 0:
                    continue
                d = np.abs(got - ref)
                box_diff = max(box_diff, float(d[:, :4].max()))
                kd = d[:, 6:].reshape(len(ref), -1, 3)  # (n, K, 3)
                kpt_diff = max(kpt_diff, float(kd[..., :2].max()))
                prob = max(float(d[:, 4].max()), float(kd[..., 2].max()))
                if box_diff > PX_TOL or kpt_diff > PX_TOL or prob > PROB_TOL:
                    raise ExportError(
                        f"import self-check failed: boxes differ by {box_diff:.3g} px, "
                        f"keypoints by {kpt_diff:.3g} "
                        f"px, scores by {prob:.3g} from the reference decode; this is a bug, please report it"
                    )
                count += len(ref)
    return ImportCheck(len(inputs) * batch, count, box_diff, kpt_diff, thresholds)
