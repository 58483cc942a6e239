"""`export --from-onnx` of an already NMS-free Ultralytics pose model (YOLO26-pose style, issue 19).

The toy reproduces the end-to-end export path Ultralytics documents and writes: per-level maps flattened
and concatenated, boxes decoded to x1, y1, x2, y2 input pixels, scores post-sigmoid, keypoints decoded to
pixels with the visibility sigmoid applied, then TopK(max_det) over the scores and a gather of the rows:
one output (B, max_det, 6 + 3K) = x1, y1, x2, y2, score, class, K x (x, y, v), sorted, no threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgepose.errors import ExportError, ModelFileError
from edgepose.topk import topk_select
from tests.helpers.ultralytics_toy import STRIDES, anchor_points, toy_stem

SEED = 130
SIZE = 128
K = 17
ROWS = 300  # Ultralytics' default max_det; the 128-px toy has 336 cells
CONF = 0.3


def make_e2e_toy(k: int = K, rows: int = ROWS, extra: int = 0, seed: int = SEED):
    """A tiny torch pose net with one NMS-free output (B, rows, 6 + 3K + extra)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)

    class ToyPose26(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.strides = STRIDES
            self.stem = toy_stem()
            self.box = nn.ModuleList(nn.Conv2d(16, 4, 1) for _ in range(3))
            self.cls = nn.ModuleList(nn.Conv2d(16, 1, 1) for _ in range(3))
            self.kpt = nn.ModuleList(nn.Conv2d(16, max(1, 3 * k + extra), 1) for _ in range(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = []
            for i, conv in enumerate(self.stem):
                x = nn.functional.relu(conv(x))
                if i >= 2:
                    feats.append(x)  # strides 8, 16, 32
            b = x.shape[0]
            anc, st = anchor_points(feats, self.strides)  # (N, 2), (N, 1)
            dist = torch.cat([m(f).flatten(2) for m, f in zip(self.box, feats, strict=True)], 2)  # (B, 4, N)
            cls = torch.cat([m(f).flatten(2) for m, f in zip(self.cls, feats, strict=True)], 2)  # (B, 1, N)
            kpt = torch.cat(
                [m(f).flatten(2) for m, f in zip(self.kpt, feats, strict=True)], 2
            )  # (B, 3K+e, N)
            lt, rb = (nn.functional.softplus(dist.transpose(1, 2)) * 3.0).chunk(2, -1)  # (B, N, 2) each
            boxes = torch.cat((anc - lt, anc + rb), -1) * st  # (B, N, 4) x1y1x2y2 px
            kt = kpt.transpose(1, 2)  # (B, N, C)
            parts = [kt[..., 3 * k : 3 * k + extra]]  # (B, N, extra): e.g. mask coefficients
            if k:
                y = kt[..., : 3 * k].reshape(b, -1, k, 3)  # (B, N, K, 3)
                xy = (y[..., :2] + anc[:, None]) * st[:, None]  # (B, N, K, 2)
                parts.insert(0, torch.cat((xy, y[..., 2:].sigmoid()), -1).flatten(2))  # (B, N, 3K)
            kp = torch.cat(parts, -1)  # (B, N, 3K + extra)
            scores = cls.transpose(1, 2).sigmoid()  # (B, N, 1)
            top, idx = scores[..., 0].topk(rows, dim=1)  # (B, R) each, best first
            boxes = boxes.gather(1, idx[..., None].expand(-1, -1, 4))  # (B, R, 4)
            kp = kp.gather(1, idx[..., None].expand(-1, -1, kp.shape[-1]))  # (B, R, 3K + extra)
            return torch.cat(
                (boxes, top[..., None], torch.zeros_like(top[..., None]), kp), -1
            )  # (B, R, 6 + 3K)

    g = torch.Generator().manual_seed(seed)
    model = ToyPose26()
    with torch.no_grad():
        for p in model.parameters():
            std = (2.0 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.3
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for m in model.cls:  # scores spread over (0, 1)
            m.weight.mul_(4.0)
            m.bias.fill_(-3.6)
    return model.eval()


def export_e2e_toy(path: Path, **toy: object) -> Path:
    import torch

    from edgepose.onnxkit.model import pin_ir_version

    torch.onnx.export(
        make_e2e_toy(**toy), (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
        output_names=["output0"], opset_version=17, dynamo=False,
    )  # fmt: skip
    m = onnx.load(str(path))
    pin_ir_version(m)
    onnx.save(m, str(path))
    return path


def scenes(n: int, seed: int = SEED) -> np.ndarray:
    from edgepose.data.synth import render_sample

    imgs = [render_sample(seed, i, SIZE).image[:, :, ::-1].transpose(2, 0, 1) for i in range(n)]
    return np.stack(imgs).astype(np.float32) / np.float32(255.0)  # (n, 3, S, S)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from edgepose.export.importer import import_onnx

    d = tmp_path_factory.mktemp("e2e_toy")
    src = export_e2e_toy(d / "yolo26-toy-pose.onnx")
    return src, import_onnx(src, d / "wrapped.onnx", conf=CONF, max_det=100)


def _run(path: Path, x: np.ndarray, **feeds: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": x, **feeds}
    )


def test_wrapped_rows_are_the_sources_top_rows(imported: tuple) -> None:
    from edgepose.export.importer.options import KptConf, Layout

    src, rep = imported
    assert rep.layout is Layout.ULTRALYTICS_POSE_E2E and rep.source_shape == (1, ROWS, 6 + 3 * K)
    assert rep.kpt_conf is KptConf.PROB and rep.score_prob
    assert rep.check is not None and rep.check.detections > 0 and rep.spec.strides == ()
    total = 0
    for i, x in enumerate(scenes(3)):
        (raw,) = _run(src, x[None])  # (1, 300, 57)
        det, num = _run(rep.path, x[None])
        keep = topk_select(raw[0, :, 4], CONF, 100)
        assert 3 <= len(keep) < 100, f"scene {i}"  # lively toy, below the cap
        assert num[0] == len(keep)
        np.testing.assert_array_equal(det[0, : num[0]], raw[0, keep])  # rows pass through bit for bit
        assert not det[0, num[0] :].any()
        total += int(num[0])
    assert total > 10


def test_threshold_and_cap_at_run_time(imported: tuple) -> None:
    src, rep = imported
    x = scenes(1, seed=SEED + 1)
    (raw,) = _run(src, x)
    counts = []
    for thr in (CONF, 0.4, 0.5):
        det, num = _run(rep.path, x, score_threshold=np.array(thr, np.float32))
        assert num[0] == int((raw[0, :, 4] > thr).sum().clip(max=100))
        counts.append(int(num[0]))
    assert counts[0] > counts[1] > counts[2]
    det, num = _run(rep.path, x, max_detections=np.array(2, np.int64))
    assert num[0] == 2 and not det[0, 2:].any()


def test_graph_contract_has_no_nms(imported: tuple) -> None:
    from edgepose.onnxkit.model import spec_of as read_spec
    from edgepose.spec import TAIL_PREFIX, GraphKind

    _, rep = imported
    m = onnx.load(str(rep.path))
    assert read_spec(m).graph is GraphKind.END2END
    ops = [n.op_type for n in m.graph.node]
    assert "NonMaxSuppression" not in ops and ops.count("TopK") == 2  # the source's and the tail's
    assert [i.name for i in m.graph.input] == ["images", "score_threshold", "max_detections"]
    assert [o.name for o in m.graph.output] == ["detections", "num_detections"]
    tail = [n for n in m.graph.node if n.name.startswith(TAIL_PREFIX)]
    tail_ops = {n.op_type for n in tail}
    assert (
        tail_ops >= {"TopK", "GatherElements", "Where"} and "Sigmoid" not in tail_ops
    )  # probabilities already


def test_runtime_reads_the_import(imported: tuple) -> None:
    from edgepose.runtime.estimator import PoseEstimator

    src, rep = imported
    est = PoseEstimator(rep.path, threads=1)
    image = (scenes(1)[0].transpose(1, 2, 0)[:, :, ::-1] * 255).round().astype(np.uint8)  # BGR (S, S, 3)
    res = est(image, iou=0.9)  # no IoU input: nothing to suppress, the value is ignored
    (raw,) = _run(src, scenes(1)[:1])
    keep = topk_select(raw[0, :, 4], CONF, 100)
    assert len(res.scores) == len(keep) > 0
    want = raw[0, keep, 6:].reshape(len(keep), K, 3).copy()
    want[..., :2] = want[..., :2].clip(0, SIZE)  # the runtime clips to the image
    np.testing.assert_allclose(res.keypoints, want, atol=0.02)


def test_max_det_beyond_the_sources_rows_is_rejected(tmp_path: Path, imported: tuple) -> None:
    from edgepose.export.importer import import_onnx

    src, _ = imported
    with pytest.raises(
        ExportError, match=f"--max-det 400 is more than the {ROWS} rows the end-to-end source"
    ):
        import_onnx(src, tmp_path / "out.onnx", max_det=400)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "k", "needle"),
    [(0, 0, "(1, 300, 6) looks like a detection-only end-to-end model"),
     (32, 0, "(1, 300, 38) looks like a segmentation end-to-end model"),
     (1, 17, "(1, 300, 58) looks like an end-to-end output whose 52 values")],
)  # fmt: skip
def test_unsupported_end2end_layouts_name_the_shape(tmp_path: Path, extra: int, k: int, needle: str) -> None:
    from edgepose.export.importer import import_onnx

    src = export_e2e_toy(tmp_path / "src.onnx", k=k, extra=extra)
    with pytest.raises(ModelFileError) as info:
        import_onnx(src, tmp_path / "out.onnx", verify=False)
    assert needle in str(info.value) and "(B, N, 6 + 3K)" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.onnx"]
