"""Deploy graph pieces: the network traced to ONNX, then the decode and NMS tail built with onnx.helper.

Two layouts of the network come out of one trace function:
- the raw head (`--no-nms`, the vendor-compiler product): per level (B, A, H, W, 6 + 3K), the same maps
  as `PoseModel.forward`;
- the head convolutions' own outputs (B, A * (6 + 3K), H, W), which the end-to-end graph decodes.

Why the end-to-end graph reads the convolutions' outputs instead of the raw maps: turning a head conv's
NCHW output into (B, A, H, W, 6 + 3K) rows is a transpose with a 57-float inner axis, then the decode
concatenated the levels' rows and sliced their first 6 columns: three copies of every raw value,
~0.4 ms at 256 px on one x86 core, of which only 6 of 57 columns are needed for the boxes and scores and
<= max_det rows for the keypoints. Here the box/score columns are sliced per level as contiguous blocks
(6 x H*W floats per anchor), and after NMS each kept row's 3K keypoint values are gathered straight out
of its level's conv output (a flat index table per candidate), so the raw rows are never materialised.
scripts/bench_tail.py measures the result against the raw-head graph side by side.

Why hand-built nodes instead of tracing a torch decode: every tail node must carry spec.TAIL_PREFIX (so
quantization keeps it float), the run-time thresholds must stay graph inputs (a simplifier could fold
them), and the gather-after-NMS needs the NMS output anyway. The verification compares the result with
`edgepose.nn.decode` (the training-time decode), so the two cannot drift apart silently.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from edgepose.export.tail import KptGather, TailBuilder, append_nms_tail
from edgepose.nn.model import PoseModel
from edgepose.spec import INPUT_NAME, RAW_OUTPUT_PREFIX, TAIL_PREFIX, InputFormat

DECODE_PREFIX = TAIL_PREFIX + "decode/"
BATCH_DIM = "batch"  # name of the dynamic batch dimension
CONV_OUTPUT_PREFIX = "head_conv_s"  # end-to-end graphs: the head convs' outputs, read by the tail
# The TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency.
USE_DYNAMO = False


def raw_output_names(strides: Sequence[int]) -> list[str]:
    return [f"{RAW_OUTPUT_PREFIX}{s}" for s in strides]


def conv_output_names(strides: Sequence[int]) -> list[str]:
    return [f"{CONV_OUTPUT_PREFIX}{s}" for s in strides]


class RawNet(nn.Module):
    """The network on the deploy input: uint8 0-255 is converted inside, float [0, 1] passes through.

    Outputs per level the raw maps (B, A, H, W, 6 + 3K), or with `conv_layout` the head convolutions'
    outputs (B, A * (6 + 3K), H, W) (the same numbers before PoseModel's reshape and permute).
    """

    def __init__(self, model: PoseModel, input_format: InputFormat, conv_layout: bool = False) -> None:
        super().__init__()
        self.model, self.uint8, self.conv_layout = model, input_format is InputFormat.UINT8, conv_layout

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        x = images.float() / 255.0 if self.uint8 else images  # (B, 3, H, W) float in [0, 1]
        if not self.conv_layout:
            return tuple(self.model(x))  # per level (B, A, H/s, W/s, 6 + 3K)
        m = self.model
        feats = m.neck(m.backbone(x))
        return tuple(conv(f) for conv, f in zip(m.head.convs, feats, strict=True))  # (B, A*(6+3K), h, w)


@dataclass(frozen=True)
class DecodeTables:
    """Per-candidate constants of the decode; N candidates ordered level, anchor, y, x as in nn.decode.

    Boxes: centre = sigmoid * 2s + (grid - 0.5) s and half size = 2 sigmoid^2 anchor, so `box_scale`
    (2, N) = 2s, `box_offset` (2, N) = (grid - 0.5) s, `box_half` (2, N) = 2 anchor (x row, y row).
    Keypoints: xy = raw * 2s + (grid - 0.5) s, conf = sigmoid(raw): `kpt_scale` (N, 1, 3) = (2s, 2s, 0),
    `kpt_offset` (N, 1, 3) = ((gx - 0.5) s, (gy - 0.5) s, 0).
    Gather: `level_offset[l]` (N, 1) = the flat position, within one image's conv output of level l, of
    the candidate's first channel (a * C * H*W + y * W + x), 0 for candidates of other levels (so every
    index stays in range); `level_mask[l]` (N, 1) marks level l's candidates.
    """

    box_scale: np.ndarray
    box_offset: np.ndarray
    box_half: np.ndarray
    kpt_scale: np.ndarray
    kpt_offset: np.ndarray
    level_offset: list[np.ndarray]
    level_mask: list[np.ndarray]
    level_size: list[int]  # A * C * H * W: one image's conv output of the level
    level_hw: list[tuple[int, int]]

    @classmethod
    def build(
        cls, anchors: np.ndarray, strides: Sequence[int], sizes: Sequence[tuple[int, int]], channels: int
    ) -> DecodeTables:
        """`anchors` (L, A, 2) px, `sizes` per level (H, W), `channels` = 6 + 3K per anchor."""
        scale, offset, half, lvl_off = [], [], [], []
        for anc, s, (h, w) in zip(np.asarray(anchors, np.float32), strides, sizes, strict=True):
            a = anc.shape[0]
            gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # (H, W) each
            grid = np.tile(np.stack((gx.ravel(), gy.ravel()), 1), (a, 1))  # (A*H*W, 2)
            offset.append((grid - 0.5) * s)
            scale.append(np.full((a * h * w, 1), 2.0 * s))
            half.append(np.repeat(2.0 * anc, h * w, axis=0))  # (A*H*W, 2)
            # candidate (a, y, x) -> its channel-0 value in the level's (A, C, H*W) block
            cell = np.arange(h * w)
            lvl_off.append((np.arange(a)[:, None] * channels * h * w + cell[None, :]).ravel())  # (A*H*W,)
        scale_n, offset_n, half_n = (np.concatenate(v).astype(np.float32) for v in (scale, offset, half))
        n_total, starts = len(scale_n), np.cumsum([0] + [len(o) for o in lvl_off])
        level_offset, level_mask = [], []
        for i, off in enumerate(lvl_off):
            table = np.zeros((n_total, 1), np.int64)
            table[starts[i] : starts[i + 1], 0] = off
            mask = np.zeros((n_total, 1), bool)
            mask[starts[i] : starts[i + 1]] = True
            level_offset.append(table)
            level_mask.append(mask)
        zero = np.zeros_like(scale_n)
        return cls(
            box_scale=np.ascontiguousarray(np.repeat(scale_n, 2, axis=1).T),  # (2, N)
            box_offset=np.ascontiguousarray(offset_n.T),
            box_half=np.ascontiguousarray(half_n.T),
            kpt_scale=np.concatenate((scale_n, scale_n, zero), 1).reshape(-1, 1, 3),
            kpt_offset=np.concatenate((offset_n, zero), 1).reshape(-1, 1, 3),
            level_offset=level_offset,
            level_mask=level_mask,
            level_size=[
                int(anc.shape[0]) * channels * h * w for anc, (h, w) in zip(anchors, sizes, strict=True)
            ],
            level_hw=[(int(h), int(w)) for h, w in sizes],
        )


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def append_decode(
    graph: onnx.GraphProto,
    convs: Sequence[str],
    tables: DecodeTables,
    *,
    num_anchors: int,
    num_keypoints: int,
    single_image: bool,
) -> tuple[str, str, KptGather]:
    """Decode nodes on the head convs' outputs `convs` (B, A*C, H, W): boxes (B, N, 4) x1y1x2y2 px and
    scores (B, N) for NMS, and the KptGather that fetches + decodes the kept rows' keypoints (M, 3K).

    `single_image`: the batch is statically 1, so the image index of a kept row is always 0 (saves the
    per-level batch offset nodes).
    """
    b = TailBuilder(graph, DECODE_PREFIX)
    a, k = num_anchors, num_keypoints
    c = 6 + 3 * k
    c0, c6, ax2, flat_shape = (
        b.const(n, _i64(v)) for n, v in (("c0", 0), ("c6", 6), ("ax2", 2), ("flat", -1))
    )
    t_levels = []
    for i, (name, (h, w)) in enumerate(zip(convs, tables.level_hw, strict=True)):
        r = b.node(
            "Reshape", [name, b.const(f"l{i}_shape", _i64(0, a, c, h * w))], f"l{i}_rows"
        )  # (B, A, C, HW)
        # channels 0-5 of every anchor: A contiguous blocks of 6 x HW floats
        t = b.node(
            "Slice",
            [r, c0, c6, ax2],
            f"l{i}_head",
        )
        t = b.node("Transpose", [t], f"l{i}_head_t", perm=[0, 2, 1, 3])  # (B, 6, A, HW)
        t_levels.append(b.node("Reshape", [t, b.const(f"l{i}_shape6", _i64(0, 6, a * h * w))], f"l{i}_head6"))
    cat = b.node("Concat", t_levels, "head", axis=2) if len(t_levels) > 1 else t_levels[0]  # (B, 6, N)
    sig = b.node("Sigmoid", [cat], "head_sigmoid")  # (B, 6, N)
    xy = b.node("Gather", [sig, b.const("cols_xy", _i64(0, 1))], "t_xy", axis=1)  # (B, 2, N)
    wh = b.node("Gather", [sig, b.const("cols_wh", _i64(2, 3))], "t_wh", axis=1)  # (B, 2, N)
    centre = b.node(
        "Add",
        [
            b.node("Mul", [xy, b.const("box_scale", tables.box_scale)], "xy_scaled"),
            b.const("box_offset", tables.box_offset),
        ],
        "centre",
    )  # (B, 2, N) px
    half = b.node(
        "Mul", [b.node("Mul", [wh, wh], "wh_sq"), b.const("box_half", tables.box_half)], "half"
    )  # (B, 2, N) px
    corners = b.node(
        "Concat",
        [b.node("Sub", [centre, half], "top_left"), b.node("Add", [centre, half], "bottom_right")],
        "corners",
        axis=1,
    )  # (B, 4, N)
    boxes = b.node("Transpose", [corners], "boxes", perm=[0, 2, 1])  # (B, N, 4)
    obj = b.node("Gather", [sig, b.const("col_obj", np.array(4, np.int64))], "obj", axis=1)  # (B, N)
    cls = b.node("Gather", [sig, b.const("col_cls", np.array(5, np.int64))], "cls", axis=1)  # (B, N)
    scores = b.node("Mul", [obj, cls], "scores")  # (B, N)

    flats = [b.node("Reshape", [name, flat_shape], f"l{i}_flat") for i, name in enumerate(convs)]

    def gather(nb: TailBuilder, image: str, cand: str) -> str:
        """Kept rows (image (M,), candidate (M,)) -> decoded keypoints (M, 3K), all under the NMS prefix."""
        img_col = (
            None if single_image else nb.node("Unsqueeze", [image, nb.const("kpt_ax1", _i64(1))], "kpt_image")
        )
        out = None
        for i, (hw, flat) in enumerate(zip(tables.level_hw, flats, strict=True)):
            n_hw = hw[0] * hw[1]
            idx = nb.node(
                "Gather", [nb.const(f"kpt_l{i}_offset", tables.level_offset[i]), cand], f"kpt_l{i}_base"
            )  # (M, 1)
            if img_col is not None:
                step = nb.const(f"kpt_l{i}_size", np.array(tables.level_size[i], np.int64))
                idx = nb.node(
                    "Add",
                    [idx, nb.node("Mul", [img_col, step], f"kpt_l{i}_image_base")],
                    f"kpt_l{i}_row_base",
                )
            cols = nb.const(f"kpt_l{i}_cols", (np.arange(6, c, dtype=np.int64) * n_hw)[None, :])  # (1, 3K)
            idx = nb.node("Add", [idx, cols], f"kpt_l{i}_index")  # (M, 3K)
            g = nb.node("Gather", [flat, idx], f"kpt_l{i}_raw", axis=0)  # (M, 3K)
            if out is None:
                out = g
            else:
                mask = nb.node(
                    "Gather", [nb.const(f"kpt_l{i}_mask", tables.level_mask[i]), cand], f"kpt_l{i}_is"
                )
                out = nb.node("Where", [mask, g, out], f"kpt_l{i}_pick")  # (M, 3K)
        assert out is not None
        s = nb.node("Gather", [nb.const("kpt_scale", tables.kpt_scale), cand], "kpt_scale_rows")  # (M, 1, 3)
        o = nb.node("Gather", [nb.const("kpt_offset", tables.kpt_offset), cand], "kpt_offset_rows")
        raw3 = nb.node("Reshape", [out, nb.const("kpt_shape3", _i64(0, k, 3))], "kpt_raw3")  # (M, K, 3)
        xy = nb.node("Add", [nb.node("Mul", [raw3, s], "kpt_scaled"), o], "kpt_xy")  # (M, K, 3), conf col 0
        is_conf = nb.const("kpt_is_conf", np.array([False, False, True]))
        kpt = nb.node("Where", [is_conf, nb.node("Sigmoid", [raw3], "kpt_sigmoid"), xy], "kpt")  # (M, K, 3)
        return nb.node("Reshape", [kpt, nb.const("kpt_shape", _i64(0, 3 * k))], "kpts")  # (M, 3K)

    return boxes, scores, gather


def trace(
    module: nn.Module,
    args: tuple[Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    *,
    opset: int,
    dynamic_batch: bool,
) -> onnx.ModelProto:
    """torch.onnx.export (TorchScript exporter, opset pinned) into memory."""
    axes = {n: {0: BATCH_DIM} for n in inputs + outputs} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer notices
        torch.onnx.export(
            module,
            args,
            buf,
            input_names=inputs,
            output_names=outputs,
            opset_version=opset,
            dynamo=USE_DYNAMO,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim (constant folding, dead-node and redundant-reshape removal); keeps I/O names."""
    import onnxslim

    return onnxslim.slim(model)


