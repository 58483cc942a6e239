"""Export self-check: the ONNX graph in onnxruntime vs the PyTorch model + `nn.decode` + reference NMS.

On a few synthetic sample images, at the baked score threshold and at a low one (the evaluation setting,
many candidates) fed at run time through the graph's threshold input, four checks per image:

1. candidates: every box the graph feeds its NMS (all N, exposed as extra outputs for the check) is
   within PX_TOL px (+ PX_REL_TOL of the coordinate) of PyTorch's, every score within PROB_TOL;
2. NMS: the graph's kept boxes/scores equal the reference NMS run on the graph's own candidates,
   exactly (same count, same order, same values) — this is what proves the in-graph tail;
3. keypoints: the kept rows' keypoints are within PX_TOL px (conf within PROB_TOL) of PyTorch's;
4. end to end: the kept candidates are the ones PyTorch + reference NMS keeps.

Why 4 may legitimately differ: NMS is a hard decision; at a low threshold ~10^5 IoU comparisons are
made per image, and candidates that differ by 1e-4 px (float rounding, conv order) can put one IoU on
the other side of the threshold. Such an image is counted as `borderline`, not an error, only when
checks 1-3 passed — then the difference can only come from that rounding. Tied scores likewise let
the runtime order equal-scored boxes its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch

from edgepose import defaults
from edgepose.errors import ExportError
from edgepose.export.reference import reference_detections
from edgepose.export.selfcheck import PROB_TOL, PX_REL_TOL, PX_TOL, sample_images
from edgepose.export.tail import nms_candidates
from edgepose.nms import nms
from edgepose.nn.decode import decode
from edgepose.nn.model import PoseModel
from edgepose.onnxkit.graph import with_outputs
from edgepose.runtime.preprocess import to_input
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME, SCORE_THR_NAME, GraphKind, InputFormat, PoseSpec

VERIFY_IMAGES = 4

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (B, N, 4), scores (B, N), kpts (B, N, 3K)


@dataclass(frozen=True)
class VerifyResult:
    images: int
    detections: int  # kept rows compared with PyTorch, over all images and thresholds
    max_box_diff: float  # px, over every candidate the NMS sees
    max_kpt_diff: float  # px
    max_prob_diff: float  # scores and keypoint confidences
    thresholds: tuple[float, ...]
    borderline: int  # (image, threshold) pairs where a rounding-level difference flipped an NMS decision


def torch_candidates(model: PoseModel, images: np.ndarray) -> Candidates:
    """PyTorch model + decode on uint8 RGB images (B, 3, H, W)."""
    return _torch_outputs(model, images)[0]


def _torch_outputs(model: PoseModel, images: np.ndarray) -> tuple[Candidates, float]:
    """`torch_candidates`, and the pixel scale of the head's raw outputs: the largest |raw value| times the
    largest stride (what a rounding error in the head's convolutions is multiplied by when decoded)."""
    x = torch.from_numpy(to_input(images, InputFormat.FLOAT))
    with torch.no_grad():
        raw = model(x)
    scale = max(float(r.abs().max()) for r in raw) * max(model.strides)
    return _decoded(raw, model), scale


def _decoded(raw: list[torch.Tensor], model: PoseModel) -> Candidates:
    with torch.no_grad():
        boxes, scores, kpts = decode(raw, model.anchors, model.strides)
    return boxes.numpy(), scores.numpy(), kpts.flatten(2).numpy()  # (B, N, 4), (B, N), (B, N, K*3)


@dataclass(frozen=True)
class _PxDiff:
    """Largest |graph - PyTorch| of some coordinates (px), and whether it is within the tolerance: PX_TOL
    plus PX_REL_TOL of the values in play (the largest coordinate compared, or the head's raw outputs in
    pixels, `scale`): float32 rounding grows with them. For a trained model that adds well under PX_TOL;
    for one not trained yet (raw outputs of 1e4-1e5) it is tenths of a pixel."""

    max: float
    ok: bool

    @classmethod
    def of(cls, got: np.ndarray, ref: np.ndarray, scale: float) -> _PxDiff:
        d = float(np.abs(got.astype(np.float64) - ref).max(initial=0.0))
        in_play = max(scale, float(np.abs(ref).max(initial=0.0)))
        return cls(d, d <= PX_TOL + PX_REL_TOL * in_play)


_SAME = _PxDiff(0.0, True)


class _Tally:
    def __init__(self) -> None:
        self.box = self.kpt = self.prob = 0.0
        self.rows = self.borderline = 0
        self.scale = 0.0  # the pixel scale of the current images' raw head outputs (`_torch_outputs`)

    def check(self, box: _PxDiff, kpt: _PxDiff, prob: float, where: str) -> None:
        if not (box.ok and kpt.ok) or prob > PROB_TOL:
            raise ExportError(
                f"export verification failed ({where}): max box diff {box.max:.4g} px, keypoint diff "
                f"{kpt.max:.4g} px (limit {PX_TOL} px + {PX_REL_TOL:g} x the values in play), score/conf "
                f"diff {prob:.3g} (limit {PROB_TOL}); the graph is not written"
            )
        self.box, self.kpt, self.prob = max(self.box, box.max), max(self.kpt, kpt.max), max(self.prob, prob)


def _compare(
    got: np.ndarray,
    boxes_o: np.ndarray,
    scores_o: np.ndarray,
    cand_t: Candidates,
    conf: float,
    spec: PoseSpec,
    tally: _Tally,
    where: str,
) -> None:
    """One image: `got` (n, 6 + 3K) are the graph's detections; boxes_o (N, 4) / scores_o (N,) the
    candidates its NMS saw; cand_t PyTorch's candidates (N, 4), (N,), (N, 3K)."""
    boxes_t, scores_t, kpts_t = cand_t
    # 1. every candidate the NMS sees
    tally.check(
        _PxDiff.of(boxes_o, boxes_t, tally.scale),
        _SAME,
        float(np.abs(scores_o - scores_t).max()),
        f"{where}, candidates before NMS",
    )
    # 2. the graph's NMS == the reference NMS on the graph's own candidates (bit-exact: gathered copies)
    keep_o = nms(boxes_o, scores_o, spec.iou_threshold, conf, spec.max_det)
    want = np.concatenate(
        [boxes_o[keep_o], scores_o[keep_o, None], np.zeros((len(keep_o), 1), np.float32)], 1
    )
    if got.shape[0] != len(keep_o) or not np.array_equal(got[:, :6], want):
        above = scores_o[scores_o > conf]
        if len(np.unique(above)) == len(above):  # no tied scores: no legitimate reason to differ
            n = min(len(got), len(keep_o))
            first = next((r for r in range(n) if not np.array_equal(got[r, :6], want[r])), n)
            raise ExportError(
                f"export verification failed ({where}): the graph's NMS kept {len(got)} detections, "
                f"the reference NMS on the same candidates kept {len(keep_o)}, "
                f"first different at rank {first}; "
                "the graph is not written"
            )
        tally.borderline += 1  # tied scores: the runtime may order equal-scored boxes its own way
        return
    # 3. the kept rows' keypoints against PyTorch's decode of the same candidates
    if len(keep_o):
        k_got = got[:, 6:].reshape(len(keep_o), -1, 3)  # (n, K, 3)
        k_ref = kpts_t[keep_o].reshape(len(keep_o), -1, 3)  # (n, K, 3)
        conf_diff = float(np.abs(k_got[..., 2].astype(np.float64) - k_ref[..., 2]).max())
        tally.check(
            _SAME,
            _PxDiff.of(k_got[..., :2], k_ref[..., :2], tally.scale),
            conf_diff,
            f"{where}, keypoints of kept rows",
        )
    # 4. the same detections as PyTorch + reference NMS. Candidates agree within tolerance and the tail is
    # exact, so a different kept set can only come from a rounding-level flip of an IoU/score comparison.
    keep_t = nms(boxes_t, scores_t, spec.iou_threshold, conf, spec.max_det)
    if np.array_equal(keep_t, keep_o):
        tally.rows += len(keep_o)
    else:
        tally.borderline += 1


def _with_candidate_outputs(graph: onnx.ModelProto) -> onnx.ModelProto:
    """A copy that also outputs the candidates the NMS tail reads: boxes (B, N, 4), scores (B, N)."""
    return with_outputs(graph, nms_candidates(graph))


def verify_export(
    graph: onnx.ModelProto,
    model: PoseModel,
    spec: PoseSpec,
    *,
    batch: int | None,
    num_images: int = VERIFY_IMAGES,
    images: np.ndarray | None = None,
) -> VerifyResult:
    """Compare `graph` (end-to-end or raw, as spec.graph says) with `model`; ExportError on a mismatch.

    `batch` is the graph's static batch (None: dynamic, fed 2 images at a time). `images`
    (n, 3, H, W) uint8 RGB replaces the synthetic samples.
    """
    if images is None:
        n = num_images if batch is None else batch * -(-num_images // batch)  # whole static batches
        images = sample_images(n, spec.input_size)
    end2end = spec.graph is GraphKind.END2END
    # One thread: a check, not a benchmark, so it stays polite on small machines.
    sess = cpu_session((_with_candidate_outputs(graph) if end2end else graph).SerializeToString(), threads=1)
    tally, thresholds, step = _Tally(), (spec.conf_threshold, defaults.EVAL.conf), batch or 2
    for start in range(0, len(images), step):
        imgs = images[start : start + step]
        cand_t, tally.scale = _torch_outputs(model, imgs)
        feed = {INPUT_NAME: to_input(imgs, spec.input_format)}
        if not end2end:
            cand_o = _decoded([torch.from_numpy(r) for r in sess.run(None, feed)], model)  # from the raw maps
        for conf in thresholds:
            if end2end:
                # The baked default is used when the input is omitted; the low one is fed (run-time override).
                extra = {} if conf == spec.conf_threshold else {SCORE_THR_NAME: np.array(conf, np.float32)}
                det, num, boxes_o, scores_o = sess.run(
                    None, {**feed, **extra}
                )  # (B, max_det, 6+3K), (B,), ...
                if any(det[i, num[i] :].any() for i in range(len(imgs))):
                    raise ExportError("export verification failed: the padding rows are not all zero")
                got = [det[i, : num[i]] for i in range(len(imgs))]
            else:
                boxes_o, scores_o = cand_o[0], cand_o[1]
                got = reference_detections(*cand_o, conf=conf, iou=spec.iou_threshold, max_det=spec.max_det)
            for i in range(len(imgs)):
                where = f"image {start + i} at score threshold {conf:g}"
                _compare(
                    got[i], boxes_o[i], scores_o[i], tuple(c[i] for c in cand_t), conf, spec, tally, where
                )
    return VerifyResult(
        len(images), tally.rows, tally.box, tally.kpt, tally.prob, thresholds, tally.borderline
    )
