"""`import_onnx`: wrap a third-party raw pose ONNX (Ultralytics layout) into an edgepose end-to-end graph.

Source output (B, 4 + 1 + 3K, N): cx, cy, w, h in input pixels, person score, K x (x, y, visibility).
An adapter (Transpose, Slice, centre/size -> corners, Sigmoid where the source holds logits) named under
IMPORT_PREFIX feeds edgepose's NMS tail, so the file meets the same contract as our own exports and
`predict`, `quantize` (incl. `--mixed`) and `bench` take it unchanged; quantization keeps adapter and
tail float because both are named under spec.TAIL_PREFIX. An output of many short rows (B, N, 6 + 3K)
is an already NMS-free model (YOLO26-pose style); it gets the TopK tail instead (`importer.end2end`).

Stages: check options -> load and normalise the source (input, opset, simplify, node names) -> probe
and classify its output -> adapter + NMS tail -> spec -> `onnxkit.finalize` (with the self-check).
Torch-free (onnx, onnxruntime, onnxslim, numpy): importing a model needs no training stack.
Input convention (Ultralytics): float32 RGB in [0, 1], letterboxed with colour 114.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgepose import __version__, defaults
from edgepose.defaults import Thresholds
from edgepose.errors import ExportError, ModelFileError
from edgepose.export import slim
from edgepose.export.importer.end2end import (
    E2E_EXPECTED,
    classify_end2end,
    looks_end2end,
    verify_end2end,
    wrap_end2end,
)
from edgepose.export.importer.graph import (
    append_adapter,
    fix_input,
    free_output_name,
    load_source,
    name_nodes,
    vis_sigmoid,
)
from edgepose.export.importer.layout import (
    PoseLayout,
    Probe,
    check_layout_option,
    classify,
    fmt_shape,
    probe,
    reject_static,
)
from edgepose.export.importer.meta import STRIDE_SETS, KeypointMeta, infer_strides, keypoint_meta
from edgepose.export.importer.options import KptConf, Layout
from edgepose.export.importer.verify import ImportCheck, verify_import
from edgepose.export.tail import TAIL_MIN_OPSET, append_nms_tail, check_thresholds
from edgepose.fsio import check_parent
from edgepose.onnxkit.graph import NodeCounts, default_opset, graph_inputs, node_counts
from edgepose.onnxkit.model import finalize
from edgepose.spec import GraphKind, InputFormat, PoseSpec, Precision

# Ultralytics' own letterbox grey: a fact about the source's training, not edgepose's default (which
# happens to be the same value today, defaults.LETTERBOX_COLOR).
ULTRALYTICS_LETTERBOX = 114


@dataclass(frozen=True)
class ImportReport:
    """What `import_onnx` read from the source and wrote."""

    path: Path
    spec: PoseSpec
    layout: Layout
    source_shape: tuple[int, int, int]  # the source output as run: (B, C, N) raw, (B, N, C) end-to-end
    score_prob: bool  # the source's person score was post-sigmoid
    kpt_conf: KptConf  # LOGIT or PROB: what the visibility channels held
    kpt_conf_reason: str
    simplified: bool
    opset: int
    ir_version: int
    nodes: NodeCounts
    check: ImportCheck | None  # None when verify=False
    notes: tuple[str, ...]
    seconds: float
    size_bytes: int


def _convert_opset(model: onnx.ModelProto, src: Path, notes: list[str]) -> onnx.ModelProto:
    """Graphs below the NMS tail's minimum opset are converted to defaults.DEFAULT_OPSET."""
    have, target = default_opset(model), defaults.DEFAULT_OPSET
    if have >= TAIL_MIN_OPSET:
        return model
    notes.append(f"converted from opset {have} to {target}")
    try:
        return onnx.version_converter.convert_version(model, target)
    except Exception as exc:  # the converter raises plain RuntimeErrors per unsupported op
        raise ExportError(
            f"{src} uses opset {have}, the NMS tail needs >= {TAIL_MIN_OPSET} and "
            f"conversion failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            f"re-export it with opset {target}"
        ) from exc


def _load_normalised(
    src: Path, img: int | tuple[int, int] | None, simplify: bool, notes: list[str]
) -> tuple[onnx.ModelProto, tuple[int, int], bool]:
    """The source loaded, checked, its input renamed and sized, its opset raised, simplified, nodes named.

    Returns (model, input (H, W), whether onnxslim simplified it); notes what it changed.
    """
    model = load_source(src)
    reject_static(model, str(src))
    size = fix_input(model, img, str(src))
    model = _convert_opset(model, src, notes)
    simplified = False
    if simplify:
        try:
            model, simplified = slim.simplify(model), True
        except Exception as exc:  # simplification is an optimisation: an exotic graph keeps its form
            notes.append(f"onnxslim could not simplify the graph ({type(exc).__name__}); kept it as it is")
    name_nodes(model)
    return model, size, simplified


def _wrap(
    model: onnx.ModelProto, channels: int, lay: PoseLayout, *, conf: float, iou: float, max_det: int
) -> tuple[onnx.ModelProto, str]:
    """Adapter + NMS tail on the source; returns the end-to-end graph and the source output's name."""
    raw_name = free_output_name(model)
    boxes, scores, kpts = append_adapter(model, raw_name, channels, lay)
    decoder = vis_sigmoid(lay.num_keypoints) if lay.kpt_conf is KptConf.LOGIT else None
    graph = append_nms_tail(
        model,
        boxes=boxes,
        scores=scores,
        kpts=kpts,
        num_keypoints=lay.num_keypoints,
        max_det=max_det,
        conf=conf,
        iou=iou,
        decode_kpts=decoder,
    )
    return graph, raw_name


