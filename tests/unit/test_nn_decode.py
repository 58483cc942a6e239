"""decode: hand-made raw maps decode to exact pixel boxes, scores and keypoints, in the documented order."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import torch

from edgepose.nn import build_model, resolve_config
from edgepose.nn.decode import decode

torch.set_num_threads(1)


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


ANCHORS = torch.tensor(
    [[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]], [[70.0, 80.0], [90.0, 100.0], [110.0, 120.0]]]
)


def test_known_values_decode_exactly() -> None:
    # One keypoint (C = 9), two levels: stride 8 on a 2x3 grid, stride 16 on a 1x2 grid.
    raw0 = torch.zeros(1, 3, 2, 3, 9)
    raw1 = torch.zeros(1, 3, 1, 2, 9)
    # level 0, anchor 1, y 1, x 2
    raw0[0, 1, 1, 2] = torch.tensor(
        [logit(0.75), 0.0, logit(0.25), logit(0.75), logit(0.8), 0.0, 1.0, -0.25, logit(0.9)]
    )
    # level 1, anchor 2, y 0, x 1
    raw1[0, 2, 0, 1] = torch.tensor([0.0, logit(0.25), 0.0, 0.0, 0.0, logit(0.2), 0.5, 0.25, 0.0])
    snapshot = [raw0.clone(), raw1.clone()]
    boxes, scores, kpts = decode([raw0, raw1], ANCHORS, (8, 16))
    assert boxes.shape == (1, 18 + 6, 4) and scores.shape == (1, 24) and kpts.shape == (1, 24, 1, 3)
    assert all(torch.equal(a, b) for a, b in zip(snapshot, [raw0, raw1], strict=True))  # inputs untouched

    i = 1 * 6 + 1 * 3 + 2  # anchor-major, then y, then x
    # cx = (0.75*2 - 0.5 + 2) * 8 = 24, cy = (0.5*2 - 0.5 + 1) * 8 = 12
    # w = (0.25*2)^2 * 30 = 7.5, h = (0.75*2)^2 * 40 = 90
    torch.testing.assert_close(boxes[0, i], torch.tensor([20.25, -33.0, 27.75, 57.0]))
    torch.testing.assert_close(scores[0, i], torch.tensor(0.4))
    # kx = (1*2 - 0.5 + 2) * 8 = 28, ky = (-0.25*2 - 0.5 + 1) * 8 = 0
    torch.testing.assert_close(kpts[0, i, 0], torch.tensor([28.0, 0.0, 0.9]))

    j = 18 + 2 * 2 + 0 * 2 + 1
    # cx = (1 - 0.5 + 1) * 16 = 24, cy = (0.25*2 - 0.5 + 0) * 16 = 0; w, h = anchor (110, 120)
    torch.testing.assert_close(boxes[0, j], torch.tensor([-31.0, -60.0, 79.0, 60.0]))
    torch.testing.assert_close(scores[0, j], torch.tensor(0.1))
    # kx = (0.5*2 - 0.5 + 1) * 16 = 24, ky = (0.25*2 - 0.5 + 0) * 16 = 0
    torch.testing.assert_close(kpts[0, j, 0], torch.tensor([24.0, 0.0, 0.5]))


def test_grid_ordering_level_anchor_y_x() -> None:
    strides = (8, 16, 32)
    shapes = [(4, 6), (2, 3), (1, 2)]  # (H, W) of a 32x48 input
    anchors = torch.arange(1, 19, dtype=torch.float32).view(3, 3, 2)  # (L, A, 2)
    raw = [torch.zeros(2, 3, h, w, 6 + 3 * 17) for h, w in shapes]
    boxes, scores, kpts = decode(raw, anchors, strides)
    expected = []  # (cx, cy, w, h) with sigmoid(0) = 0.5 -> centre = (g + 0.5) * s, size = anchor
    for lvl, ((h, w), s) in enumerate(zip(shapes, strides, strict=True)):
        for a, y, x in itertools.product(range(3), range(h), range(w)):
            aw, ah = anchors[lvl, a].tolist()
            expected.append(((x + 0.5) * s, (y + 0.5) * s, aw, ah))
    e = torch.tensor(expected)
    assert boxes.shape == (2, len(expected), 4) == (2, 3 * (24 + 6 + 2), 4)
    torch.testing.assert_close(boxes[1], torch.cat((e[:, :2] - e[:, 2:] / 2, e[:, :2] + e[:, 2:] / 2), 1))
    torch.testing.assert_close(scores, torch.full((2, len(expected)), 0.25))
    # raw keypoint offset 0 -> (0 - 0.5 + g) * s: one stride left of / above the box centre
    torch.testing.assert_close(
        kpts[0, :, 5, 0], (e[:, 0] - torch.tensor([8.0] * 72 + [16.0] * 18 + [32.0] * 6))
    )
    torch.testing.assert_close(kpts[..., 2], torch.full((2, len(expected), 17), 0.5))


def test_decode_of_model_output_and_onnx_export_match(tmp_path) -> None:
    torch.manual_seed(102)
    model = build_model(resolve_config("edgepose-tiny")).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        raw = model(x)

    class Decode(torch.nn.Module):
        def forward(self, r0: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor):
            return decode([r0, r1, r2], model.anchors, model.strides)

    path = tmp_path / "decode.onnx"
    torch.onnx.export(Decode(), tuple(raw), str(path), dynamo=False, opset_version=17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: r.numpy() for i, r in zip(sess.get_inputs(), raw, strict=True)})
    with torch.no_grad():
        want = decode(raw, model.anchors, model.strides)
    assert want[0].shape == (1, 3 * (256 + 64 + 16), 4)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-3)
