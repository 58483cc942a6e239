"""`edgepose export`: a checkpoint -> one end-to-end ONNX file (decode + NMS inside), self-verified."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgepose.cli._app import app
from edgepose.cli._common import ForceOpt, console, handle_errors, warn
from edgepose.defaults import DEFAULT_OPSET, DEPLOY, EVAL
from edgepose.errors import ConfigError
from edgepose.export.importer.options import KptConf, Layout
from edgepose.spec import InputFormat

if TYPE_CHECKING:
    from edgepose.export.exporter import ExportReport

_HELP_CONF = (
    f"Baked score threshold ({DEPLOY.conf} deploys; use {EVAL.conf} for COCO evaluation). Overridable at "
    "run time via the 'score_threshold' input."
)


# Options of `edgepose export` (typer reads the help, default and parser from each).
_WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="Checkpoint (.pt) from `edgepose train`.")
]
_FromOnnxOpt = Annotated[
    Path | None,
    typer.Option(
        "--from-onnx",
        help="Instead of --weights: wrap a third-party pose ONNX with edgepose's tail and metadata: raw "
        "Ultralytics YOLOv8/YOLO11-pose (one output (B, 4 + 1 + 3K, N)) gets decode + NMS, an NMS-free "
        "YOLO26-pose (one output (B, N, 6 + 3K)) gets the TopK tail.",
    ),
]
_LayoutOpt = Annotated[
    Layout,
    typer.Option(
        "--layout",
        metavar="<layout>",
        help="--from-onnx: the source's output layout: ultralytics-pose (raw grid output) or "
        "ultralytics-pose-e2e (NMS-free rows, also picked automatically when found).",
    ),
]
_KptConfOpt = Annotated[
    KptConf,
    typer.Option(
        "--kpt-conf", help="--from-onnx: keypoint visibility is logit or prob; auto reads it from the graph."
    ),
]
_ImgOpt = Annotated[
    int | None,
    typer.Option(
        "--img",
        help="Input size in pixels (square); default: the size the checkpoint was trained at (--from-onnx: "
        "the model's; needed when it is dynamic).",
    ),
]
_OutOpt = Annotated[Path, typer.Option("--out", help="Output .onnx file.")]
_OpsetOpt = Annotated[int, typer.Option("--opset", help="ONNX opset (13-21).")]
_BatchOpt = Annotated[int, typer.Option("--batch", help="Static batch size.")]
_DynamicBatchOpt = Annotated[bool, typer.Option("--dynamic-batch", help="Batch size chosen at run time.")]
_ConfOpt = Annotated[float, typer.Option("--conf", help=_HELP_CONF)]
_IouOpt = Annotated[
    float,
    typer.Option(
        "--iou", help="Baked NMS IoU threshold (input 'iou_threshold'); NMS-free graphs (ER-Pose) have none."
    ),
]
_MaxDetOpt = Annotated[
    int,
    typer.Option("--max-det", help="Detections per image: fixes the output shape (input 'max_detections')."),
]
_InputFormatOpt = Annotated[
    InputFormat, typer.Option("--input-format", help="float: RGB in [0, 1]; uint8: raw RGB 0-255.")
]
_NoNmsOpt = Annotated[
    bool,
    typer.Option(
        "--no-nms",
        help="Write the raw-head graph (one output per stride) for vendor compilers (YOLO-Pose only).",
    ),
]
_NoVerifyOpt = Annotated[
    bool, typer.Option("--no-verify", help="Skip the onnxruntime vs PyTorch check (not recommended).")
]


@app.command()
@handle_errors
def export(
    weights: _WeightsOpt = None,
    from_onnx: _FromOnnxOpt = None,
    layout: _LayoutOpt = Layout.ULTRALYTICS_POSE,
    kpt_conf: _KptConfOpt = KptConf.AUTO,
    img: _ImgOpt = None,
    out: _OutOpt = Path("model.onnx"),
    opset: _OpsetOpt = DEFAULT_OPSET,
    batch: _BatchOpt = 1,
    dynamic_batch: _DynamicBatchOpt = False,
    conf: _ConfOpt = DEPLOY.conf,
    iou: _IouOpt = DEPLOY.iou,
    max_det: _MaxDetOpt = DEPLOY.max_det,
    input_format: _InputFormatOpt = InputFormat.FLOAT,
    no_nms: _NoNmsOpt = False,
    no_verify: _NoVerifyOpt = False,
    force: ForceOpt = False,
) -> None:
    """Export a checkpoint to ONNX: image in, zero-padded detections + poses out; verified against PyTorch.

    With --from-onnx, wraps a raw third-party pose ONNX (Ultralytics YOLOv8/YOLO11-pose) instead.
    """
    from edgepose.fsio import check_new

    if (weights is None) == (from_onnx is None):
        raise ConfigError("pass exactly one of --weights CKPT or --from-onnx MODEL.onnx")
    check_new(out, force=force)
    if from_onnx is not None:
        only_weights = {
            "--opset": opset != DEFAULT_OPSET, "--batch": batch != 1, "--dynamic-batch": dynamic_batch,
            "--input-format": input_format is not InputFormat.FLOAT, "--no-nms": no_nms,
        }  # fmt: skip
        given = [o for o, on in only_weights.items() if on]
        if given:
            raise ConfigError(
                f"{given[0]} applies to --weights only; --from-onnx keeps the source's batch and opset"
            )
        _import(from_onnx, out, layout=layout, kpt_conf=kpt_conf, img=img, conf=conf, iou=iou,
                max_det=max_det, verify=not no_verify)  # fmt: skip
        return
    if layout is not Layout.ULTRALYTICS_POSE or kpt_conf is not KptConf.AUTO:
        raise ConfigError("--layout and --kpt-conf apply to --from-onnx only")
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
    _print_export(r)


def _import(src: Path, out: Path, *, layout: Layout, kpt_conf: KptConf, img: int | None, conf: float,
            iou: float, max_det: int, verify: bool) -> None:  # fmt: skip
    """`export --from-onnx`: wrap a third-party raw pose ONNX (edgepose.export.importer) and report."""
    from edgepose.export.importer import import_onnx

    r = import_onnx(src, out, layout=layout, kpt_conf=kpt_conf, img=img, conf=conf, iou=iou, max_det=max_det,
                    verify=verify)  # fmt: skip
    h, w = r.spec.input_size
    b, c, n = r.source_shape
    console.print(
        f"wrote {r.path} ({r.size_bytes / 1e6:.2f} MB): {r.spec.graph.value} graph from "
        f"{r.layout.value} output ({b}, {c}, {n}), K = {r.spec.num_keypoints}, {h}x{w} float input, "
        f"opset {r.opset}, IR {r.ir_version}, {r.nodes.total} nodes ({r.nodes.tail} in the decode/NMS tail) "
        f"in {r.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"keypoint visibility: {r.kpt_conf.value} ({r.kpt_conf_reason})", highlight=False, soft_wrap=True
    )
    if r.check is not None:
        v = r.check
        console.print(
            f"verified on {v.images} images at score thresholds {', '.join(f'{t:g}' for t in v.thresholds)}: "
            f"{v.detections} detections match the NumPy reference decode + NMS; max diff box "
            f"{v.max_box_diff:.2e} px, keypoints {v.max_kpt_diff:.2e} px",
            highlight=False,
            soft_wrap=True,
        )
    for note in r.notes:
        warn(note)


def _print_export(r: ExportReport) -> None:
    """What was written, and how it matched PyTorch."""
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
