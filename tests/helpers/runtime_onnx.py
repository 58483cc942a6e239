"""Tiny end-to-end graphs with the spec.py I/O contract, built with onnx.helper for the runtime tests.

The graph ignores the picture except for its brightness: it holds a table of candidate rows in
network pixels, scales their scores by mean(input) * 255 / 114 (so a plain 114-grey image keeps the
table's scores exactly), sorts them, and keeps rows with score > score_threshold among the first
max_detections. iou_threshold is an input that only has to be >= 0 (no NMS here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgepose.spec import (
    DETECTIONS_NAME,
    INPUT_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    NUM_DETS_NAME,
    SCORE_THR_NAME,
    InputFormat,
    PoseSpec,
)

SMALL_SPEC = PoseSpec(
    name="test-tiny",
    input_size=(64, 64),
    keypoint_names=("a", "b", "c"),
    skeleton=((0, 1), (1, 2)),
    flip_index=(0, 2, 1),
    max_det=8,
    version="test",
)

# Four people in network pixels (64 x 64 input): x1, y1, x2, y2, score, class, 3 x (x, y, conf).
SMALL_ROWS = np.array(
    [
        [10, 20, 30, 40, 0.9, 0, 32, 32, 0.9, 0, 10, 0.8, 20, 30, 0.3],
        [60, 45, 70, 60, 0.6, 0, 62, 50, 0.7, 64, 64, 0.6, 50, 40, 0.2],
        [5, 17, 15, 27, 0.3, 0, 10, 20, 0.5, 11, 21, 0.5, 12, 22, 0.5],
        [0, 16, 64, 48, 0.1, 0, 1, 17, 0.1, 2, 18, 0.1, 3, 19, 0.1],
    ],
    dtype=np.float32,
)


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_v"))


def build_model(
    path: Path,
    spec: PoseSpec = SMALL_SPEC,
    rows: np.ndarray = SMALL_ROWS,
    *,
    batch: int | str = "batch",
    overrides: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the test graph to `path`; `metadata` replaces spec.to_metadata() (pass {} for none)."""
    m_det, width = spec.max_det, spec.det_width
    assert rows.shape[1] == width and rows.shape[0] <= m_det
    table = np.zeros((m_det, width), np.float32)
    table[: len(rows)] = rows
    h, w = spec.input_size
    elem = TensorProto.UINT8 if spec.input_format is InputFormat.UINT8 else TensorProto.FLOAT
    divisor = 255.0 if spec.input_format is InputFormat.UINT8 else 1.0
    nodes = [
        _const("table", table),
        _const("base_scores", table[:, 4][None]),  # (1, M)
        _const("arange", np.arange(m_det, dtype=np.int64)),
        _const("gain", np.array(255.0 / 114.0 / divisor, np.float32)),
        _const("zero", np.array(0.0, np.float32)),
        _const("ax1", np.array([1], np.int64)),
        _const("ax2", np.array([2], np.int64)),
        _const("k", np.array([m_det], np.int64)),
        _const("s0", np.array([0], np.int64)),
        _const("s4", np.array([4], np.int64)),
        _const("s5", np.array([5], np.int64)),
        _const("send", np.array([width], np.int64)),
        helper.make_node("Cast", [INPUT_NAME], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2, 3], keepdims=0),  # (B,)
        helper.make_node("Mul", ["mean", "gain"], ["factor"]),
        helper.make_node("Unsqueeze", ["factor", "ax1"], ["factor2"]),  # (B, 1)
        helper.make_node("Mul", ["factor2", "base_scores"], ["scores"]),  # (B, M)
        helper.make_node("TopK", ["scores", "k"], ["vals", "idx"], axis=1),  # (B, M) sorted
        helper.make_node("Gather", ["table", "idx"], ["g"], axis=0),  # (B, M, D)
        helper.make_node("Slice", ["g", "s0", "s4", "ax2"], ["g_box"]),  # (B, M, 4)
        helper.make_node("Slice", ["g", "s5", "send", "ax2"], ["g_rest"]),  # (B, M, D - 5)
        helper.make_node("Unsqueeze", ["vals", "ax2"], ["vals3"]),  # (B, M, 1)
        helper.make_node("Concat", ["g_box", "vals3", "g_rest"], ["rows"], axis=2),  # (B, M, D)
        helper.make_node("Greater", ["vals", SCORE_THR_NAME], ["keep_s"]),
        helper.make_node("Less", ["arange", MAX_DET_NAME], ["keep_n"]),  # (M,)
        helper.make_node("GreaterOrEqual", [IOU_THR_NAME, "zero"], ["keep_i"]),
        helper.make_node("And", ["keep_s", "keep_n"], ["keep_sn"]),
        helper.make_node("And", ["keep_sn", "keep_i"], ["keep"]),  # (B, M)
        helper.make_node("Cast", ["keep"], ["keep_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["keep_f", "ax2"], ["keep3"]),  # (B, M, 1)
        helper.make_node("Mul", ["rows", "keep3"], [DETECTIONS_NAME]),
        helper.make_node("Cast", ["keep"], ["keep_i64"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["keep_i64", "ax1"], [NUM_DETS_NAME], keepdims=0),  # (B,)
    ]
    defaults = [
        numpy_helper.from_array(np.array(spec.conf_threshold, np.float32), SCORE_THR_NAME),
        numpy_helper.from_array(np.array(spec.iou_threshold, np.float32), IOU_THR_NAME),
        numpy_helper.from_array(np.array(spec.max_det, np.int64), MAX_DET_NAME),
    ]
    inputs = [helper.make_tensor_value_info(INPUT_NAME, elem, [batch, 3, h, w])]
    if overrides:  # defaults as initializers that are also inputs: overridable at run time
        inputs += [
            helper.make_tensor_value_info(SCORE_THR_NAME, TensorProto.FLOAT, []),
            helper.make_tensor_value_info(IOU_THR_NAME, TensorProto.FLOAT, []),
            helper.make_tensor_value_info(MAX_DET_NAME, TensorProto.INT64, []),
        ]
    outputs = [
        helper.make_tensor_value_info(DETECTIONS_NAME, TensorProto.FLOAT, [batch, m_det, width]),
        helper.make_tensor_value_info(NUM_DETS_NAME, TensorProto.INT64, [batch]),
    ]
    graph = helper.make_graph(nodes, "ep_test", inputs, outputs, initializer=defaults)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime 1.31 rejects onnx 1.23's default IR version
    helper.set_model_props(model, spec.to_metadata() if metadata is None else metadata)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def oracle_rows(dataset: Path, shift: float = 0.0, image: int = 0) -> np.ndarray:
    """Detection rows that are the ground truth of one image of a COCO dataset folder (its boxes, and its
    keypoints moved `shift` px in x), scores 0.9 down to 0.6: a `build_model` graph with them predicts that
    image exactly (AP 1.0 at shift 0), as long as it is evaluated at the image's own size."""
    from edgepose.data.coco import read_coco

    rec = read_coco(dataset / "annotations.json").records[image]
    labelled = (rec.keypoints[..., 2] > 0).any(1)  # COCO's protocol: people without keypoints are ignored
    n = int(labelled.sum())
    kpts = rec.keypoints[labelled].copy()  # (N, K, 3)
    kpts[..., 0] += shift
    kpts[..., 2] = 1.0  # keypoint confidence
    score = np.linspace(0.9, 0.6, n, dtype=np.float32)[:, None]  # (N, 1)
    cls = np.zeros((n, 1), np.float32)
    return np.concatenate([rec.boxes[labelled], score, cls, kpts.reshape(n, -1)], axis=1)  # (N, 6 + 3K)


def int8_of(source: Path, path: Path, spec: PoseSpec, rows: np.ndarray) -> Path:
    """A `build_model` int8 file recorded as made from `source` (its lineage, as `edgepose quantize`
    records it: what bench takes ΔAP and fidelity against)."""
    import json

    from edgepose.fsio import file_digest
    from edgepose.spec import QUANT_SOURCE_KEY, Precision

    lineage = {"sha256": file_digest(source), "file": source.name}
    int8 = spec.replace(precision=Precision.INT8)
    return build_model(
        path, int8, rows, metadata={**int8.to_metadata(), QUANT_SOURCE_KEY: json.dumps(lineage)}
    )
