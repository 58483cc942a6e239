"""CIoU and OKS losses, target assignment and the total loss on hand-made targets."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from edgepose.spec import COCO_SIGMAS
from edgepose.train.assign import TARGET_COLS, build_targets
from edgepose.train.loss import PoseLoss, bbox_ciou, oks_loss

torch.set_num_threads(1)
SIGMAS = torch.tensor(COCO_SIGMAS)


def test_ciou_perfect_box_is_one_and_loss_falls_as_box_approaches() -> None:
    target = torch.tensor([[10.0, 12.0, 4.0, 8.0]])  # cx, cy, w, h
    assert 1 - bbox_ciou(target, target).item() == pytest.approx(0.0, abs=1e-6)
    losses = []
    for t in np.linspace(1.0, 0.0, 11):  # from far (shifted, wrong shape) to the target
        pred = target + torch.tensor([[6.0, -5.0, 3.0, -4.0]]) * float(t)
        losses.append(1 - bbox_ciou(pred, target).item())
    assert all(a > b for a, b in pairwise(losses)), losses
    assert losses[0] > 1.0  # no overlap: CIoU < 0, so the loss exceeds 1 (centre-distance term)


def test_ciou_penalises_centre_distance_and_aspect_ratio_at_equal_iou() -> None:
    target = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    # Same IoU (0 overlap) but farther apart -> lower CIoU; same area, other aspect -> lower CIoU.
    near, far = torch.tensor([[5.0, 0.0, 4.0, 4.0]]), torch.tensor([[9.0, 0.0, 4.0, 4.0]])
    assert bbox_ciou(far, target).item() < bbox_ciou(near, target).item() < 0
    square, wide = torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.tensor([[0.0, 0.0, 8.0, 2.0]])
    assert bbox_ciou(wide, target).item() < bbox_ciou(square, target).item()


def _person(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 17, 2, generator=g) * 10
    v = torch.full((n, 17, 1), 2.0)
    v[0, :5] = 0  # unlabelled keypoints never count
    return torch.cat((xy, v), -1)  # (n, K, 3)


def test_oks_loss_zero_when_perfect_and_monotonic_towards_target() -> None:
    target = _person()
    area = torch.tensor([20.0, 30.0, 40.0])
    assert oks_loss(target[..., :2], target, area, SIGMAS).item() == pytest.approx(0.0, abs=1e-7)
    direction = torch.randn(3, 17, 2, generator=torch.Generator().manual_seed(1))
    losses = [
        oks_loss(target[..., :2] + direction * s, target, area, SIGMAS).item()
        for s in (2.0, 1.0, 0.5, 0.2, 0.0)
    ]
    assert all(a > b for a, b in pairwise(losses)), losses
    assert losses[0] < 1.0


def test_oks_loss_ignores_unlabelled_keypoints_and_matches_coco_formula() -> None:
    target = _person(1)
    pred = target[..., :2].clone()
    pred[0, :5] += 100.0  # unlabelled (v = 0): any error is free
    area = torch.tensor([25.0])
    assert oks_loss(pred, target, area, SIGMAS).item() == pytest.approx(0.0, abs=1e-7)
    pred[0, 5, 0] += 1.0  # one labelled keypoint off by 1 in x
    k = 2 * COCO_SIGMAS[5]
    expected = (1 - np.exp(-1.0 / (2 * 25.0 * k**2))) / 12  # 12 labelled keypoints
    assert oks_loss(pred, target, area, SIGMAS).item() == pytest.approx(expected, rel=1e-5)


def _one_target(cx: float, cy: float, w: float, h: float, k: int = 17) -> torch.Tensor:
    t = torch.zeros(1, TARGET_COLS + 3 * k)
    t[0, 2:6] = torch.tensor([cx, cy, w, h])
    t[0, TARGET_COLS::3] = cx  # every keypoint at the centre, visible
    t[0, TARGET_COLS + 1 :: 3] = cy
    t[0, TARGET_COLS + 2 :: 3] = 2
    return t


def test_assignment_centre_cell_plus_two_neighbours_and_anchor_ratio() -> None:
    anchors = torch.tensor([[[10.0, 20.0], [40.0, 40.0], [100.0, 60.0]]])  # (L=1, A=3, 2) px
    # Centre (27, 45) at stride 8 = cell (3.375, 5.625): + left (x frac < .5), lower (y frac > .5) cells
    (lt,) = build_targets(_one_target(27, 45, 12, 24), anchors, [8], [(16, 16)])
    # wh ratio to anchors: (1.2, 1.2) ok, (3.3, 1.7) ok, (8.3, 2.5) rejected (> 4).
    assert sorted(set(lt.a.tolist())) == [0, 1]
    cells = sorted(set(zip(lt.gi.tolist(), lt.gj.tolist(), strict=True)))
    assert cells == [(2, 5), (3, 5), (3, 6)]
    assert lt.b.shape[0] == 6  # 2 anchors x 3 cells
    # Box offsets relative to the assigned cell stay within YOLOv5's (-0.5, 1.5) reach.
    assert bool(((lt.box[:, :2] > -0.5) & (lt.box[:, :2] < 1.5)).all())
    # Keypoints relative to the same cell: centre keypoint offset == box centre offset.
    torch.testing.assert_close(lt.kpts[:, 0, :2], lt.box[:, :2])


def test_people_without_labelled_keypoints_are_not_assigned() -> None:
    anchors = torch.tensor([[[10.0, 20.0], [40.0, 40.0], [100.0, 60.0]]])  # (L=1, A=3, 2) px
    labelled, small = _one_target(27, 45, 12, 24), _one_target(90, 90, 12, 24)
    small[0, TARGET_COLS:] = 0  # COCO's num_keypoints 0: box kept, no keypoint
    (lt,) = build_targets(torch.cat([labelled, small]), anchors, [8], [(16, 16)])
    cells = sorted(set(zip(lt.gi.tolist(), lt.gj.tolist(), strict=True)))
    assert cells == [(2, 5), (3, 5), (3, 6)] and lt.b.shape[0] == 6  # only the labelled person's cells
    (none,) = build_targets(small, anchors, [8], [(16, 16)])
    assert none.b.shape[0] == 0


def _perfect_maps(
    t: torch.Tensor, anchors: torch.Tensor, strides: list[int], size: int
) -> list[torch.Tensor]:
    """Raw maps whose assigned cells decode exactly to target `t` (others: objectness -> 0)."""
    k = (t.shape[1] - TARGET_COLS) // 3
    shapes = [(size // s, size // s) for s in strides]
    maps = [torch.zeros(1, anchors.shape[1], h, w, 6 + 3 * k) for h, w in shapes]
    for m in maps:
        m[..., 4] = -20.0
    for m, lt in zip(maps, build_targets(t, anchors, strides, shapes), strict=True):
        xy = (lt.box[:, :2] + 0.5) / 2
        wh = torch.sqrt(lt.box[:, 2:] / lt.anchor) / 2
        m[lt.b, lt.a, lt.gj, lt.gi, 0:2] = torch.logit(xy.clamp(1e-6, 1 - 1e-6))
        m[lt.b, lt.a, lt.gj, lt.gi, 2:4] = torch.logit(wh.clamp(1e-6, 1 - 1e-6))
        m[lt.b, lt.a, lt.gj, lt.gi, 4] = 20.0
        m[lt.b, lt.a, lt.gj, lt.gi, 5] = 20.0
        kp = torch.cat(((lt.kpts[..., :2] + 0.5) / 2, torch.full_like(lt.kpts[..., :1], 20.0)), -1)
        m[lt.b, lt.a, lt.gj, lt.gi, 6:] = kp.reshape(-1, 3 * k)
    return maps


def test_total_loss_minimal_for_perfect_maps_and_larger_when_perturbed() -> None:
    anchors = torch.tensor(
        [[[8, 18], [14, 32], [28, 20]], [[22, 52], [44, 40], [38, 88]], [[70, 140], [130, 100], [120, 220]]],
        dtype=torch.float32,
    )  # (L, A, 2)
    strides = [8, 16, 32]
    crit = PoseLoss(anchors, strides, COCO_SIGMAS)
    t = _one_target(60, 70, 20, 44)
    maps = _perfect_maps(t, anchors, strides, 128)
    _, parts = crit(maps, t)
    box, obj, cls, kpt, kconf, _ = parts.tolist()
    assert box < 1e-4 and kpt < 1e-6 and cls < 1e-6 and kconf < 1e-6
    # Objectness is ~BCE(20, iou target ~1) where assigned, ~BCE(-20, 0) elsewhere: near 0.
    assert obj < 1e-3
    worse = [m.clone() for m in maps]
    worse[0][..., 6] += 0.5  # move every x keypoint of level 0 by one cell
    assert crit(worse, t)[1][3].item() > 10 * max(kpt, 1e-6)


def test_optimizers_param_groups_and_warmup() -> None:
    from edgepose.nn.config import resolve_config
    from edgepose.nn.model import build_model
    from edgepose.train.optim import cosine_lr, make_optimizer, set_lr
    from edgepose.train.options import OptimizerKind, TrainOptions

    model = build_model(resolve_config("edgepose-tiny"))
    sgd_opts = TrainOptions(lr0=0.01, lrf=0.01)
    sgd = make_optimizer(model, sgd_opts)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    decay = {g["kind"]: g["weight_decay"] for g in sgd.param_groups}
    assert decay == {"bn": 0.0, "weight": 5e-4, "bias": 0.0}  # weight decay on conv weights only
    n_params = sum(p.numel() for g in sgd.param_groups for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())
    set_lr(sgd, sgd_opts, 0, 100, 10)  # first warmup step
    lrs = {g["kind"]: g["lr"] for g in sgd.param_groups}
    assert lrs["bias"] == pytest.approx(0.1) and lrs["weight"] == 0.0
    assert sgd.param_groups[0]["momentum"] == pytest.approx(0.8)
    assert set_lr(sgd, sgd_opts, 50, 100, 10) == pytest.approx(0.01 * (0.01 + 0.99 * 0.5))  # cosine midpoint
    assert cosine_lr(sgd_opts, 100, 100) == pytest.approx(0.01 * 0.01)
    adam_opts = TrainOptions(optimizer=OptimizerKind.ADAMW, lr0=0.002)
    adam = make_optimizer(model, adam_opts)
    assert isinstance(adam, torch.optim.AdamW) and adam.defaults["betas"] == (0.937, 0.999)
    set_lr(adam, adam_opts, 0, 100, 10)
    assert all(g["lr"] == 0.0 for g in adam.param_groups)  # no 0.1 bias warmup for Adam
