"""Model configs (YAML registry, strict keys) and the network: shapes, sizes, fusing, activation swap."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from edgepose.errors import ConfigError
from edgepose.nn import (
    Activation,
    ModelConfig,
    available_configs,
    build_model,
    config_from_dict,
    config_to_dict,
    count_parameters,
    fuse_conv_bn,
    load_config,
    resolve_config,
    set_activation,
)
from edgepose.nn.blocks import ConvBNAct
from edgepose.nn.config import registry_file

torch.set_num_threads(1)

# Measured parameter counts (17 keypoints, 3 anchors); close to YOLOv5 n/s/m/l(6) as expected
# for the same backbone/neck with a 171-channel head. The ranges are +-0.5 % around them.
PARAMS = {
    "edgepose-tiny": 480_913,
    "edgepose-n": 1_834_273,
    "edgepose-s": 7_159_873,
    "edgepose-m": 21_077_409,
    "edgepose-l": 46_412_929,
    "edgepose-n6": 3_192_844,
    "edgepose-s6": 12_518_764,
    "edgepose-m6": 35_570_316,
    "edgepose-l6": 76_554_796,
}
# Two input sizes per variant, each divisible by the variant's largest stride; big ones stay small.
SIZES = {
    "edgepose-tiny": (128, 256),
    "edgepose-n": (128, 256),
    "edgepose-s": (128, 256),
    "edgepose-n6": (128, 256),
    "edgepose-s6": (128, 256),
    "edgepose-m": (64, 128),
    "edgepose-l": (64, 128),
    "edgepose-m6": (64, 128),
    "edgepose-l6": (64, 128),
}


def tiny_model(act: Activation = Activation.RELU) -> nn.Module:
    torch.manual_seed(100)
    return build_model(dataclasses.replace(resolve_config("edgepose-tiny"), activation=act))


def test_registry_holds_every_variant_with_relu_default() -> None:
    # the YOLO-Pose entries; the ER-Pose ones (erpose-*) are tested in test_erpose_model.py
    assert [n for n in available_configs() if not n.startswith("erpose-")] == sorted(PARAMS)
    for name in PARAMS:
        cfg = resolve_config(name)
        assert cfg.name == name
        assert cfg.activation is Activation.RELU
        assert cfg.strides == ((8, 16, 32, 64) if name.endswith("6") else (8, 16, 32))
        assert len(cfg.anchors) == len(cfg.strides) and cfg.num_anchors == 3
        assert cfg.input_size % max(cfg.strides) == 0


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_output_shapes_and_parameter_count(name: str) -> None:
    cfg = resolve_config(name)
    model = build_model(cfg).eval()
    n = count_parameters(model)
    assert abs(n - PARAMS[name]) <= 0.005 * PARAMS[name], n
    assert model.anchors.shape == (len(cfg.strides), 3, 2)
    assert model.anchors[0, 0].tolist() == list(cfg.anchors[0][:2])
    with torch.no_grad():
        for size in SIZES[name]:
            out = model(torch.rand(1, 3, size, size))
            assert [tuple(o.shape) for o in out] == [(1, 3, size // s, size // s, 57) for s in cfg.strides]


def test_parameter_counts_grow_with_size() -> None:
    for suffix in ("", "6"):
        counts = [PARAMS[f"edgepose-{s}{suffix}"] for s in "nsml"]
        assert counts == sorted(counts)
    assert 1.5e6 < PARAMS["edgepose-n"] < 3e6 and 40e6 < PARAMS["edgepose-l"] < 60e6


def test_train_and_eval_return_the_same_type_and_batch() -> None:
    model = tiny_model()
    x = torch.rand(2, 3, 96, 128)  # non-square works too
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out) is list
    assert [o.shape for o in train_out] == [o.shape for o in eval_out]
    assert tuple(eval_out[0].shape) == (2, 3, 12, 16, 57)


def test_head_bias_priors() -> None:
    model = tiny_model()
    for conv, s in zip(model.head.convs, model.strides, strict=True):
        b = conv.bias.detach().view(3, 57)  # (A, 6+3K)
        torch.testing.assert_close(b[:, 4], torch.full((3,), math.log(8 / (128 / s) ** 2)))
        torch.testing.assert_close(b[:, 5], torch.full((3,), math.log(0.01 / 0.99)))


def test_no_silu_in_relu_model_and_only_deployable_ops() -> None:
    model = tiny_model()
    kinds = {type(m) for m in model.modules() if not list(m.children())}
    assert kinds <= {nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Upsample}, kinds
    stem = model.backbone.stem
    assert isinstance(stem, ConvBNAct) and stem.conv.kernel_size == (6, 6) and stem.conv.stride == (2, 2)


def test_set_activation_swaps_every_activation() -> None:
    model = tiny_model()
    n_blocks = sum(isinstance(m, ConvBNAct) for m in model.modules())
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == n_blocks == 57
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model.eval()(x)[0]
    set_activation(model, Activation.SILU)
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == n_blocks
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())
    assert model.cfg.activation is Activation.SILU
    set_activation(model, Activation.RELU6)
    assert sum(isinstance(m, nn.ReLU6) for m in model.modules()) == n_blocks
    set_activation(model, Activation.RELU)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], before)  # same weights, same activation -> same output


def test_fuse_conv_bn_matches_eval_output() -> None:
    model = tiny_model()
    model.train()
    with torch.no_grad():
        for _ in range(3):  # move BN running stats away from their init
            model(torch.rand(2, 3, 64, 64) * 2)
    model.eval()
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(101))
    fused = fuse_conv_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 57  # original untouched
    with torch.no_grad():
        for a, b in zip(model(x), fused(x), strict=True):
            assert (a - b).abs().max().item() < 1e-4
            assert a.abs().max().item() > 1.0  # a real comparison, not of zeros


# --- configs ---------------------------------------------------------------------------------------


def test_unknown_yaml_key_suggests_the_close_one(tmp_path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("name: x\ndepth_multiple: 0.33\nwidht_multiple: 0.25\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == f"{p}: unknown key 'widht_multiple'; did you mean 'width_multiple'?"


def test_input_size_not_divisible_by_max_stride(tmp_path) -> None:
    p = tmp_path / "x6.yaml"
    text = registry_file("edgepose-n6").read_text().replace("input_size: 256", "input_size: 224")
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"input_size 224 is not divisible by the largest stride 64; "):
        load_config(p)
    with pytest.raises(ConfigError, match=r"input_size 200 .* stride 32; use a multiple of 32, e.g. 192"):
        dataclasses.replace(resolve_config("edgepose-n"), input_size=200)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"activation": "rleu"}, "unknown activation 'rleu'; did you mean 'relu'?"),
        ({"strides": [8, 16]}, "strides [8, 16] unsupported"),
        ({"anchors": [[8, 18, 14, 32]]}, "1 anchor rows for 3 strides"),
        ({"anchors": [[8, 18], [8, 18, 1, 1], [8, 18]]}, "every row needs the same number"),
        ({"width_multiple": "wide"}, "width_multiple must be a float, got 'wide'"),
        ({"depth_multiple": 0}, "depth_multiple 0.0 is out of range"),
    ],
)
def test_bad_config_values(changes: dict, message: str) -> None:
    d = {"name": "x", "depth_multiple": 0.33, "width_multiple": 0.25, **changes}
    with pytest.raises(ConfigError) as e:
        config_from_dict(d, source="cfg.yaml")
    assert str(e.value).startswith("cfg.yaml: ") and message in str(e.value)


def test_missing_key_and_unknown_name() -> None:
    with pytest.raises(ConfigError, match=r"cfg\.yaml: missing key 'width_multiple'"):
        config_from_dict({"name": "x", "depth_multiple": 1.0}, source="cfg.yaml")
    with pytest.raises(ConfigError, match=r"unknown model 'edgepose-nn'; did you mean 'edgepose-n'\?"):
        resolve_config("edgepose-nn")


def test_config_dict_round_trip_is_json_safe() -> None:
    for name in ("edgepose-n", "edgepose-m6", "edgepose-tiny"):
        cfg = resolve_config(name)
        d = json.loads(json.dumps(config_to_dict(cfg)))
        assert config_from_dict(d) == cfg
    assert resolve_config(str(registry_file("edgepose-s"))) == resolve_config("edgepose-s")
    # Direct construction accepts JSON-ish spellings and normalises them.
    cfg = ModelConfig("x", 0.33, 0.25, activation="silu", strides=[8, 16, 32])  # type: ignore[arg-type]
    assert cfg.activation is Activation.SILU and cfg.strides == (8, 16, 32)
