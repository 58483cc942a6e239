"""ER-Pose deploy graph: the network traced to ONNX, then the NMS-free decode + TopK tail.

The traced network outputs per level only what inference reads: the one-to-one confidence conv
(B, 1, H, W) and the pose conv (B, 3K, H, W); the one-to-many confidence branch is not traced, so it is
not in the file. The tail (`edgepose.export.topk_tail`, nodes under spec.TAIL_PREFIX) then

1. flattens and concatenates the confidence logits, Sigmoid -> scores (B, N) (N cells ordered level, y, x,
   as `edgepose.nn.erpose.flatten_levels`);
2. TopK(max_det) over the scores, the threshold and count as graph inputs (no NonMaxSuppression);
3. gathers the kept cells' 3K pose values (GatherElements on the concatenated (B, 3K, N) pose maps) and
   decodes only those: x = raw * stride + (gx + 0.5) * stride, likewise y, visibility = Sigmoid(raw);
4. derives each kept row's box from its keypoints with `edgepose.nn.erpose.boxes_from_keypoints`'s rule
   (the extent of the keypoints with confidence >= BOX_KPT_CONF, all of them when none is, widened by
   BOX_MARGIN per side) and writes the contract's rows x1, y1, x2, y2, score, class 0, K x (x, y, conf).

`edgepose.export.erpose_verify` checks the file against `edgepose.nn.erpose.decode_erpose` +
`edgepose.topk.topk_select` in onnxruntime before it is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from edgepose.export.deploy import trace
from edgepose.export.slim import simplify
from edgepose.export.tail import TailBuilder
from edgepose.export.topk_tail import append_topk_tail, reduce
from edgepose.nn.erpose import BOX_KPT_CONF, BOX_MARGIN, ERPoseModel
from edgepose.onnxkit.graph import default_opset
from edgepose.spec import INPUT_NAME, TAIL_PREFIX, InputFormat, PoseSpec, row_width

CONF_OUTPUT_PREFIX = "er_conf_s"  # the one-to-one confidence conv's output per stride (B, 1, H, W)
POSE_OUTPUT_PREFIX = "er_pose_s"  # the pose conv's output per stride (B, 3K, H, W)
ERPOSE_PREFIX = TAIL_PREFIX + "erpose/"  # the flatten/score nodes before the TopK tail


def output_names(strides: Sequence[int]) -> list[str]:
    """Per level, the confidence then the pose output name (the order ERPoseNet returns them in)."""
    return [n for s in strides for n in (f"{CONF_OUTPUT_PREFIX}{s}", f"{POSE_OUTPUT_PREFIX}{s}")]


class ERPoseNet(nn.Module):
    """The ER-Pose network on the deploy input (uint8 0-255 converted inside, float [0, 1] as is) ->
    per level (conf_o2o (B, 1, H, W), pose (B, 3K, H, W)), flat."""

    def __init__(self, model: ERPoseModel, input_format: InputFormat) -> None:
        super().__init__()
        self.model, self.uint8 = model, input_format is InputFormat.UINT8

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        x = images.float() / 255.0 if self.uint8 else images  # (B, 3, H, W) float in [0, 1]
        head = self.model.head
        outs: list[Tensor] = []
        for i, f in enumerate(self.model.features(x)):
            outs += [head.conf_o2o[i](f), head.pose[i](f)]
        return tuple(outs)


def export_erpose_net(
    model: ERPoseModel,
    *,
    size: tuple[int, int],
    batch: int,
    input_format: InputFormat,
    opset: int,
    dynamic_batch: bool,
) -> onnx.ModelProto:
    """INPUT_NAME -> `output_names(strides)`, traced (TorchScript exporter, opset pinned) and simplified."""
    dtype = torch.uint8 if input_format is InputFormat.UINT8 else torch.float32
    x = torch.zeros((batch, 3, *size), dtype=dtype)  # (B, 3, H, W)
    names = output_names(model.strides)
    net = ERPoseNet(model, input_format).eval()
    return simplify(trace(net, (x,), [INPUT_NAME], names, opset=opset, dynamic_batch=dynamic_batch))


def decode_tables(strides: Sequence[int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-candidate keypoint scale (N, 1, 3) = (s, s, 0), offset (N, 1, 3) = ((gx + .5) s, (gy + .5) s, 0):
    x = raw * scale + offset."""
    scale, offset = [], []
    for s in strides:
        h, w = size[0] // s, size[1] // s
        gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # (H, W) each
        n = h * w
        scale.append(np.stack((np.full(n, s), np.full(n, s), np.zeros(n)), 1))  # (HW, 3)
        offset.append(np.stack(((gx.ravel() + 0.5) * s, (gy.ravel() + 0.5) * s, np.zeros(n)), 1))  # (HW, 3)
    to = lambda parts: np.concatenate(parts).astype(np.float32).reshape(-1, 1, 3)  # noqa: E731
    return to(scale), to(offset)


