"""Deploy graph pieces: the raw network and the decode, traced to ONNX separately, then joined.

Why two exports instead of one trace of model + decode: the decode must be named as part of the tail
(spec.TAIL_PREFIX) so quantization keeps it float. Tracing it on its own gives a graph whose every
node is decode, so prefixing is exact (no guessing which traced nodes came after the head), the raw
graph doubles as the `--no-nms` product, and each piece is simplified before the tail exists, so the
simplifier can never constant-fold the run-time threshold inputs away.

Why a decode of its own instead of tracing `edgepose.nn.decode`: the same formulas, laid out for the
runtime. `nn.decode` works on (B, A, H, W, K, 2)-shaped slices with broadcast grids, which onnxruntime
executes as thousands of 2-4 element inner loops (traced as is, it added ~40% to edgepose-n's latency).
Here the levels are flattened once to rows (B, N, 6 + 3K), the box decode uses per-candidate constant
tables (N, 4) (no inner broadcasting), and keypoints are decoded after NMS, on the <= max_det kept rows
only (scripts/bench_tail.py: the whole tail now adds ~2% at 256 px).
The verification compares the result with `nn.decode` itself, so the two cannot drift apart silently.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import onnx
import torch
from onnx import compose
from torch import Tensor, nn

from edgepose.export.onnxio import dedupe_opsets
from edgepose.export.tail import KptDecoder, TailBuilder, append_nms_tail
from edgepose.nn.model import PoseModel
from edgepose.spec import INPUT_NAME, RAW_OUTPUT_PREFIX, TAIL_PREFIX, InputFormat

DECODE_PREFIX = TAIL_PREFIX + "decode/"
BATCH_DIM = "batch"  # name of the dynamic batch dimension
# The TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency.
USE_DYNAMO = False
_CANDIDATES = ("boxes", "scores", "rows")  # decode outputs: (B, N, 4), (B, N), (B, N, 6 + 3K) raw rows


def raw_output_names(strides: Sequence[int]) -> list[str]:
    return [f"{RAW_OUTPUT_PREFIX}{s}" for s in strides]


class RawNet(nn.Module):
    """The network on the deploy input: uint8 0-255 is converted inside, float [0, 1] passes through."""

    def __init__(self, model: PoseModel, input_format: InputFormat) -> None:
        super().__init__()
        self.model, self.uint8 = model, input_format is InputFormat.UINT8

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        x = images.float() / 255.0 if self.uint8 else images  # (B, 3, H, W) float in [0, 1]
        return tuple(self.model(x))  # per level (B, A, H/s, W/s, 6 + 3K)


class CandidateDecode(nn.Module):
    """Raw maps -> boxes (B, N, 4) x1y1x2y2 px, scores (B, N), raw rows (B, N, 6 + 3K) for the keypoints.

    N is ordered level, anchor, y, x as in `nn.decode`. The box and score columns are picked and combined
    with constant 0/1 matrices (MatMul) instead of last-axis slices and concats, which onnxruntime runs as
    per-row loops of 2-4 floats; the per-candidate grid/stride/anchor factors are constant tables (N, 4).
    `kpt_scale` (N, 1, 3) = (2s, 2s, 0) and `kpt_offset` (N, 1, 3) = ((gx - 0.5) s, (gy - 0.5) s, 0)
    decode a kept row's keypoints: xy = raw * 2s + offset, conf = sigmoid(raw).
    """

    def __init__(self, anchors: Tensor, strides: Sequence[int], sizes: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        scale, offset, half_wh = [], [], []
        for anc, s, (h, w) in zip(anchors.detach().float(), strides, sizes, strict=True):
            a = anc.shape[0]
            gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")  # (H, W) each
            grid = torch.stack((gx, gy), -1).view(1, h * w, 2).expand(a, -1, -1).reshape(-1, 2)  # (A*H*W, 2)
            offset.append((grid - 0.5) * s)  # (A*H*W, 2)
            scale.append(torch.full((a * h * w, 1), 2.0 * s))
            half_wh.append((2.0 * anc).view(a, 1, 2).expand(-1, h * w, -1).reshape(-1, 2))  # (A*H*W, 2)
        scale_n, offset_n, half_n = (
            torch.cat(scale),
            torch.cat(offset),
            torch.cat(half_wh),
        )  # (N, 1), (N, 2), (N, 2)
        self.register_buffer("box_scale", scale_n.expand(-1, 4).contiguous())  # (N, 4)
        self.register_buffer("box_offset", offset_n.repeat(1, 2))  # (N, 4): ox, oy, ox, oy
        self.register_buffer("box_half", torch.cat((-half_n, half_n), 1))  # (N, 4): -2aw, -2ah, 2aw, 2ah
        pick = torch.zeros(3, 6, 4)  # rows of the 6 sigmoid columns -> box columns
        pick[0, 0, 0] = pick[0, 0, 2] = pick[0, 1, 1] = pick[0, 1, 3] = 1.0  # centre x, y
        pick[1, 2, 0] = pick[1, 2, 2] = pick[1, 3, 1] = pick[1, 3, 3] = 1.0  # w, h
        pick[2, 4, 0] = pick[2, 5, 1] = 1.0  # objectness, class
        self.register_buffer("pick_xy", pick[0])  # (6, 4)
        self.register_buffer("pick_wh", pick[1])  # (6, 4)
        self.register_buffer("pick_obj_cls", pick[2, :, :2].contiguous())  # (6, 2)
        zero = torch.zeros_like(scale_n)
        self.kpt_scale = torch.cat((scale_n, scale_n, zero), 1).view(-1, 1, 3).numpy()  # (N, 1, 3)
        self.kpt_offset = torch.cat((offset_n, zero), 1).view(-1, 1, 3).numpy()  # (N, 1, 3)

    def forward(self, *raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rows = torch.cat([r.reshape(r.shape[0], -1, r.shape[-1]) for r in raw], 1)  # (B, N, 6 + 3K)
        t = rows[..., :6].sigmoid()  # (B, N, 6)
        # centre = (sig * 2 - 0.5 + grid) * stride; half size = (sig * 2)^2 * anchor / 2 = 2 sig^2 anchor
        centre = torch.matmul(t, self.pick_xy) * self.box_scale + self.box_offset  # (B, N, 4): cx, cy, cx, cy
        boxes = centre + torch.matmul(t * t, self.pick_wh) * self.box_half  # (B, N, 4): x1, y1, x2, y2
        scores = torch.matmul(t, self.pick_obj_cls).prod(-1)  # (B, N): sig(obj) * sig(cls)
        return boxes, scores, rows


def keypoint_decoder(scale: np.ndarray, offset: np.ndarray, num_keypoints: int) -> KptDecoder:
    """Tail nodes: gathered raw rows (M, 6 + 3K) + their candidate indices -> keypoints (M, 3K)."""
    k = num_keypoints

    def build(b: TailBuilder, rows: str, index: str) -> str:
        def i64(*v: int) -> np.ndarray:
            return np.array(v, np.int64)

        s = b.node(
            "Gather", [b.const("kpt_scale", scale.astype(np.float32)), index], "kpt_scale_rows"
        )  # (M, 1, 3)
        o = b.node("Gather", [b.const("kpt_offset", offset.astype(np.float32)), index], "kpt_offset_rows")
        raw = b.node(
            "Slice",
            [
                rows,
                b.const("kpt_start", i64(6)),
                b.const("kpt_end", i64(6 + 3 * k)),
                b.const("kpt_axis", i64(1)),
            ],
            "kpt_raw",
        )  # (M, 3K)
        raw3 = b.node("Reshape", [raw, b.const("kpt_shape3", i64(0, k, 3))], "kpt_raw3")  # (M, K, 3)
        xy = b.node("Add", [b.node("Mul", [raw3, s], "kpt_scaled"), o], "kpt_xy")  # (M, K, 3), conf column 0
        is_conf = b.const("kpt_is_conf", np.array([False, False, True]))
        kpt = b.node("Where", [is_conf, b.node("Sigmoid", [raw3], "kpt_sigmoid"), xy], "kpt")  # (M, K, 3)
        return b.node("Reshape", [kpt, b.const("kpt_shape", i64(0, 3 * k))], "kpts")  # (M, 3K)

    return build


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


def export_raw(
    model: PoseModel,
    *,
    size: tuple[int, int],
    batch: int,
    input_format: InputFormat,
    opset: int,
    dynamic_batch: bool,
) -> onnx.ModelProto:
    """The raw-head graph: INPUT_NAME -> one RAW_OUTPUT_PREFIX + stride map per level (simplified)."""
    dtype = torch.uint8 if input_format is InputFormat.UINT8 else torch.float32
    x = torch.zeros((batch, 3, *size), dtype=dtype)  # (B, 3, H, W)
    names = raw_output_names(model.strides)
    return simplify(
        trace(
            RawNet(model, input_format).eval(),
            (x,),
            [INPUT_NAME],
            names,
            opset=opset,
            dynamic_batch=dynamic_batch,
        )
    )


def export_decode(
    model: PoseModel, raw_shapes: list[tuple[int, ...]], *, opset: int, dynamic_batch: bool
) -> tuple[onnx.ModelProto, KptDecoder]:
    """The candidate decode graph: raw maps -> boxes, scores, rows (simplified); and its keypoint decoder."""
    raw = tuple(torch.zeros(s) for s in raw_shapes)  # per level (B, A, H, W, 6 + 3K)
    mod = CandidateDecode(model.anchors, model.strides, [s[2:4] for s in raw_shapes]).eval()
    names = raw_output_names(model.strides)
    graph = trace(mod, raw, names, list(_CANDIDATES), opset=opset, dynamic_batch=dynamic_batch)
    return simplify(graph), keypoint_decoder(mod.kpt_scale, mod.kpt_offset, model.num_keypoints)


def join_end2end(
    raw: onnx.ModelProto,
    dec: onnx.ModelProto,
    decode_kpts: KptDecoder,
    *,
    num_keypoints: int,
    max_det: int,
    conf: float,
    iou: float,
) -> onnx.ModelProto:
    """raw -> candidate decode (every node renamed under DECODE_PREFIX) -> NMS tail with keypoint decode."""
    dec = compose.add_prefix(dec, DECODE_PREFIX)
    io_map = [(o.name, DECODE_PREFIX + o.name) for o in raw.graph.output]
    merged = compose.merge_models(raw, dec, io_map=io_map)
    dedupe_opsets(merged)
    cand = [DECODE_PREFIX + n for n in _CANDIDATES]
    return append_nms_tail(
        merged,
        boxes=cand[0],
        scores=cand[1],
        kpts=cand[2],
        num_keypoints=num_keypoints,
        max_det=max_det,
        conf=conf,
        iou=iou,
        decode_kpts=decode_kpts,
    )
