"""Export self-check of an ER-Pose graph: onnxruntime vs the PyTorch model + `decode_erpose` + `topk_select`.

On the synthetic sample images of `edgepose.export.selfcheck`, at the baked score threshold and at the
evaluation one (fed at run time through the graph's threshold input), per image:

1. scores: every candidate score the TopK sees (all N, exposed for the check) is within PROB_TOL of
   PyTorch's;
2. selection: the graph's rows are `topk_select` on the graph's own scores — same count, same order, the
   score column bit-exact (TopK returns copies), padding rows all zero — this proves the in-graph tail;
3. keypoints: the kept rows' keypoints are within PX_TOL px (confidences within PROB_TOL) of PyTorch's for
   the same cells;
4. boxes: each kept row's box is the box-from-keypoints rule applied to the row's own keypoints (within
   PX_TOL), so it equals PyTorch's box unless a keypoint confidence sits at the rule's threshold;
5. end to end: the kept cells are the ones PyTorch + `topk_select` keeps.

Why 5 may legitimately differ: two cells whose scores differ by float rounding (~1e-7) can swap ranks
or straddle the threshold; such an image is counted `borderline` (not an error) when 1-4 passed.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch

from edgepose.defaults import EVAL
from edgepose.errors import ExportError
from edgepose.export.selfcheck import PROB_TOL, PX_TOL, sample_images
from edgepose.export.topk_tail import topk_scores_input
from edgepose.export.verify import VerifyResult
from edgepose.nn.erpose import ERPoseModel, boxes_from_keypoints, decode_erpose
from edgepose.onnxkit.graph import with_outputs
from edgepose.runtime.preprocess import to_input
from edgepose.runtime.session import cpu_session
from edgepose.spec import INPUT_NAME, SCORE_THR_NAME, InputFormat, PoseSpec
from edgepose.topk import topk_select


def _with_scores_output(graph: onnx.ModelProto) -> onnx.ModelProto:
    return with_outputs(graph, [topk_scores_input(graph)])


def _torch_scores_keypoints(model: ERPoseModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's candidate scores (B, N) and keypoints (B, N, K, 3) on uint8 RGB images (B, 3, H, W)."""
    x = torch.from_numpy(to_input(images, InputFormat.FLOAT))
    with torch.no_grad():
        _, scores, kpts = decode_erpose(model(x), model.strides)
    return scores.numpy(), kpts.numpy()


def _fail(where: str, what: str) -> ExportError:
    return ExportError(f"export verification failed ({where}): {what}; the graph is not written")


def verify_erpose_export(
    graph: onnx.ModelProto, model: ERPoseModel, spec: PoseSpec, *, batch: int | None, num_images: int = 4
) -> VerifyResult:
    """Run the checks of the module docstring; ExportError on a mismatch. `batch` None: dynamic (fed 2)."""
    n = num_images if batch is None else batch * -(-num_images // batch)
    images = sample_images(n, spec.input_size)
    sess = cpu_session(_with_scores_output(graph).SerializeToString())
    k = spec.num_keypoints
    thresholds, step = (spec.conf_threshold, EVAL.conf), batch or 2
    rows = borderline = 0
    box_d = kpt_d = prob_d = 0.0
    for start in range(0, len(images), step):
        imgs = images[start : start + step]
        ts, tk = _torch_scores_keypoints(model, imgs)  # (B, N), (B, N, K, 3)
        feed = {INPUT_NAME: to_input(imgs, spec.input_format)}
        for conf in thresholds:
            extra = {} if conf == spec.conf_threshold else {SCORE_THR_NAME: np.array(conf, np.float32)}
            det, num, scores_o = sess.run(None, {**feed, **extra})  # (B, M, 6 + 3K), (B,), (B, N)
            for i in range(len(imgs)):
                where = f"image {start + i} at score threshold {conf:g}"
                prob_d = max(prob_d, float(np.abs(scores_o[i] - ts[i]).max()))
                if prob_d > PROB_TOL:
                    raise _fail(where, f"candidate scores differ by {prob_d:.3g} (limit {PROB_TOL})")
                got = det[i, : num[i]]
                if det[i, num[i] :].any():
                    raise _fail(where, "the padding rows are not all zero")
                keep_o = topk_select(scores_o[i], conf, spec.max_det)
                if len(keep_o) != len(got) or not np.array_equal(got[:, 4], scores_o[i][keep_o]):
                    raise _fail(
                        where, f"the graph kept {len(got)} rows, TopK on its own scores keeps {len(keep_o)}"
                    )
                if not len(got):
                    continue
                kp = got[:, 6:].reshape(-1, k, 3)  # (n, K, 3)
                d = np.abs(kp.astype(np.float64) - tk[i][keep_o])  # (n, K, 3)
                kpt_d, prob_d = max(kpt_d, float(d[..., :2].max())), max(prob_d, float(d[..., 2].max()))
                own_box = boxes_from_keypoints(torch.from_numpy(kp)).numpy()  # (n, 4)
                box_d = max(box_d, float(np.abs(got[:, :4] - own_box).max()))
                if kpt_d > PX_TOL or box_d > PX_TOL or prob_d > PROB_TOL:
                    raise _fail(
                        where,
                        f"keypoints differ by {kpt_d:.4g} px, boxes by {box_d:.4g} px (limit {PX_TOL}), "
                        f"confidences by {prob_d:.3g} (limit {PROB_TOL})",
                    )
                if np.array_equal(topk_select(ts[i], conf, spec.max_det), keep_o):
                    rows += len(keep_o)
                else:
                    borderline += 1
    return VerifyResult(len(images), rows, box_d, kpt_d, prob_d, thresholds, borderline)