def append_erpose_tail(
    net: onnx.ModelProto, model: ERPoseModel, *, size: tuple[int, int], max_det: int, conf: float
) -> onnx.ModelProto:
    """The traced network (`export_erpose_net`) of input `size` (H, W) -> + the tail (module docstring)."""
    k = model.num_keypoints
    strides = model.strides
    opset = default_opset(net)
    b = TailBuilder(net.graph, ERPOSE_PREFIX)
    confs, poses = [], []
    for s in strides:
        h, w = size[0] // s, size[1] // s
        c = b.node(
            "Reshape", [f"{CONF_OUTPUT_PREFIX}{s}", b.const(f"s{s}_conf_shape", _i64(0, h * w))], f"s{s}_conf"
        )
        confs.append(c)  # (B, HW)
        p = b.node(
            "Reshape",
            [f"{POSE_OUTPUT_PREFIX}{s}", b.const(f"s{s}_pose_shape", _i64(0, 3 * k, h * w))],
            f"s{s}_pose",
        )
        poses.append(p)  # (B, 3K, HW)
    logits = b.node("Concat", confs, "conf_logits", axis=1) if len(confs) > 1 else confs[0]  # (B, N)
    scores = b.node("Sigmoid", [logits], "scores")  # (B, N)
    pose = b.node("Concat", poses, "pose", axis=2) if len(poses) > 1 else poses[0]  # (B, 3K, N)
    scale, offset = decode_tables(strides, size)

    def gather_rows(topk: TailBuilder, index: str, top_scores: str) -> str:
        """Kept candidates (B, M) -> rows (B, M, 6 + 3K): box from keypoints, score, class 0, keypoints."""
        tb = TailBuilder(topk.graph, ERPOSE_PREFIX + "rows/")
        idx = tb.node("Unsqueeze", [index, tb.const("ax1", _i64(1))], "index_b1m")  # (B, 1, M)
        idx = tb.node("Expand", [idx, tb.const("pose_rows", _i64(1, 3 * k, 1))], "index_bkm")  # (B, 3K, M)
        raw = tb.node("GatherElements", [pose, idx], "kept_pose", axis=2)  # (B, 3K, M)
        raw = tb.node("Transpose", [raw], "kept_pose_t", perm=[0, 2, 1])  # (B, M, 3K)
        raw = tb.node(
            "Reshape", [raw, tb.const("kpt_shape", _i64(0, -1, k, 3))], "kept_kpt_raw"
        )  # (B, M, K, 3)
        sc = tb.node("Gather", [tb.const("kpt_scale", scale), index], "kpt_scale_rows")  # (B, M, 1, 3)
        off = tb.node("Gather", [tb.const("kpt_offset", offset), index], "kpt_offset_rows")  # (B, M, 1, 3)
        xy = tb.node(
            "Add", [tb.node("Mul", [raw, sc], "kpt_scaled"), off], "kpt_xy"
        )  # (B, M, K, 3), col 2 = 0
        is_conf = tb.const("kpt_is_conf", np.array([False, False, True]))
        kpt = tb.node("Where", [is_conf, tb.node("Sigmoid", [raw], "kpt_sigmoid"), xy], "kpt")  # (B, M, K, 3)
        box = _box_from_keypoints(tb, kpt, opset)  # (B, M, 4)
        score = tb.node("Unsqueeze", [top_scores, tb.const("axm1", _i64(-1))], "score_col")  # (B, M, 1)
        cls = tb.node("Mul", [score, tb.const("zero", np.array(0.0, np.float32))], "class_col")  # (B, M, 1)
        flat = tb.node(
            "Reshape", [kpt, tb.const("row_kpt_shape", _i64(0, -1, 3 * k))], "kpt_flat"
        )  # (B, M, 3K)
        return tb.node("Concat", [box, score, cls, flat], "rows", axis=-1)  # (B, M, 6 + 3K)

    n = sum((size[0] // s) * (size[1] // s) for s in strides)
    return append_topk_tail(
        net,
        scores=scores,
        num_candidates=n,
        gather_rows=gather_rows,
        width=row_width(k),
        max_det=max_det,
        conf=conf,
    )


def _box_from_keypoints(b: TailBuilder, kpt: str, opset: int) -> str:
    """Keypoints (B, M, K, 3) -> boxes (B, M, 4), as nn.erpose.boxes_from_keypoints."""
    xy = b.node(
        "Slice", [kpt, b.const("xy_lo", _i64(0)), b.const("xy_hi", _i64(2)), b.const("xy_ax", _i64(-1))], "xy"
    )
    conf = b.node("Gather", [kpt, b.const("col_conf", np.array(2, np.int64))], "conf", axis=-1)  # (B, M, K)
    use = b.node("GreaterOrEqual", [conf, b.const("box_conf", np.array(BOX_KPT_CONF, np.float32))], "use")
    use_f = b.node("Cast", [use], "use_f", to=onnx.TensorProto.FLOAT)
    any_f = reduce(b, "ReduceMax", use_f, [-1], "any_conf", keepdims=1, opset=opset)  # (B, M, 1)
    none = b.node("Equal", [any_f, b.const("zero_any", np.array(0.0, np.float32))], "none_conf")  # (B, M, 1)
    use = b.node("Or", [use, none], "use_all")  # (B, M, K): no confident keypoint -> span all
    use = b.node("Unsqueeze", [use, b.const("ax_last", _i64(-1))], "use_k1")  # (B, M, K, 1)
    big = b.const("inf", np.array(np.inf, np.float32))
    neg = b.const("neg_inf", np.array(-np.inf, np.float32))
    lo = reduce(
        b, "ReduceMin", b.node("Where", [use, xy, big], "xy_lo_in"), [2], "lo", keepdims=0, opset=opset
    )
    hi = reduce(
        b, "ReduceMax", b.node("Where", [use, xy, neg], "xy_hi_in"), [2], "hi", keepdims=0, opset=opset
    )
    pad = b.node(
        "Mul", [b.node("Sub", [hi, lo], "extent"), b.const("margin", np.array(BOX_MARGIN, np.float32))], "pad"
    )
    return b.node(
        "Concat", [b.node("Sub", [lo, pad], "x1y1"), b.node("Add", [hi, pad], "x2y2")], "box", axis=-1
    )  # (B, M, 4)


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def build_erpose_graph(
    model: ERPoseModel, spec: PoseSpec, *, opset: int, trace_opset: int, batch: int, dynamic_batch: bool
) -> onnx.ModelProto:
    """The end-to-end graph of a (BN-folded) ERPoseModel as `spec` describes it (size, format, thresholds)."""
    net = export_erpose_net(
        model,
        size=spec.input_size,
        batch=batch,
        input_format=spec.input_format,
        opset=trace_opset,
        dynamic_batch=dynamic_batch,
    )
    graph = append_erpose_tail(
        net, model, size=spec.input_size, max_det=spec.max_det, conf=spec.conf_threshold
    )
    if opset > trace_opset:
        from onnx import version_converter

        graph = version_converter.convert_version(graph, opset)
    return graph
