"""`export_model`: checkpoint -> one verified ONNX file (end-to-end, or the raw head with nms=False).

Steps: validate options -> load checkpoint -> fold BatchNorm -> trace raw net and decode (simplified
with onnxslim) -> join + NMS tail -> `onnxkit.finalize` (IR pin, metadata, onnx.checker full check,
verification against PyTorch in onnxruntime, atomic write). Nothing is written unless all pass.

Thresholds and opset: None means the deployment setting in `edgepose.defaults` (DEPLOY, DEFAULT_OPSET),
read at call time. For COCO evaluation use defaults.EVAL (a low score threshold, max_det >= 100): feed
`score_threshold` at run time or export with --conf 0.001; max_det fixes the output shape, so it can
only be lowered at run time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from edgepose import __version__, defaults
from edgepose.errors import ExportError
from edgepose.export.tail import TAIL_MIN_OPSET, check_thresholds
from edgepose.export.verify import VerifyResult, verify_export
from edgepose.fsio import check_parent
from edgepose.nn.config import HeadKind
from edgepose.onnxkit.graph import NodeCounts, node_counts
from edgepose.onnxkit.model import finalize
from edgepose.spec import GraphKind, InputFormat, PoseSpec, Precision

if TYPE_CHECKING:
    from edgepose.nn.checkpoint import LoadedCheckpoint
    from edgepose.nn.model import PoseModel

RAW_MIN_OPSET = 11  # the raw head alone (Resize for the neck's upsample)
TRACE_MAX_OPSET = 20  # the TorchScript exporter's newest; 21 is reached with onnx.version_converter
MAX_OPSET = 21  # int16 QuantizeLinear needs 21; onnxruntime 1.31 runs it


@dataclass(frozen=True)
class ExportReport:
    path: Path
    spec: PoseSpec
    opset: int
    ir_version: int
    nodes: NodeCounts
    verify: VerifyResult | None  # None when verify=False
    seconds: float
    size_bytes: int

    @property
    def max_box_diff(self) -> float:
        return self.verify.max_box_diff if self.verify else float("nan")

    @property
    def max_kpt_diff(self) -> float:
        return self.verify.max_kpt_diff if self.verify else float("nan")


def _check_options(
    size: tuple[int, int],
    strides: tuple[int, ...],
    *,
    opset: int,
    nms: bool,
    batch: int,
    dynamic_batch: bool,
    conf: float,
    iou: float,
    max_det: int,
) -> None:
    m = max(strides)
    for side in size:
        if side <= 0 or side % m:
            near = max(m, round(side / m) * m)
            raise ExportError(
                f"--img {side} is not divisible by the largest stride {m}; use a multiple of {m}, e.g. {near}"
            )
    lo, default = (TAIL_MIN_OPSET if nms else RAW_MIN_OPSET), defaults.DEFAULT_OPSET
    if opset < lo:
        why = "NonMaxSuppression needs 10+, the detection tail 13+" if nms else "the raw head needs 11+"
        raise ExportError(
            f"--opset {opset} is too low ({why}); use --opset {default} (default) or {lo}-{MAX_OPSET}"
        )
    if opset > MAX_OPSET:
        raise ExportError(f"--opset {opset} is not supported; use {lo}-{MAX_OPSET} (default {default})")
    if batch < 1:
        raise ExportError(f"--batch {batch} must be >= 1")
    if dynamic_batch and batch != 1:
        raise ExportError(f"--batch {batch} and --dynamic-batch exclude each other; pass one of them")
    check_thresholds(conf, iou, max_det)


def build_graph(
    model: PoseModel, spec: PoseSpec, *, opset: int, batch: int, dynamic_batch: bool
) -> onnx.ModelProto:
    """The ONNX graph for a (BN-folded) PoseModel as `spec` describes it (graph kind, size, format)."""
    from edgepose.export.deploy import end2end, export_net

    trace_opset = min(opset, TRACE_MAX_OPSET)
    if model.cfg.head is HeadKind.ERPOSE:  # NMS-free: TopK tail (edgepose.export.erpose_export)
        from edgepose.export.erpose_export import build_erpose_graph

        return build_erpose_graph(  # type: ignore[arg-type]
            model, spec, opset=opset, trace_opset=trace_opset, batch=batch, dynamic_batch=dynamic_batch
        )
    e2e = spec.graph is GraphKind.END2END
    graph = export_net(
        model,
        size=spec.input_size,
        batch=batch,
        input_format=spec.input_format,
        opset=trace_opset,
        dynamic_batch=dynamic_batch,
        conv_layout=e2e,
    )
    if e2e:
        graph = end2end(
            graph,
            model,
            size=spec.input_size,
            max_det=spec.max_det,
            conf=spec.conf_threshold,
            iou=spec.iou_threshold,
        )
    if opset > trace_opset:
        from onnx import version_converter

        graph = version_converter.convert_version(graph, opset)
    return graph


def _export_spec(
    ck: LoadedCheckpoint, ckpt_path: str | Path, size: tuple[int, int], input_format: InputFormat, nms: bool,
    conf: float, iou: float, max_det: int,
) -> PoseSpec:  # fmt: skip
    """The checkpoint's spec as the exported file will carry it (geometry, thresholds, graph kind)."""
    if ck.spec.num_keypoints != ck.model.num_keypoints:
        raise ExportError(
            f"{ckpt_path}: its spec names {ck.spec.num_keypoints} keypoints but the model predicts "
            f"{ck.model.num_keypoints}; re-save the checkpoint with a matching spec"
        )
    return ck.spec.replace(
        name=ck.spec.name if ck.spec.name != PoseSpec.name else ck.cfg.name,
        input_size=size,
        input_format=InputFormat(input_format),
        strides=tuple(ck.model.strides),
        conf_threshold=float(conf),
        iou_threshold=float(iou),
        max_det=int(max_det),
        graph=GraphKind.END2END if nms else GraphKind.RAW,
        precision=Precision.FLOAT,
        version=__version__,
    )


