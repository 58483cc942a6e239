"""Property-based tests (hypothesis) of the pure pieces: decode, the reference NMS against onnxruntime's
NonMaxSuppression, and the COCO / YOLO-pose readers on generated and mutated files.

Letterbox and its inverse already have their properties in tests/unit/test_letterbox.py (round trip,
pixels land where the mapping says, padding colour); they are not repeated here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from edgepose.data.coco import read_coco
from edgepose.data.types import PoseDataset
from edgepose.data.yolo import read_yolo
from edgepose.errors import DataError
from edgepose.nms import nms
from edgepose.nn.decode import decode

torch.set_num_threads(1)
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
K = 2  # keypoints in the decode properties: enough to check they stay independent of each other


def _raw(seed: int, a: int = 2, h: int = 3, w: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, a, h, w, 6 + 3 * K, generator=g) * 2.0  # (B, A, H, W, 6 + 3K)


# --- decode ------------------------------------------------------------------------------------------


@FAST
@given(seed=st.integers(0, 2**16), dx=st.floats(0.01, 5.0), stride=st.sampled_from([8, 16, 32, 64]))
def test_decode_centre_is_monotonic_in_tx_and_stays_near_its_cell(seed: int, dx: float, stride: int) -> None:
    raw = _raw(seed)
    anchors = torch.tensor([[[10.0, 13.0], [16.0, 30.0]]])  # (levels, A, 2)
    more = raw.clone()
    more[..., 0] += dx
    b0, _, _ = decode([raw], anchors, [stride])
    b1, _, _ = decode([more], anchors, [stride])
    cx0, cx1 = (b0[..., 0] + b0[..., 2]) / 2, (b1[..., 0] + b1[..., 2]) / 2  # (1, N)
    assert torch.all(cx1 >= cx0) and torch.all((cx1 > cx0)[raw[0, ..., 0].reshape(1, -1).abs() < 6])
    w0, w1 = b0[..., 2] - b0[..., 0], b1[..., 2] - b1[..., 0]  # (1, N): tx moves the box, not its size
    np.testing.assert_allclose(w1.numpy(), w0.numpy(), atol=1e-4)
    # (sigmoid * 2 - 0.5 + grid) * stride: the centre lies within (-0.5, 1.5) cells of its own cell.
    gx = torch.arange(4).repeat(2 * 3).float()  # N ordered anchor, y, x -> x index = n % W
    rel = cx1[0] / stride - gx
    assert torch.all(rel > -0.5) and torch.all(rel < 1.5)


@FAST
@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 8.0))
def test_anchor_scales_wh_and_leaves_centres_scores_and_keypoints(seed: int, scale: float) -> None:
    raw = _raw(seed)
    anchors = torch.tensor([[[10.0, 13.0], [16.0, 30.0]]])
    b0, s0, k0 = decode([raw], anchors, [16])
    b1, s1, k1 = decode([raw], anchors * scale, [16])
    wh0, wh1 = b0[..., 2:] - b0[..., :2], b1[..., 2:] - b1[..., :2]  # (1, N, 2)
    np.testing.assert_allclose(wh1.numpy(), (wh0 * scale).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        ((b1[..., :2] + b1[..., 2:]) / 2).numpy(), ((b0[..., :2] + b0[..., 2:]) / 2).numpy(), atol=1e-4
    )
    assert torch.equal(s0, s1) and torch.equal(k0, k1)  # keypoints do not depend on the anchor size
    assert torch.all(wh1 >= 0) and torch.all(wh1 <= 4 * anchors.max() * scale + 1e-3)  # (2 sigmoid)^2 <= 4


@FAST
@given(seed=st.integers(0, 2**16), k=st.integers(0, K - 1), shift=st.floats(-3.0, 3.0))
def test_keypoint_xy_is_affine_in_its_own_raw_value_only(seed: int, k: int, shift: float) -> None:
    raw = _raw(seed)
    anchors = torch.tensor([[[10.0, 13.0], [16.0, 30.0]]])
    moved = raw.clone()
    moved[..., 6 + 3 * k] += shift  # x of keypoint k
    _, s0, k0 = decode([raw], anchors, [8])
    _, s1, k1 = decode([moved], anchors, [8])
    np.testing.assert_allclose((k1[..., k, 0] - k0[..., k, 0]).numpy(), 2 * 8 * shift, atol=1e-3)
    others = [i for i in range(K) if i != k]
    assert torch.equal(k1[..., others, :], k0[..., others, :]) and torch.equal(k1[..., k, 1:], k0[..., k, 1:])
    assert torch.equal(s0, s1)
    assert torch.all((k0[..., 2] >= 0) & (k0[..., 2] <= 1)) and torch.all((s0 >= 0) & (s0 <= 1))


# --- reference NMS vs onnxruntime NonMaxSuppression --------------------------------------------------


@pytest.fixture(scope="module")
def ort_nms() -> ort.InferenceSession:
    """One NonMaxSuppression node: boxes (1, N, 4) corners, scores (1, 1, N) -> selected (M, 3)."""
    node = helper.make_node(
        "NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score"], ["selected"], center_point_box=0
    )
    graph = helper.make_graph(
        [node],
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, None]),
            helper.make_tensor_value_info("max_out", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("iou", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 60),
    iou=st.floats(0.05, 0.95),
    score_thr=st.floats(0.0, 0.9),
    max_det=st.integers(1, 80),
    quantised=st.booleans(),
)
def test_reference_nms_keeps_what_onnxruntime_keeps(
    ort_nms: ort.InferenceSession,
    seed: int,
    n: int,
    iou: float,
    score_thr: float,
    max_det: int,
    quantised: bool,
) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2))
    if quantised:  # coarse grids make exact duplicates, zero-area boxes and equal scores (ties) common
        xy, wh = np.round(xy / 10) * 10, np.round(wh / 10) * 10
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)  # (N, 4) x1y1x2y2
    scores = (np.round(rng.uniform(0, 1, n), 1) if quantised else rng.uniform(0, 1, n)).astype(np.float32)
    feeds = {
        "boxes": boxes[None],
        "scores": scores[None, None],
        "max_out": np.array([max_det], np.int64),
        "iou": np.array([iou], np.float32),
        "score": np.array([score_thr], np.float32),
    }
    (selected,) = ort_nms.run(None, feeds)
    ours = nms(boxes, scores, iou, score_thr, max_det)
    if quantised:  # with ties onnxruntime's order among equal scores is its own: compare the kept sets
        assert sorted(selected[:, 2].tolist()) == sorted(ours.tolist())
    else:
        assert selected[:, 2].tolist() == ours.tolist()
    assert len(ours) <= max_det and np.all(scores[ours] > np.float32(score_thr))


# --- dataset readers on generated and mutated files --------------------------------------------------

_IMAGE_W, _IMAGE_H = 64, 48


def _coco_dict(rng: np.random.Generator, n_images: int, people: int, k: int) -> dict:
    images = [
        {"id": i + 1, "file_name": f"{i:03d}.jpg", "width": _IMAGE_W, "height": _IMAGE_H}
        for i in range(n_images)
    ]
    anns = []
    for j in range(people):
        x, y = rng.uniform(0, 30, 2)
        kp = np.stack([rng.uniform(0, 60, k), rng.uniform(0, 45, k), rng.integers(0, 3, k)], 1)
        kp[kp[:, 2] == 0, :2] = 0
        anns.append(
            {
                "id": j + 1,
                "image_id": int(rng.integers(1, n_images + 1)),
                "category_id": 1,
                "bbox": [float(x), float(y), 20.0, 25.0],
                "area": 500.0,
                "iscrowd": 0,
                "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kp.reshape(-1))],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
            }
        )
    cats = [
        {
            "id": 1,
            "name": "person",
            "keypoints": [f"k{i}" for i in range(k)],
            "skeleton": [[1, 2]] if k > 1 else [],
        }
    ]
    return {"images": images, "annotations": anns, "categories": cats}


def _mutate(data: bytes, rng: np.random.Generator, how: str) -> bytes:
    if how == "truncate":
        return data[: int(rng.integers(0, max(1, len(data))))]
    buf = bytearray(data)
    if how == "flip":
        for _ in range(int(rng.integers(1, 6))):
            i = int(rng.integers(0, len(buf)))
            buf[i] = int(rng.integers(0, 256))
        return bytes(buf)
    # "splice": repeat or drop a random run of bytes (wrong lengths, lost separators)
    i, j = sorted(int(v) for v in rng.integers(0, len(buf) + 1, 2))
    return bytes(buf[:i] + buf[i:j] * int(rng.integers(0, 3)) + buf[j:])


def _read_or_data_error(read, *args: object) -> PoseDataset | None:
    try:
        ds = read(*args)
    except DataError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None
    assert isinstance(ds, PoseDataset)
    for r in ds.records:  # a dataset that reads is a valid one
        n, k = r.keypoints.shape[0], len(ds.keypoint_names)
        assert r.boxes.shape == (n, 4) and r.keypoints.shape == (n, k, 3)
        assert np.isfinite(r.boxes).all() and np.isfinite(r.keypoints).all()
        assert set(np.unique(r.keypoints[..., 2])) <= {0, 1, 2}
    return ds


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_images=st.integers(1, 4),
    people=st.integers(0, 6),
    k=st.integers(1, 5),
    how=st.sampled_from(["none", "truncate", "flip", "splice"]),
)
def test_coco_reader_on_generated_and_mutated_files(
    tmp_path: Path, seed: int, n_images: int, people: int, k: int, how: str
) -> None:
    rng = np.random.default_rng(seed)
    data = _coco_dict(rng, n_images, people, k)
    raw = json.dumps(data).encode()
    path = tmp_path / f"c{seed}_{how}.json"
    path.write_bytes(raw if how == "none" else _mutate(raw, rng, how))
    ds = _read_or_data_error(read_coco, path)
    if how == "none":  # the unmutated file reads back exactly
        assert ds is not None and len(ds) == n_images and sum(r.num_people for r in ds.records) == people
        assert len(ds.keypoint_names) == k


def _yolo_root(
    tmp_path: Path, rng: np.random.Generator, n_images: int, people: int, k: int, tag: str
) -> Path:
    import cv2

    root = Path(tempfile.mkdtemp(prefix=f"y{tag}_", dir=tmp_path))  # hypothesis reuses tmp_path
    (root / "images").mkdir()
    (root / "labels").mkdir()
    (root / "data.yaml").write_text(f"kpt_shape: [{k}, 3]\n")
    for i in range(n_images):
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((_IMAGE_H, _IMAGE_W, 3), 100, np.uint8))
        lines = []
        for _ in range(people):
            box = rng.uniform(0.2, 0.6, 4)
            kp = np.stack([rng.uniform(0, 1, k), rng.uniform(0, 1, k), rng.integers(0, 3, k)], 1).reshape(-1)
            lines.append(" ".join(["0", *(f"{v:.5f}" for v in box), *(f"{v:g}" for v in kp)]))
        (root / "labels" / f"{i}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_images=st.integers(1, 3),
    people=st.integers(0, 4),
    k=st.integers(1, 4),
    how=st.sampled_from(["none", "truncate", "flip", "splice"]),
)
def test_yolo_reader_on_generated_and_mutated_label_files(
    tmp_path: Path, seed: int, n_images: int, people: int, k: int, how: str
) -> None:
    rng = np.random.default_rng(seed)
    root = _yolo_root(tmp_path, rng, n_images, people, k, f"{seed}_{how}")
    if how != "none":
        label = root / "labels" / f"{int(rng.integers(0, n_images))}.txt"
        label.write_bytes(_mutate(label.read_bytes() or b"0 0.5 0.5 0.2 0.2\n", rng, how))
    ds = _read_or_data_error(read_yolo, root)
    if how == "none":
        assert (
            ds is not None
            and len(ds) == n_images
            and sum(r.num_people for r in ds.records) == n_images * people
        )
