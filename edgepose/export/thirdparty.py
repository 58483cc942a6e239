"""`import_onnx`: wrap a third-party raw pose ONNX (Ultralytics layout) into an edgepose end-to-end graph.

An output of many short rows (B, N, 6 + 3K) is an already NMS-free model (YOLO26-pose style); it gets
the TopK tail instead of the NMS one (`edgepose.export.import_end2end`).

Source output (B, 4 + 1 + 3K, N): cx, cy, w, h in input pixels, person score, K x (x, y, visibility).
An adapter (Transpose, Slice, centre/size -> corners, Sigmoid where the source holds logits) named under
IMPORT_PREFIX feeds edgepose's NMS tail, so the file meets the same contract as our own exports and
`predict`, `quantize` (incl. `--mixed`) and `bench` take it unchanged; quantization keeps adapter and
tail float because both are named under spec.TAIL_PREFIX.

Torch-free (onnx, onnxruntime, onnxslim, numpy): importing a model needs no training stack.
Input convention (Ultralytics): float32 RGB in [0, 1], letterboxed with colour 114.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgepose import __version__
from edgepose.errors import ConfigError, ExportError, ModelFileError
from edgepose.export import onnxio
from edgepose.export.import_end2end import (
    E2E_EXPECTED,
    classify_end2end,
    looks_end2end,
    verify_end2end,
    wrap_end2end,
)
from edgepose.export.import_graph import (
    IMPORT_PREFIX,
    append_adapter,
    fix_input,
    free_output_name,
    load_source,
    name_nodes,
    vis_sigmoid,
)
from edgepose.export.import_layout import (
    KptConf,
    Layout,
    check_layout_option,
    classify,
    fmt_shape,
    graph_inputs,
    probe,
    reject_static,
)
from edgepose.export.import_verify import LOW_CONF, VERIFY_IMAGES, ImportCheck, sample_inputs, verify_import
from edgepose.export.tail import TAIL_MIN_OPSET, append_nms_tail, check_thresholds, default_opset
from edgepose.fsio import check_parent
from edgepose.spec import (
    COCO_FLIP_INDEX,
    COCO_KEYPOINTS,
    COCO_SKELETON,
    GraphKind,
    InputFormat,
    PoseSpec,
    Precision,
)

__all__ = ["IMPORT_PREFIX", "ImportReport", "KptConf", "Layout", "import_onnx"]

CONVERT_OPSET = 17  # graphs below the tail's minimum opset are converted to this one
STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))  # P3-P5 and the "6" variants' P3-P6
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
    nodes: onnxio.NodeCounts
    check: ImportCheck | None  # None when verify=False
    notes: tuple[str, ...]
    seconds: float
    size_bytes: int


def infer_strides(num_candidates: int, size: tuple[int, int]) -> tuple[int, ...]:
    """The stride set whose grids give `num_candidates` (N = sum of ceil(H/s) * ceil(W/s)); () if none."""
    h, w = size
    for strides in STRIDE_SETS:
        if sum(math.ceil(h / s) * math.ceil(w / s) for s in strides) == num_candidates:
            return strides
    return ()


KeypointMeta = tuple[tuple[str, ...], tuple[tuple[int, int], ...], tuple[int, ...]]  # names, skeleton, flip


def keypoint_meta(
    k: int,
    names: tuple[str, ...] | None,
    skeleton: tuple[tuple[int, int], ...] | None,
    flip_index: tuple[int, ...] | None,
) -> KeypointMeta:
    """Keypoint names, skeleton and flip index for K keypoints; given values are checked.

    Defaults: COCO-17 for K = 17, else kpt_0.., no skeleton and the identity flip (no pairs known).
    """
    coco = k == len(COCO_KEYPOINTS)
    names = (
        tuple(names) if names is not None else COCO_KEYPOINTS if coco else tuple(f"kpt_{i}" for i in range(k))
    )
    skeleton = tuple(skeleton) if skeleton is not None else COCO_SKELETON if coco else ()
    flip = tuple(flip_index) if flip_index is not None else COCO_FLIP_INDEX if coco else tuple(range(k))
    if len(names) != k:
        raise ConfigError(f"{len(names)} keypoint names given but the model predicts K = {k}; give {k} names")
    bad = [p for p in skeleton if not (0 <= p[0] < k and 0 <= p[1] < k)]
    if bad:
        raise ConfigError(
            f"skeleton pair {bad[0]} is outside 0..{k - 1} (K = {k}); use 0-based keypoint indices"
        )
    if sorted(flip) != list(range(k)):
        raise ConfigError(f"flip index {list(flip)} is not a permutation of 0..{k - 1} (K = {k})")
    return names, skeleton, flip


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    # onnxslim directly rather than export.deploy.simplify: deploy imports torch, import must not.
    import onnxslim

    return onnxslim.slim(model)


def import_onnx(
    src: str | Path,
    out_path: str | Path,
    *,
    layout: Layout | str = Layout.ULTRALYTICS_POSE,
    conf: float = PoseSpec.conf_threshold,
    iou: float = PoseSpec.iou_threshold,
    max_det: int = PoseSpec.max_det,
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

    Keypoint names/skeleton/flip index default to COCO-17 when K = 17. `img` is required when the
    source's H, W are dynamic. Raises ModelFileError / ExportError / ConfigError (one line); writes
    nothing then.
    """
    start = time.perf_counter()
    src = Path(src)
    lay_kind = check_layout_option(layout)
    kpt_conf = KptConf(kpt_conf)
    check_thresholds(conf, iou, max_det)
    check_parent(out_path)
    model = load_source(src)
    reject_static(model, str(src))
    size = fix_input(model, img, str(src))
    notes: list[str] = []
    if default_opset(model) < TAIL_MIN_OPSET:
        notes.append(f"converted from opset {default_opset(model)} to {CONVERT_OPSET}")
        try:
            model = onnx.version_converter.convert_version(model, CONVERT_OPSET)
        except Exception as exc:  # the converter raises plain RuntimeErrors per unsupported op
            raise ExportError(
                f"{src} uses opset {default_opset(model)}, the NMS tail needs >= {TAIL_MIN_OPSET} and "
                f"conversion failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                "re-export it with opset 17"
            ) from exc
    simplified = False
    if simplify:
        try:
            model, simplified = _simplify(model), True
        except Exception as exc:  # simplification is an optimisation: an exotic graph keeps its form
            notes.append(f"onnxslim could not simplify the graph ({type(exc).__name__}); kept it as it is")
    name_nodes(model)
    dim0 = graph_inputs(model)[0].type.tensor_type.shape.dim[0]
    batch = dim0.dim_value if dim0.HasField("dim_value") and dim0.dim_value > 0 else 1
    p = probe(model, (batch, 3, *size))
    # Already NMS-free rows (YOLO26-pose style) get the TopK tail: edgepose.export.import_end2end.
    end2end = looks_end2end(p.raw.shape)
    if lay_kind is Layout.ULTRALYTICS_POSE_E2E and not end2end:
        raise ModelFileError(
            f"{src}: --layout {lay_kind.value} expects {E2E_EXPECTED}, the output is "
            f"{fmt_shape(p.raw.shape)}; use --layout {Layout.ULTRALYTICS_POSE.value} for a raw output"
        )
    lay_kind = Layout.ULTRALYTICS_POSE_E2E if end2end else lay_kind
    lay = classify_end2end(p.raw, kpt_conf, str(src)) if end2end else classify(p, kpt_conf, str(src))
    notes.extend(lay.notes)
    _, c, n = p.raw.shape
    names, skel, flip = keypoint_meta(lay.num_keypoints, keypoint_names, skeleton, flip_index)
    raw_name = free_output_name(model)
    if end2end:
        graph = wrap_end2end(model, raw_name, p.raw.shape, lay, conf=conf, max_det=max_det)
        strides: tuple[int, ...] = ()  # rows, not grid cells: the source's strides are not recoverable
    else:
        boxes, scores, kpts = append_adapter(model, raw_name, c, lay)
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
        strides = infer_strides(n, size)
        if not strides:
            notes.append(
                f"strides unknown: N = {n} fits no grid of strides {STRIDE_SETS} at {size[0]}x{size[1]}"
            )
    spec = PoseSpec(
        name=name or src.stem,
        input_size=size,
        input_format=InputFormat.FLOAT,
        strides=strides,
        keypoint_names=names,
        skeleton=skel,
        flip_index=flip,
        conf_threshold=float(conf),
        iou_threshold=float(iou),
        max_det=int(max_det),
        letterbox_color=ULTRALYTICS_LETTERBOX,
        graph=GraphKind.END2END,
        precision=Precision.FLOAT,
        version=__version__,
    )
    ir = onnxio.pin_ir_version(graph)
    onnxio.set_metadata(graph, spec)
    graph.producer_name, graph.producer_version = "edgepose", __version__
    onnxio.check(graph)
    check = None
    if verify and end2end:
        inputs = sample_inputs(VERIFY_IMAGES, spec.input_size, batch)
        rows, box_d, kpt_d = verify_end2end(graph, raw_name, spec, lay, inputs)
        check = ImportCheck(len(inputs) * batch, rows, box_d, kpt_d, (spec.conf_threshold, LOW_CONF))
    elif verify:
        check = verify_import(graph, raw_name, spec, lay, batch)
    path = onnxio.save(graph, out_path)
    return ImportReport(
        path=path,
        spec=spec,
        layout=lay_kind,
        source_shape=(int(p.raw.shape[0]), c, n),
        score_prob=lay.score_prob,
        kpt_conf=lay.kpt_conf,
        kpt_conf_reason=lay.kpt_conf_reason,
        simplified=simplified,
        opset=default_opset(graph),
        ir_version=ir,
        nodes=onnxio.node_counts(graph),
        check=check,
        notes=tuple(notes),
        seconds=time.perf_counter() - start,
        size_bytes=path.stat().st_size,
    )
