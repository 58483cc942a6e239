"""Foreign (non-edgepose) ONNX graphs for the `export --from-onnx` error paths."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def detection_onnx(path: Path, metadata: dict[str, str] | None = None) -> Path:
    """A graph with a YOLOv8 *detection* output layout: images (1, 3, 640, 640) -> output0 (1, 84, 8400)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),  # (1, 1, 1, 1)
        helper.make_node("Reshape", ["m", "s"], ["m3"]),  # (1, 1, 1)
        helper.make_node("ConstantOfShape", ["shape"], ["z"]),  # (1, 84, 8400)
        helper.make_node("Add", ["z", "m3"], ["output0"]),  # (1, 84, 8400)
    ]
    graph = helper.make_graph(
        nodes,
        "yolov8n-det",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 8400])],
        initializer=[
            helper.make_tensor("s", TensorProto.INT64, [3], [1, 1, 1]),
            helper.make_tensor("shape", TensorProto.INT64, [3], [1, 84, 8400]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
