"""ER-Pose head (issue 19): registry entries, config rules, raw maps, decode, the box-from-keypoints rule."""

from __future__ import annotations

import math

import pytest
import torch

from edgepose.errors import ConfigError
from edgepose.nn.config import (
    Activation,
    HeadKind,
    available_configs,
    config_from_dict,
    config_to_dict,
    resolve_config,
)
from edgepose.nn.erpose import BOX_MARGIN, ERPoseModel, boxes_from_keypoints, decode_erpose
from edgepose.nn.model import build_model, count_parameters

torch.set_num_threads(1)

# Measured parameter counts (17 keypoints), the one-to-many confidence branch included (training);
# the exported graph drops that branch (INFERENCE_PARAMS).
PARAMS = {"erpose-tiny": 677_543, "erpose-n": 2_174_935, "erpose-s": 7_911_479}
INFERENCE_PARAMS = {"erpose-tiny": 663_300, "erpose-n": 2_125_972, "erpose-s": 7_731_636}


def test_registry_entries_are_erpose_relu_and_anchor_free() -> None:
    assert {"erpose-n", "erpose-s", "erpose-tiny"} <= set(available_configs())
    for name, n in PARAMS.items():
        cfg = resolve_config(name)
        assert (cfg.name, cfg.head, cfg.activation) == (name, HeadKind.ERPOSE, Activation.RELU)
        assert "anchors" not in config_to_dict(cfg) and config_to_dict(cfg)["head"] == "erpose"
        assert config_from_dict(config_to_dict(cfg)) == cfg
        model = build_model(cfg)
        assert isinstance(model, ERPoseModel) and not hasattr(model, "anchors")
        assert count_parameters(model) == n
        assert n - count_parameters(model.head.conf_o2m) == INFERENCE_PARAMS[name]


def test_yolo_pose_dicts_are_unchanged() -> None:
    d = config_to_dict(resolve_config("edgepose-n"))
    assert "head" not in d and len(d["anchors"]) == 3  # what checkpoints of earlier versions hold
    assert config_from_dict(d).head is HeadKind.YOLO_POSE


def test_anchors_on_an_erpose_config_name_the_option() -> None:
    d = {
        "name": "x",
        "head": "erpose",
        "depth_multiple": 0.33,
        "width_multiple": 0.25,
        "anchors": [[1, 2]] * 3,
    }
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, source="x.yaml")
    assert str(info.value) == (
        "x.yaml: 'anchors' is a YOLO-Pose option; the erpose head is anchor-free: remove 'anchors'"
    )
    with pytest.raises(ConfigError, match="unknown head 'er-pose'; did you mean 'erpose'"):
        config_from_dict({**d, "head": "er-pose"})


@pytest.mark.parametrize("strides", [(8, 16, 32), (8, 16, 32, 64)])
def test_raw_maps_one_prediction_per_cell(strides: tuple[int, ...]) -> None:
    cfg = config_from_dict(
        {"name": "t", "head": "erpose", "depth_multiple": 0.33, "width_multiple": 0.125,
         "strides": list(strides), "input_size": 128}
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.rand(2, 3, 128, 192)
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out) is list
    want = [(2, 128 // s, 192 // s, 2 + 3 * 17) for s in strides]
    assert [tuple(o.shape) for o in train_out] == [tuple(o.shape) for o in eval_out] == want


def test_bias_priors() -> None:
    model = build_model(resolve_config("erpose-tiny"))
    for branches in (model.head.conf_o2m, model.head.conf_o2o):
        for seq, s in zip(branches, model.strides, strict=True):
            assert seq[-1].bias.item() == pytest.approx(math.log(8 / (128 / s) ** 2))
    for seq in model.head.pose:
        assert not seq[-1].bias.any()


def test_conf_branch_is_depthwise_separable_and_o2o_reads_detached_features() -> None:
    model = build_model(resolve_config("erpose-tiny")).train()
    dw = model.head.conf_o2o[0][0].dw.conv
    assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3)
    assert all(m.groups == 1 for m in model.head.pose.modules() if isinstance(m, torch.nn.Conv2d))
    out = model(torch.rand(1, 3, 64, 64))
    o2o = sum(o[..., 1].sum() for o in out)  # one-to-one confidence only
    o2o.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.backbone.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.head.conf_o2o.parameters())


def test_decode_keypoints_are_offsets_from_the_cell_centre_in_stride_units() -> None:
    h, w, k = 2, 3, 17
    raw = torch.zeros(1, h, w, 2 + 3 * k)
    raw[0, 1, 2, 1] = 2.0  # one-to-one logit of cell (x 2, y 1)
    raw[0, 1, 2, 2:4] = torch.tensor([0.25, -1.0])  # keypoint 0 offset
    boxes, scores, kpts = decode_erpose([raw], [16])
    assert boxes.shape == (1, 6, 4) and scores.shape == (1, 6) and kpts.shape == (1, 6, k, 3)
    n = 1 * w + 2  # ordered y, x
    assert scores[0, n].item() == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert kpts[0, n, 0].tolist() == pytest.approx([(2 + 0.5 + 0.25) * 16, (1 + 0.5 - 1.0) * 16, 0.5])
    assert kpts[0, n, 1, :2].tolist() == [(2 + 0.5) * 16, (1 + 0.5) * 16]  # zero offset: the cell centre
    assert kpts[0, 0, 0, :2].tolist() == [8.0, 8.0]


def test_box_from_keypoints_spans_confident_keypoints_with_a_margin() -> None:
    kpts = torch.tensor(
        [[[10.0, 20.0, 0.9], [30.0, 60.0, 0.6], [500.0, 500.0, 0.1]],  # the unconfident one is left out
         [[10.0, 20.0, 0.2], [30.0, 60.0, 0.3], [50.0, 40.0, 0.1]]]  # none confident: all three
    )  # fmt: skip
    boxes = boxes_from_keypoints(kpts)
    m = BOX_MARGIN
    want0 = [10 - 20 * m, 20 - 40 * m, 30 + 20 * m, 60 + 40 * m]
    want1 = [10 - 40 * m, 20 - 40 * m, 50 + 40 * m, 60 + 40 * m]
    assert boxes.tolist() == [pytest.approx(want0), pytest.approx(want1)]
    conf_at_threshold = torch.tensor([[[0.0, 0.0, 0.5], [8.0, 4.0, 0.5]]])  # >= 0.5 counts
    assert boxes_from_keypoints(conf_at_threshold)[0].tolist() == pytest.approx([-0.8, -0.4, 8.8, 4.4])
