"""The end-to-end graph's decode (export.decode.append_decode) against the training-time nn.decode.

The decode reads the head convs' outputs (B, A*C, H, W) and, after NMS, gathers each kept row's
keypoints straight out of its level's conv output with flat index tables. Here every candidate of every
level and image is fed to that gather (not only what NMS would keep), so a wrong table entry anywhere
fails.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from edgepose.export.decode import DecodeTables, append_decode
from edgepose.export.tail import TailBuilder
from edgepose.nn.decode import decode
from edgepose.onnxkit.model import pin_ir_version
from edgepose.spec import TAIL_PREFIX

A, K = 3, 17
C = 6 + 3 * K
STRIDES = (8, 16, 32)
SIZE = (64, 96)  # H, W: non-square, so x/y or H/W mix-ups show
ANCHORS = np.array(
    [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]],
    np.float32,
)  # (L, A, 2) px


def _decode_graph(batch: int | str, single_image: bool) -> onnx.ModelProto:
    """Inputs: one conv output per level + (image, candidate) index pairs; outputs: boxes, scores, kpts."""
    sizes = [(SIZE[0] // s, SIZE[1] // s) for s in STRIDES]
    convs = [f"conv_s{s}" for s in STRIDES]
    graph = helper.make_graph(
        [],
        "decode",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, A * C, h, w])
            for n, (h, w) in zip(convs, sizes, strict=True)
        ]
        + [helper.make_tensor_value_info(n, TensorProto.INT64, ["M"]) for n in ("image", "cand")],
        [],
    )
    tables = DecodeTables.build(ANCHORS, STRIDES, sizes, C)
    boxes, scores, gather = append_decode(
        graph, convs, tables, num_anchors=A, num_keypoints=K, single_image=single_image
    )
    kpts = gather(TailBuilder(graph, TAIL_PREFIX + "nms/"), "image", "cand")
    graph.output.extend(
        [
            helper.make_tensor_value_info(boxes, TensorProto.FLOAT, None),
            helper.make_tensor_value_info(scores, TensorProto.FLOAT, None),
            helper.make_tensor_value_info(kpts, TensorProto.FLOAT, None),
        ]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    pin_ir_version(model)
    return model


@pytest.mark.parametrize(("batch", "single_image"), [(2, False), ("B", False), (1, True)])
def test_decode_and_keypoint_gather_equal_nn_decode_for_every_candidate(
    batch: int | str, single_image: bool
) -> None:
    model = _decode_graph(batch, single_image)
    b = 1 if single_image else 2
    rng = np.random.default_rng(7)
    convs = [
        (rng.standard_normal((b, A * C, SIZE[0] // s, SIZE[1] // s)) * 2).astype(np.float32) for s in STRIDES
    ]
    n = sum(A * (SIZE[0] // s) * (SIZE[1] // s) for s in STRIDES)
    image, cand = np.divmod(np.arange(b * n, dtype=np.int64), n)  # every (image, candidate) pair
    feed = {f"conv_s{s}": x for s, x in zip(STRIDES, convs, strict=True)}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    boxes, scores, kpts = sess.run(None, {**feed, "image": image, "cand": cand})

    # nn.decode on the same numbers in PoseModel's layout: (B, A*C, H, W) -> (B, A, H, W, C)
    raw = [torch.from_numpy(x).view(b, A, C, *x.shape[2:]).permute(0, 1, 3, 4, 2).contiguous() for x in convs]
    ref_boxes, ref_scores, ref_kpts = (t.numpy() for t in decode(raw, torch.from_numpy(ANCHORS), STRIDES))
    assert boxes.shape == (b, n, 4) and scores.shape == (b, n) and kpts.shape == (b * n, 3 * K)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-4, rtol=1e-6)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(kpts, ref_kpts.reshape(b * n, 3 * K), atol=1e-4, rtol=1e-6)
    # the check has teeth: keypoints differ between levels, anchors and images
    assert np.abs(np.diff(kpts, axis=0)).max(axis=1).min() > 0


def test_tables_point_every_candidate_at_its_own_channel_zero() -> None:
    sizes = [(SIZE[0] // s, SIZE[1] // s) for s in STRIDES]
    t = DecodeTables.build(ANCHORS, STRIDES, sizes, C)
    counts = [A * h * w for h, w in sizes]
    masks = np.concatenate(t.level_mask, axis=1)  # (N, L)
    assert masks.sum(axis=1).tolist() == [1] * sum(counts)  # each candidate is in exactly one level
    assert masks.sum(axis=0).tolist() == counts
    # level 1 (stride 16), anchor 2, cell (y 3, x 5): channel 0 of (A, C, H*W) block at 2*C*HW + 3*W + 5
    h, w = sizes[1]
    n = counts[0] + 2 * h * w + 3 * w + 5
    assert t.level_offset[1][n, 0] == 2 * C * h * w + 3 * w + 5
    assert t.level_offset[0][n, 0] == 0 and t.level_offset[2][n, 0] == 0
    assert t.level_size == [A * C * hh * ww for hh, ww in sizes]


def test_end_to_end_graph_reads_head_convs_and_has_no_raw_layout_transposes(tiny_onnx_factory) -> None:
    """The raw maps' (B, A, H, W, C) transposes exist only in the --no-nms graph."""
    e2e = onnx.load(str(tiny_onnx_factory()))
    raw = onnx.load(str(tiny_onnx_factory(nms=False)))

    def body_transposes(m: onnx.ModelProto) -> int:
        return sum(n.op_type == "Transpose" and not n.name.startswith(TAIL_PREFIX) for n in m.graph.node)

    assert body_transposes(raw) == len(raw.graph.output) > 0
    assert body_transposes(e2e) == 0