def export_net(
    model: PoseModel,
    *,
    size: tuple[int, int],
    batch: int,
    input_format: InputFormat,
    opset: int,
    dynamic_batch: bool,
    conv_layout: bool = False,
) -> onnx.ModelProto:
    """The network graph: INPUT_NAME -> per level RAW_OUTPUT_PREFIX + stride raw maps (B, A, H, W, C), or
    with `conv_layout` CONV_OUTPUT_PREFIX + stride head conv outputs (B, A * C, H, W); simplified."""
    dtype = torch.uint8 if input_format is InputFormat.UINT8 else torch.float32
    x = torch.zeros((batch, 3, *size), dtype=dtype)  # (B, 3, H, W)
    names = (conv_output_names if conv_layout else raw_output_names)(model.strides)
    return simplify(
        trace(
            RawNet(model, input_format, conv_layout).eval(),
            (x,),
            [INPUT_NAME],
            names,
            opset=opset,
            dynamic_batch=dynamic_batch,
        )
    )


def end2end(
    net: onnx.ModelProto,
    model: PoseModel,
    *,
    size: tuple[int, int],
    max_det: int,
    conf: float,
    iou: float,
) -> onnx.ModelProto:
    """conv-layout network graph of input `size` (H, W) -> + decode (DECODE_PREFIX) -> + NMS tail with
    the keypoint gather. Level sizes follow from `size` and the strides (the exporter has checked that
    the largest stride divides it), not from the traced graph's shape annotations."""
    outs = list(net.graph.output)
    sizes = [(size[0] // s, size[1] // s) for s in model.strides]
    dim0 = net.graph.input[0].type.tensor_type.shape.dim[0]
    single = dim0.HasField("dim_value") and dim0.dim_value == 1
    tables = DecodeTables.build(
        model.anchors.detach().cpu().numpy(), model.strides, sizes, 6 + 3 * model.num_keypoints
    )
    boxes, scores, gather = append_decode(
        net.graph,
        [o.name for o in outs],
        tables,
        num_anchors=model.num_anchors,
        num_keypoints=model.num_keypoints,
        single_image=single,
    )
    return append_nms_tail(
        net,
        boxes=boxes,
        scores=scores,
        kpts=None,
        num_keypoints=model.num_keypoints,
        max_det=max_det,
        conf=conf,
        iou=iou,
        gather_kpts=gather,
    )