def _strides(num_candidates: int, size: tuple[int, int], notes: list[str]) -> tuple[int, ...]:
    """The source's strides from its candidate count; notes when no grid fits."""
    strides = infer_strides(num_candidates, size)
    if not strides:
        h, w = size
        notes.append(
            f"strides unknown: N = {num_candidates} fits no grid of strides {STRIDE_SETS} at {h}x{w}"
        )
    return strides


def _classify(p: Probe, lay_kind: Layout, kpt_conf: KptConf, src: Path) -> tuple[bool, Layout, PoseLayout]:
    """Raw grid output or already end-to-end rows; -> (end to end?, layout found, its conventions)."""
    end2end = looks_end2end(p.raw.shape)
    if lay_kind is Layout.ULTRALYTICS_POSE_E2E and not end2end:
        raise ModelFileError(
            f"{src}: --layout {lay_kind.value} expects {E2E_EXPECTED}, the output is "
            f"{fmt_shape(p.raw.shape)}; use --layout {Layout.ULTRALYTICS_POSE.value} for a raw output"
        )
    if end2end:
        return True, Layout.ULTRALYTICS_POSE_E2E, classify_end2end(p.raw, kpt_conf, str(src))
    return False, lay_kind, classify(p, kpt_conf, str(src))


def _import_spec(
    name: str,
    size: tuple[int, int],
    strides: tuple[int, ...],
    keypoints: KeypointMeta,
    thresholds: Thresholds,
) -> PoseSpec:
    """The spec the imported file carries."""
    names, skeleton, flip = keypoints
    return PoseSpec(
        name=name,
        input_size=size,
        input_format=InputFormat.FLOAT,
        strides=strides,
        keypoint_names=names,
        skeleton=skeleton,
        flip_index=flip,
        conf_threshold=thresholds.conf,
        iou_threshold=thresholds.iou,
        max_det=thresholds.max_det,
        letterbox_color=ULTRALYTICS_LETTERBOX,
        graph=GraphKind.END2END,
        precision=Precision.FLOAT,
        version=__version__,
    )


def import_onnx(
    src: str | Path,
    out_path: str | Path,
    *,
    layout: Layout | str = Layout.ULTRALYTICS_POSE,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    img: int | tuple[int, int] | None = None,
    kpt_conf: KptConf | str = KptConf.AUTO,
    keypoint_names: tuple[str, ...] | None = None,
    skeleton: tuple[tuple[int, int], ...] | None = None,
    flip_index: tuple[int, ...] | None = None,
    name: str | None = None,
    simplify: bool = True,
    verify: bool = True,
) -> ImportReport:
    """Wrap the raw pose ONNX `src` into an end-to-end edgepose graph at `out_path` (atomic write).

    `conf`, `iou`, `max_det` None: defaults.DEPLOY as it is now. Keypoint names/skeleton/flip index
    default as `meta.keypoint_meta` says (COCO-17 when K = 17). `img` is required when the source's H, W
    are dynamic. Raises ModelFileError / ExportError / ConfigError (one line); writes nothing then.
    """
    start = time.perf_counter()
    src, deploy = Path(src), defaults.DEPLOY
    conf = deploy.conf if conf is None else conf
    iou = deploy.iou if iou is None else iou
    max_det = deploy.max_det if max_det is None else max_det
    lay_kind = check_layout_option(layout)
    kpt_conf = KptConf(kpt_conf)
    check_thresholds(conf, iou, max_det)
    check_parent(out_path)
    notes: list[str] = []
    model, size, simplified = _load_normalised(src, img, simplify, notes)
    dim0 = graph_inputs(model)[0].type.tensor_type.shape.dim[0]
    batch = dim0.dim_value if dim0.HasField("dim_value") and dim0.dim_value > 0 else 1
    p = probe(model, (batch, 3, *size))
    end2end, lay_kind, lay = _classify(p, lay_kind, kpt_conf, src)
    notes.extend(lay.notes)
    _, c, n = p.raw.shape
    keypoints = keypoint_meta(lay.num_keypoints, keypoint_names, skeleton, flip_index)
    if end2end:  # rows, not grid cells: the source's strides are not recoverable
        raw_name = free_output_name(model)
        graph, strides = wrap_end2end(model, raw_name, p.raw.shape, lay, conf=conf, max_det=max_det), ()
    else:
        graph, raw_name = _wrap(model, c, lay, conf=conf, iou=iou, max_det=max_det)
        strides = _strides(n, size, notes)
    thresholds = Thresholds(conf=float(conf), iou=float(iou), max_det=int(max_det))
    spec = _import_spec(name or src.stem, size, strides, keypoints, thresholds)

    def self_check(g: onnx.ModelProto) -> ImportCheck:
        return (verify_end2end if end2end else verify_import)(g, raw_name, spec, lay, batch)

    written = finalize(graph, spec, out_path, verify=self_check if verify else None)
    return ImportReport(
        path=written.path,
        spec=spec,
        layout=lay_kind,
        source_shape=(int(p.raw.shape[0]), c, n),
        score_prob=lay.score_prob,
        kpt_conf=lay.kpt_conf,
        kpt_conf_reason=lay.kpt_conf_reason,
        simplified=simplified,
        opset=default_opset(graph),
        ir_version=written.ir_version,
        nodes=node_counts(graph),
        check=written.verified,
        notes=tuple(notes),
        seconds=time.perf_counter() - start,
        size_bytes=written.size_bytes,
    )
