"""Small end-to-end graphs and calibration folders for the quantization tests (seeded).

`build_e2e_model`: a torch Conv-ReLU net with a branch + concat and two 1x1 heads, exported with
torch.onnx.export (opset 17), plus a float decode (Sigmoid/Slice/Mul named under TAIL_PREFIX) and
edgepose's real NMS tail, plus PoseSpec metadata: the shape of an `edgepose export` file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepose.export.tail import append_nms_tail
from edgepose.spec import INPUT_NAME, TAIL_PREFIX, PoseSpec

K = 17
CH = 5 + 3 * K  # box (4) + score + K x (x, y, v)


def _torch_net(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, 2, 1)
            self.c2 = nn.Conv2d(8, 16, 3, 2, 1)
            self.c3a = nn.Conv2d(16, 16, 3, 1, 1)
            self.c3b = nn.Conv2d(16, 16, 1)
            self.c4 = nn.Conv2d(32, 32, 3, 2, 1)
            self.h4 = nn.Conv2d(16, CH, 1)
            self.h8 = nn.Conv2d(32, CH, 1)
            with torch.no_grad():  # one layer with a wide weight range: a clear 8-bit victim
                self.c3b.weight[0] *= 40.0

        def forward(self, x):
            r = torch.relu
            x2 = r(self.c2(r(self.c1(x))))
            x3 = r(self.c4(torch.cat([r(self.c3a(x2)), r(self.c3b(x2))], 1)))  # (B, 32, H/8, W/8)
            return self.h4(x2), self.h8(x3)

    return Net().eval()


def decode_nodes(
    g: onnx.GraphProto,
    raw: str,
    p: str,
    *,
    xy_scale: float,
    wh_scale: float,
    kpt_sigmoid: bool,
    kpt_scale: float,
) -> tuple[str, str, str]:
    """(1, CH, h, w) raw map -> boxes (1, N, 4), scores (1, N), keypoints (1, N, 3K), all named under `p`."""

    def node(op: str, ins: list[str], name: str, **kw: object) -> str:
        g.node.append(helper.make_node(op, ins, [p + name], name=p + name, **kw))
        return p + name

    def const(name: str, v: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(v, p + name))
        return p + name

    flat = node("Reshape", [raw, const("shape", np.array([1, CH, -1], np.int64))], "flat")  # (1, CH, N)
    rows = node("Transpose", [flat], "rows", perm=[0, 2, 1])  # (1, N, CH)
    ax = const("ax", np.array([2], np.int64))

    def cols(name: str, a: int, b: int) -> str:
        ends = [const(name + "_a", np.array([a], np.int64)), const(name + "_b", np.array([b], np.int64))]
        return node("Slice", [rows, *ends, ax], name)

    def scaled(x: str, name: str, scale: float) -> str:
        return node("Mul", [x, const(name + "_k", np.array(scale, np.float32))], name + "_px")

    xy = scaled(node("Sigmoid", [cols("xy", 0, 2)], "xy_sig"), "xy", xy_scale)
    wh = scaled(node("Sigmoid", [cols("wh", 2, 4)], "wh_sig"), "wh", wh_scale)
    boxes = node("Concat", [xy, node("Add", [xy, wh], "xy2")], "boxes", axis=2)  # (1, N, 4) x1y1x2y2
    score = node("Squeeze", [node("Sigmoid", [cols("sc", 4, 5)], "sc_sig"), ax], "scores")  # (1, N)
    kp = cols("kp", 5, CH)
    kpts = scaled(node("Sigmoid", [kp], "kp_sig") if kpt_sigmoid else kp, "kpts", kpt_scale)  # (1, N, 3K)
    return boxes, score, kpts


def _decode(g: onnx.GraphProto, raw: str, level: str) -> tuple[str, str, str]:
    return decode_nodes(g, raw, f"{TAIL_PREFIX}decode/{level}/", xy_scale=128, wh_scale=40, kpt_sigmoid=False,
                        kpt_scale=4)  # fmt: skip


def save_with_spec(m: onnx.ModelProto, spec: PoseSpec, path: Path) -> Path:
    """Attach the spec's metadata, pin IR 8 (onnxruntime >= 1.15), check and save: an export's shape."""
    for k, v in spec.to_metadata().items():
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def build_e2e_model(path: Path, seed: int = 100, size: int = 128) -> Path:
    """Export the test net and append a float decode + NMS tail and edgepose metadata."""
    import torch

    net = _torch_net(seed)
    raw_path = path.with_suffix(".raw.onnx")
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, torch.zeros(1, 3, size, size), str(raw_path), input_names=[INPUT_NAME],
            output_names=["raw_s4", "raw_s8"], opset_version=17, dynamo=False,
        )  # fmt: skip
    m = onnx.load(str(raw_path))
    raw_path.unlink()
    g = m.graph
    parts = [_decode(g, "raw_s4", "s4"), _decode(g, "raw_s8", "s8")]
    cat = []
    for i, name in enumerate(("boxes", "scores", "kpts")):
        out = f"{TAIL_PREFIX}decode/{name}"
        g.node.append(helper.make_node("Concat", [p[i] for p in parts], [out], name=out, axis=1))
        cat.append(out)
    m = append_nms_tail(
        m, boxes=cat[0], scores=cat[1], kpts=cat[2], num_keypoints=K, max_det=20, conf=0.3, iou=0.5
    )
    spec = PoseSpec(
        input_size=(size, size), strides=(4, 8), max_det=20, conf_threshold=0.3, iou_threshold=0.5
    )
    return save_with_spec(m, spec, path)


def make_calib_dir(path: Path, n: int = 12, seed: int = 101, size: int = 128) -> Path:
    """`n` seeded images of smooth random blobs, varied sizes (some not square)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = int(rng.integers(size // 2, size * 2)), int(rng.integers(size // 2, size * 2))
        img = cv2.resize(
            rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
        )
        for _ in range(3):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(
                img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(4, 30)), c, -1
            )
        cv2.imwrite(str(path / f"img_{i:03d}.png"), img)
    return path
