"""`edgepose export`: a checkpoint -> one end-to-end ONNX file (decode + NMS inside), self-verified."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepose.cli import app
from edgepose.cli._common import console, handle_errors
from edgepose.spec import InputFormat

_HELP_CONF = (
    "Baked score threshold (0.25 deploys; use 0.001 for COCO evaluation). Overridable at run time via the "
    "'score_threshold' input."
)


@app.command()
@handle_errors
def export(
    weights: Annotated[Path, typer.Option("--weights", help="Checkpoint (.pt) from `edgepose train`.")],
    img: Annotated[
        int | None, typer.Option("--img", help="Input size in pixels (square); default: the model's size.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output .onnx file.")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (13-21).")] = 17,
    batch: Annotated[int, typer.Option("--batch", help="Static batch size.")] = 1,
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="Batch size chosen at run time.")
    ] = False,
    conf: Annotated[float, typer.Option("--conf", help=_HELP_CONF)] = 0.25,
    iou: Annotated[
        float, typer.Option("--iou", help="Baked NMS IoU threshold (input 'iou_threshold').")
    ] = 0.45,
    max_det: Annotated[
        int,
        typer.Option(
            "--max-det", help="Detections per image: fixes the output shape (input 'max_detections')."
        ),
    ] = 100,
    input_format: Annotated[
        InputFormat, typer.Option("--input-format", help="float: RGB in [0, 1]; uint8: raw RGB 0-255.")
    ] = InputFormat.FLOAT,
    no_nms: Annotated[
        bool,
        typer.Option(
            "--no-nms", help="Write the raw-head graph (one output per stride) for vendor compilers."
        ),
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the onnxruntime vs PyTorch check (not recommended).")
    ] = False,
) -> None:
    """Export a checkpoint to ONNX: image in, zero-padded detections + poses out; verified against PyTorch."""
    from edgepose.export.exporter import export_model

    r = export_model(
        weights,
        out,
        img=img,
        opset=opset,
        batch=batch,
        dynamic_batch=dynamic_batch,
        conf=conf,
        iou=iou,
        max_det=max_det,
        input_format=input_format,
        nms=not no_nms,
        verify=not no_verify,
    )
    h, w = r.spec.input_size
    console.print(
        f"wrote {r.path} ({r.size_bytes / 1e6:.2f} MB): {r.spec.graph.value} graph, {h}x{w} "
        f"{r.spec.input_format.value} input, opset {r.opset}, IR {r.ir_version}, {r.nodes.total} nodes "
        f"({r.nodes.tail} in the decode/NMS tail) in {r.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    if r.verify is not None:
        v = r.verify
        console.print(
            f"verified on {v.images} images at score thresholds {', '.join(f'{t:g}' for t in v.thresholds)}: "
            f"{v.detections} detections match PyTorch; max diff box {v.max_box_diff:.2e} px, "
            f"keypoints {v.max_kpt_diff:.2e} px, scores {v.max_prob_diff:.1e}"
            + (
                f"; {v.borderline} image/threshold pair(s) differ by one NMS decision at float-rounding level"
                if v.borderline
                else ""
            ),
            highlight=False,
            soft_wrap=True,
        )
