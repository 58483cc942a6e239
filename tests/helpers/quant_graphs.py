"""Tiny end-to-end pose graphs built with onnx.helper (no torch) for the quantization unit tests.

`build_pose_model`: images (1, 3, S, S) -> conv stem with SiLU (Sigmoid + Mul) -> Conv -> ReLU ->
Conv -> ReLU -> 1x1 head with 5 + 3K channels -> float decode (named under TAIL_PREFIX) -> the real NMS
tail -> edgepose metadata: the shape of an `edgepose export` file, with both activation kinds.
The head's score channel has a strong positive bias so the float model always finds people.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgepose.export.tail import append_nms_tail
from edgepose.spec import INPUT_NAME, TAIL_PREFIX, PoseSpec
from tests.helpers.quant_models import CH, K, decode_nodes, save_with_spec


def _conv(name: str, x: str, w: np.ndarray, b: np.ndarray, **attrs: object) -> tuple[onnx.NodeProto, list]:
    inits = [
        numpy_helper.from_array(w.astype(np.float32), f"{name}.w"),
        numpy_helper.from_array(b.astype(np.float32), f"{name}.b"),
    ]
    return helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}_out"], name=name, **attrs), inits


def build_pose_model(
    path: Path, seed: int = 120, size: int = 32, wide_channel: bool = True, act3: str = "Relu"
) -> Path:
    """Write the model; `wide_channel` makes one input channel of c3 40x wider (an equalization target);
    `act3`: the op between c3 and the head ("Relu", or "Softmax" over channels)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def add(node_inits: tuple[onnx.NodeProto, list]) -> str:
        nodes.append(node_inits[0])
        inits.extend(node_inits[1])
        return node_inits[0].output[0]

    c1 = add(
        _conv(
            "c1",
            INPUT_NAME,
            rng.normal(0, 0.5, (8, 3, 3, 3)),
            rng.normal(0, 0.1, 8),
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
    )
    nodes += [
        helper.make_node("Sigmoid", [c1], ["s1"], name="act1/sig"),
        helper.make_node("Mul", [c1, "s1"], ["a1"], name="act1/mul"),
    ]
    w2 = rng.normal(0, 0.3, (8, 8, 3, 3))
    c2 = add(_conv("c2", "a1", w2, rng.normal(0, 0.1, 8), kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", [c2], ["r2"], name="act2"))
    w3 = rng.normal(0, 0.3, (8, 8, 1, 1))
    if wide_channel:
        w3[:, 0] *= 40.0
    c3 = add(_conv("c3", "r2", w3, rng.normal(0, 0.1, 8), kernel_shape=[1, 1]))
    axis = {"axis": 1} if act3 == "Softmax" else {}
    nodes.append(helper.make_node(act3, [c3], ["r3"], name="act3", **axis))
    bh = rng.normal(0, 0.1, CH)
    bh[4] = 3.0  # score logit: people everywhere
    raw = add(_conv("head", "r3", rng.normal(0, 0.2, (CH, 8, 1, 1)), bh, kernel_shape=[1, 1]))

    g = helper.make_graph(
        nodes,
        "pose",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(raw, TensorProto.FLOAT, None)],
        inits,
    )
    prefix = TAIL_PREFIX + "decode/"
    boxes, scores, kp = decode_nodes(
        g, raw, prefix, xy_scale=size, wh_scale=12, kpt_sigmoid=True, kpt_scale=size
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m = append_nms_tail(
        m, boxes=boxes, scores=scores, kpts=kp, num_keypoints=K, max_det=20, conf=0.3, iou=0.5
    )
    spec = PoseSpec(input_size=(size, size), strides=(2,), max_det=20, conf_threshold=0.3, iou_threshold=0.5)
    return save_with_spec(m, spec, path)


def make_images(path: Path, n: int = 8, seed: int = 121, size: int = 32) -> Path:
    """`n` seeded smooth colour images with a few discs (a calibration folder)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = cv2.resize(
            rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC
        )
        for _ in range(2):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(
                img, (int(rng.integers(0, size)), int(rng.integers(0, size))), int(rng.integers(2, 8)), c, -1
            )
        cv2.imwrite(str(path / f"img_{i:03d}.png"), img)
    return path
