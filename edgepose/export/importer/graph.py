"""Graph surgery for the import: load, normalise the input, and append the adapter to the NMS tail.

Torch-free (onnx, numpy). Every node added here is named under IMPORT_PREFIX (inside spec.TAIL_PREFIX),
so quantization keeps the adapter float like the rest of the tail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgepose.errors import ExportError, ModelFileError
from edgepose.export.importer.layout import PoseLayout
from edgepose.export.tail import KptDecoder, TailBuilder
from edgepose.onnxkit.graph import declared_shape, graph_inputs
from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    TAIL_PREFIX,
)

IMPORT_PREFIX = TAIL_PREFIX + "import/"
RAW_IMPORT_NAME = "raw_output"  # the source output's new name when it clashes with ours
_RESERVED = frozenset({DETECTIONS_NAME, NUM_DETS_NAME, SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME})


def load_source(src: Path) -> onnx.ModelProto:
    if not src.is_file():
        raise ModelFileError(f"{src}: no such file; pass the raw pose .onnx to import")
    if src.stat().st_size == 0:
        raise ModelFileError(f"{src} is empty (0 bytes); pass the raw pose .onnx to import")
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # DecodeError, OSError, ...: all mean "not a readable ONNX"
        raise ModelFileError(
            f"{src} is not a readable ONNX file ({type(exc).__name__}); pass a .onnx model"
        ) from exc
    try:  # the source's own faults are named here, not blamed on the import at the final check
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFileError(f"{src} is not a valid ONNX model ({first}); re-export it") from exc
    return model


def fix_input(model: onnx.ModelProto, img: int | tuple[int, int] | None, src: str) -> tuple[int, int]:
    """Rename the image input to INPUT_NAME and make its H, W static; returns (H, W)."""
    inp = graph_inputs(model)[0]
    shape = declared_shape(inp)
    want = (img, img) if isinstance(img, int) else tuple(img) if img is not None else None
    static = all(isinstance(d, int) and d > 0 for d in shape[2:])
    if not static and want is None:
        raise ExportError(
            f"{src}: input '{inp.name}' has dynamic spatial size (B, 3, {shape[2]}, {shape[3]}), expected "
            "static (B, 3, H, W); pass --img S (e.g. --img 640) to fix it"
        )
    if want is not None and any(v <= 0 for v in want):
        raise ExportError(f"--img {img} must be a positive size in pixels")
    fixed = [(d, v) for d, v in zip(shape[2:], want or (), strict=False) if isinstance(d, int) and d > 0]
    if any(d != v for d, v in fixed):  # a static side must keep its size
        raise ExportError(
            f"--img {img} does not match the graph's fixed input (B, 3, {shape[2]}, {shape[3]}); drop --img "
            "or re-export the source with dynamic=True"
        )
    size = want if want is not None else (int(shape[2]), int(shape[3]))
    dims = inp.type.tensor_type.shape.dim
    for d, v in zip(dims[2:], size, strict=True):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    del model.graph.value_info[:]  # stale dynamic annotations; shape inference rebuilds them
    if inp.name != INPUT_NAME:
        old = inp.name
        for node in model.graph.node:
            node.input[:] = [INPUT_NAME if i == old else i for i in node.input]
        inp.name = INPUT_NAME
    return int(size[0]), int(size[1])


def free_output_name(model: onnx.ModelProto) -> str:
    """The source output's tensor name, renamed to RAW_IMPORT_NAME if it takes one of our I/O names."""
    old = model.graph.output[0].name
    if old not in _RESERVED:
        return old
    for node in model.graph.node:
        node.input[:] = [RAW_IMPORT_NAME if i == old else i for i in node.input]
        node.output[:] = [RAW_IMPORT_NAME if o == old else o for o in node.output]
    model.graph.output[0].name = RAW_IMPORT_NAME
    return RAW_IMPORT_NAME


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (quantization plans address layers by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            name = f"{n.op_type}_{i}"
            while name in taken:
                name += "_"
            n.name = name
            taken.add(name)


def _i64(b: TailBuilder, name: str, v: list[int]) -> str:
    return b.const(name, np.array(v, np.int64))


def _last_axis(b: TailBuilder, src: str, name: str, lo: int, hi: int) -> str:
    """src[..., lo:hi] as one Slice node."""
    ends = [_i64(b, name + "_lo", [lo]), _i64(b, name + "_hi", [hi]), _i64(b, name + "_axis", [-1])]
    return b.node("Slice", [src, *ends], name)


def append_adapter(
    model: onnx.ModelProto, raw: str, num_channels: int, lay: PoseLayout
) -> tuple[str, str, str]:
    """Nodes turning raw (B, C, N) into the NMS tail's boxes (B, N, 4), scores (B, N), kpts (B, N, 3K).

    Keypoint visibility logits are left for `vis_sigmoid`, which squashes only the kept rows.
    """
    b = TailBuilder(model.graph, IMPORT_PREFIX)
    t = b.node("Transpose", [raw], "bnc", perm=[0, 2, 1])  # (B, N, C)
    xy, wh = _last_axis(b, t, "cxcy", 0, 2), _last_axis(b, t, "wh", 2, 4)  # (B, N, 2) each
    half = b.node("Mul", [wh, b.const("half", np.array(0.5, np.float32))], "half_wh")
    boxes = b.node(
        "Concat", [b.node("Sub", [xy, half], "x1y1"), b.node("Add", [xy, half], "x2y2")], "boxes", axis=-1
    )  # (B, N, 4) x1, y1, x2, y2
    score = _last_axis(b, t, "score_n1", 4, 5)  # (B, N, 1)
    scores = b.node("Squeeze", [score, _i64(b, "score_axis", [-1])], "score_raw")  # (B, N)
    if not lay.score_prob:
        scores = b.node("Sigmoid", [scores], "scores")
    kpts = _last_axis(b, t, "kpts", 5, num_channels)  # (B, N, 3K)
    return boxes, scores, kpts


def vis_sigmoid(num_keypoints: int) -> KptDecoder:
    """The NMS tail's keypoint decoder for logit visibility: Sigmoid on the kept (M, 3K) rows only."""
    k = num_keypoints

    def decode(b: TailBuilder, rows: str, box_index: str) -> str:
        per = b.node("Reshape", [rows, _i64(b, "kpt_shape_mk3", [-1, k, 3])], "kpt_mk3")  # (M, K, 3)
        vis = b.node("Sigmoid", [_last_axis(b, per, "kpt_vis_logit", 2, 3)], "kpt_vis")  # (M, K, 1)
        per = b.node("Concat", [_last_axis(b, per, "kpt_xy", 0, 2), vis], "kpt_prob", axis=-1)  # (M, K, 3)
        return b.node("Reshape", [per, _i64(b, "kpt_shape_m3k", [-1, 3 * k])], "kpt_rows")  # (M, 3K)

    return decode
