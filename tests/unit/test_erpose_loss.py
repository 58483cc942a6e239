"""ER-Pose loss and assignment (issue 19): the smooth OKS loss on hand-computed values and gradients, the
keypoint-driven one-to-many / one-to-one assignment, ignore regions and the quality targets."""

from __future__ import annotations

import math

import pytest
import torch

from edgepose.nn.config import resolve_config
from edgepose.nn.erpose import flatten_levels, keypoints_px
from edgepose.nn.model import build_model
from edgepose.spec import COCO_SIGMAS
from edgepose.train.erpose_assign import (
    assign,
    candidate_prior,
    ignore_mask,
    log_oks,
    pad_targets,
)
from edgepose.train.erpose_loss import ERPOSE_LOSS_NAMES, TAIL, ERPoseLoss, smooth_oks_loss, smooth_oks_terms
from edgepose.train.loss import oks_loss

torch.set_num_threads(1)

# area 50 px^2 and sigma 0.05 make the OKS scale 2 * area * (2 sigma)^2 = 1, so u^2 = d^2 in px^2.
AREA, SIGMA = 50.0, 0.05


def _case(
    pred: list[list[float]], vis: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    p = torch.tensor([pred], requires_grad=True)  # (1, K, 2)
    t = torch.tensor([[[0.0, 0.0, float(v)] for v in vis]])  # (1, K, 3), every target at the origin
    return p, t, torch.tensor([AREA]), torch.full((len(vis),), SIGMA)


def test_smooth_oks_values_and_gradients_by_hand() -> None:
    assert TAIL == 0.1
    p, t, area, s = _case([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [90.0, 90.0]], [2, 1, 2, 0])
    terms = smooth_oks_terms(p, t, area, s)[0]
    # l = 1 - exp(-u^2) + 0.1 (sqrt(1 + u^2) - 1):  u^2 = 25, 1, 0 (the 4th keypoint is unlabelled)
    far = 1 - math.exp(-25) + 0.1 * (math.sqrt(26) - 1)  # 1.4099019...
    near = 1 - math.exp(-1) + 0.1 * (math.sqrt(2) - 1)  # 0.6735420...
    assert terms[:3].tolist() == pytest.approx([far, near, 0.0], abs=1e-6)
    loss = smooth_oks_loss(p, t, area, s)
    assert loss.item() == pytest.approx((far + near + 0.0) / 3, abs=1e-6)  # mean over the 3 labelled
    loss.backward()
    # dl/dx = (exp(-u^2) + 0.1 / (2 sqrt(1 + u^2))) * 2 x, divided by the 3 labelled keypoints
    g_far = (math.exp(-25) + 0.05 / math.sqrt(26)) * 2 / 3
    g_near = (math.exp(-1) + 0.05 / math.sqrt(2)) * 2 / 3
    want = [[3 * g_far, 4 * g_far], [1 * g_near, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert p.grad[0].tolist() == [pytest.approx(r, abs=1e-6) for r in want]


def test_gradient_stays_alive_far_away_and_bounded_unlike_one_minus_oks() -> None:
    for d in (5.0, 50.0, 500.0):
        p, t, area, s = _case([[d, 0.0]], [2])
        smooth_oks_loss(p, t, area, s).backward()
        q, *_ = _case([[d, 0.0]], [2])
        oks_loss(q, t, area, s).backward()  # the YOLO-Pose 1 - OKS
        g, g_oks = p.grad[0, 0, 0].item(), q.grad[0, 0, 0].item()
        # -> TAIL per OKS unit (here 1 px): 0.0981 at d = 5, 0.09998 at 50, 0.1 at 500
        assert g == pytest.approx(TAIL * d / math.sqrt(1 + d * d) + 2 * d * math.exp(-d * d), rel=1e-5)
        assert 0.09 < g <= 0.1 and g_oks < 1e-9
    for d in (0.2, 0.7, 1.0, 2.0):  # near the target: bounded by sqrt(2/e) + TAIL
        p, t, area, s = _case([[d, 0.0]], [2])
        smooth_oks_loss(p, t, area, s).backward()
        assert 0 < p.grad[0, 0, 0].item() < math.sqrt(2 / math.e) + TAIL


def test_no_labelled_keypoint_gives_zero() -> None:
    p, t, area, s = _case([[3.0, 4.0]], [0])
    assert smooth_oks_loss(p, t, area, s).item() == 0.0


def _targets(
    rows: list[tuple[int, float, float, float, float, list[tuple[float, float, int]]]],
) -> torch.Tensor:
    """(image, cx, cy, w, h, K = 2 keypoints) -> collated targets (nt, 6 + 3K)."""
    out = []
    for img, cx, cy, w, h, kp in rows:
        out.append([img, 0, cx, cy, w, h, *[v for xyv in kp for v in xyv]])
    return torch.tensor(out, dtype=torch.float32)


def test_pad_targets_groups_people_per_image() -> None:
    t = _targets([(1, 10, 10, 4, 8, [(9, 8, 2), (0, 0, 0)]), (0, 20, 20, 4, 4, [(0, 0, 0), (0, 0, 0)]),
                  (1, 30, 30, 2, 2, [(30, 30, 1), (31, 31, 2)])])  # fmt: skip
    gt = pad_targets(t, batch=3)
    assert gt.kpts.shape == (3, 2, 2, 3)
    assert gt.valid.tolist() == [[True, False], [True, True], [False, False]]
    assert gt.has_kpts.tolist() == [[False, False], [True, True], [False, False]]
    assert gt.box[1, 0].tolist() == [8, 6, 12, 14] and gt.area[1, 0].item() == 32
    assert gt.kpts[1, 1, 1].tolist() == [31, 31, 2]


# One level, stride 8, 4 x 4 cells at 32 px: cell centres 4, 12, 20, 28.
CENTRES = torch.tensor([[4.0 + 8 * (i % 4), 4.0 + 8 * (i // 4)] for i in range(16)])
STRIDES = torch.full((16,), 8.0)
SIGMAS = torch.full((2,), 0.1)


def _cell(x: int, y: int) -> int:
    return y * 4 + x


def test_prior_is_the_centre_region_inside_the_box_plus_the_centre_cell() -> None:
    gt = pad_targets(_targets([(0, 16, 16, 20, 20, [(10, 10, 2), (20, 20, 2)]),  # box 6..26
                               (0, 29, 5, 2, 2, [(29, 5, 2), (0, 0, 0)])]), 1)  # fmt: skip
    prior = candidate_prior(gt, CENTRES, STRIDES)[0]  # (G, N)
    assert prior[0].nonzero().flatten().tolist() == [_cell(x, y) for y in (1, 2) for x in (1, 2)]
    assert prior[1].nonzero().flatten().tolist() == [_cell(3, 0)]  # tiny: only the cell holding its centre


def _preds_at(kpts_by_cell: dict[int, list[tuple[float, float]]]) -> torch.Tensor:
    """(1, 16, 2, 2) predicted keypoints: given cells as given, the rest far away."""
    xy = torch.full((1, 16, 2, 2), -500.0)
    for n, kp in kpts_by_cell.items():
        xy[0, n] = torch.tensor(kp)
    return xy


def test_topk_and_one_to_one_follow_keypoint_quality() -> None:
    kp = [(10.0, 10.0, 2), (20.0, 20.0, 2)]
    gt = pad_targets(_targets([(0, 16, 16, 20, 20, kp)]), 1)
    best, good = _cell(2, 1), _cell(1, 2)
    xy = _preds_at(
        {best: [(10, 10), (20, 20)], good: [(11, 10), (20, 22)], _cell(1, 1): [(14, 10), (20, 26)]}
    )
    prior = candidate_prior(gt, CENTRES, STRIDES)
    lo = log_oks(xy, gt, SIGMAS)
    # quality = COCO OKS: mean exp(-d^2 / (2 area (2 sigma)^2)), area = 400 -> scale 32 px^2
    assert lo[0, 0, good].exp().item() == pytest.approx((math.exp(-1 / 32) + math.exp(-4 / 32)) / 2, rel=1e-5)
    flat_logit = torch.zeros(1, 16)  # equal scores: the keypoints decide
    one = assign(flat_logit, xy, prior, lo, gt, topk=1)
    assert one.n.tolist() == [best] and one.quality.tolist() == pytest.approx([1.0])
    many = assign(flat_logit, xy, prior, lo, gt, topk=3)
    assert many.n.tolist() == sorted([best, good, _cell(1, 1)]) and len(many.b) == 3
    # the score matters too (task alignment): a much better score lifts a slightly worse pose
    logit = torch.zeros(1, 16)
    logit[0, good], logit[0, best] = 8.0, -8.0
    assert assign(logit, xy, prior, lo, gt, topk=1).n.tolist() == [good]


def test_a_cell_claimed_by_two_people_goes_to_the_better_match() -> None:
    gt = pad_targets(
        _targets(
            [(0, 14, 14, 16, 16, [(12, 12, 2), (16, 16, 2)]), (0, 18, 18, 16, 16, [(18, 18, 2), (22, 22, 2)])]
        ),
        1,
    )
    shared = _cell(1, 1)  # centre (12, 12): in both boxes
    xy = _preds_at({shared: [(12, 12), (16, 16)]})  # person 0's pose exactly
    pos = assign(
        torch.zeros(1, 16), xy, candidate_prior(gt, CENTRES, STRIDES), log_oks(xy, gt, SIGMAS), gt, 1
    )
    # both people rank the shared cell first; person 0 fits it exactly and keeps it, person 1 has no
    # one-to-one positive this step (no re-pick: edgepose.train.erpose_assign)
    assert pos.n.tolist() == [shared] and pos.kpts[0, 0].tolist() == [12.0, 12.0, 2.0]


def test_people_without_keypoints_are_not_assigned_but_ignored() -> None:
    t = _targets([(0, 16, 16, 20, 20, [(10, 10, 2), (20, 20, 2)]), (1, 24, 24, 8, 8, [(0, 0, 0), (0, 0, 0)])])
    gt = pad_targets(t, 2)
    xy = _preds_at({_cell(1, 1): [(10, 10), (20, 20)]}).repeat(2, 1, 1, 1)
    pos = assign(
        torch.zeros(2, 16), xy, candidate_prior(gt, CENTRES, STRIDES), log_oks(xy, gt, SIGMAS), gt, 10
    )
    assert set(pos.b.tolist()) == {0}
    ign = ignore_mask(gt, CENTRES)
    assert not ign[0].any() and ign[1].nonzero().flatten().tolist() == [
        _cell(x, y) for y in (2, 3) for x in (2, 3)
    ]


def test_loss_module_parts_quality_targets_and_gradients() -> None:
    cfg = resolve_config("erpose-tiny")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    crit = ERPoseLoss(cfg.strides, COCO_SIGMAS)
    x = torch.rand(2, 3, 64, 64)
    kp = [(30.0 + i, 20.0 + 2 * i, 2) for i in range(17)]
    t = torch.tensor([[0, 0, 40, 36, 24, 40, *[v for p in kp for v in p]]], dtype=torch.float32)
    preds = model(x)
    loss, parts = crit(preds, t)
    assert ERPOSE_LOSS_NAMES == ("oks", "kconf", "conf_o2m", "conf_o2o") and parts.shape == (4,)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(parts.sum().item() * 2, rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())
    # quality targets: the positive cells' detached OKS, recomputed here from the same predictions
    conf, kraw, centres, steps = flatten_levels([p.detach() for p in preds], cfg.strides)
    gt = pad_targets(t, 2)
    xy = keypoints_px(kraw, centres, steps)
    lo = log_oks(xy, gt, torch.tensor(COCO_SIGMAS))
    one = assign(conf[..., 1], xy, candidate_prior(gt, centres, steps), lo, gt, 1)
    assert len(one.n) == 1 and 0.0 <= one.quality.item() <= 1.0
    d2 = ((xy[0, one.n[0]] - gt.kpts[0, 0, :, :2]) ** 2).sum(-1)
    oks = torch.exp(-d2 / (2 * 24 * 40 * (2 * torch.tensor(COCO_SIGMAS)) ** 2)).mean()
    assert one.quality.item() == pytest.approx(oks.item(), rel=1e-4, abs=1e-30)


def test_empty_batch_gives_finite_loss_with_every_head_parameter_in_the_graph() -> None:
    cfg = resolve_config("erpose-tiny")
    model = build_model(cfg).train()
    loss, parts = ERPoseLoss(cfg.strides, COCO_SIGMAS)(
        model(torch.rand(1, 3, 64, 64)), torch.zeros(0, 6 + 51)
    )
    assert torch.isfinite(loss) and parts[0].item() == 0.0 and parts[2].item() > 0  # all cells negative
    loss.backward()
    assert all(p.grad is not None for p in model.head.pose.parameters())  # connected (DDP needs it)