def export_model(
    ckpt_path: str | Path,
    out_path: str | Path,
    *,
    img: int | tuple[int, int] | None = None,
    opset: int | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    input_format: InputFormat = InputFormat.FLOAT,
    nms: bool = True,
    verify: bool = True,
) -> ExportReport:
    """Export checkpoint `ckpt_path` to `out_path`; see the module docstring for the steps.

    `img` is the square side or (H, W) of the network input (default: the checkpoint's spec, the size it
    was trained at);
    `opset`, `conf`, `iou`, `max_det` None: `edgepose.defaults` (DEFAULT_OPSET, DEPLOY) as it is now.
    Raises ExportError / ModelFileError / OutputError with a one-line message; writes nothing then.
    """
    from edgepose.nn.checkpoint import load_checkpoint
    from edgepose.nn.model import fuse_conv_bn

    start = time.perf_counter()
    deploy = defaults.DEPLOY
    opset = defaults.DEFAULT_OPSET if opset is None else opset
    conf = deploy.conf if conf is None else conf
    iou = deploy.iou if iou is None else iou
    max_det = deploy.max_det if max_det is None else max_det
    check_parent(out_path)  # fail before the slow part
    ck = load_checkpoint(ckpt_path)
    # One source of truth for the input size: the checkpoint's spec (the size it was trained at, which
    # `val --weights` evaluates at too), not its model config's default.
    size = (
        (img, img) if isinstance(img, int) else tuple(img) if img is not None else tuple(ck.spec.input_size)
    )
    erpose = ck.cfg.head is HeadKind.ERPOSE
    if erpose and not nms:
        raise ExportError(
            f"--no-nms (the raw-head layout) is a YOLO-Pose option; {ckpt_path} is an ER-Pose model "
            f"({ck.cfg.name}) whose graph has no NMS to leave out: drop --no-nms"
        )
    _check_options(
        size, ck.model.strides, opset=opset, nms=nms, batch=batch, dynamic_batch=dynamic_batch,
        conf=conf, iou=iou, max_det=max_det,
    )  # fmt: skip
    spec = _export_spec(ck, ckpt_path, size, input_format, nms, conf, iou, max_det)
    graph = build_graph(fuse_conv_bn(ck.model), spec, opset=opset, batch=batch, dynamic_batch=dynamic_batch)

    def check_against_pytorch(g: onnx.ModelProto) -> VerifyResult:
        if erpose:  # NMS-free graph: PyTorch + the top-k selection (edgepose.export.erpose_verify)
            from edgepose.export.erpose_verify import verify_erpose_export

            return verify_erpose_export(g, ck.model, spec, batch=None if dynamic_batch else batch)  # type: ignore[arg-type]
        return verify_export(g, ck.model, spec, batch=None if dynamic_batch else batch)

    written = finalize(graph, spec, out_path, verify=check_against_pytorch if verify else None)
    return ExportReport(
        path=written.path,
        spec=spec,
        opset=opset,
        ir_version=written.ir_version,
        nodes=node_counts(graph),
        verify=written.verified,
        seconds=time.perf_counter() - start,
        size_bytes=written.size_bytes,
    )
