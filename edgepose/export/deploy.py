"""Deploy graph: the network traced to ONNX, then the decode (`export.decode`) and the NMS tail
(`export.tail`), both built with onnx.helper.

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

import onnx
import torch
from torch import Tensor, nn

from edgepose.export.decode import DecodeTables, append_decode
from edgepose.export.slim import simplify
from edgepose.export.tail import append_nms_tail
from edgepose.nn.model import PoseModel
from edgepose.spec import INPUT_NAME, RAW_OUTPUT_PREFIX, InputFormat, row_width

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
        model.anchors.detach().cpu().numpy(), model.strides, sizes, row_width(model.num_keypoints)
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
