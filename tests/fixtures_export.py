"""Session-scoped export fixtures shared by unit and e2e tests.

The exported model is edgepose-tiny with seeded random weights scaled so that its scores spread over
(0, 1) ("lively"): a freshly initialised model scores every anchor ~3e-4, so the NMS tail would have
nothing to do and parity checks would compare empty outputs. At 128 px it keeps ~90 detections per
image at the deployment threshold 0.25 and 100 (max_det) at 0.001.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

LIVELY_SEED = 100


def make_lively_model(seed: int = LIVELY_SEED) -> Any:
    """edgepose-tiny with variance-preserving random convs, non-trivial BatchNorm statistics (so BN
    folding is exercised) and a head scaled to logits of a few units."""
    import torch
    from torch import nn

    from edgepose.nn import build_model, resolve_config

    with torch.random.fork_rng():  # the init of what is not overwritten below (conv biases) is seeded too
        torch.manual_seed(seed)
        model = build_model(resolve_config("edgepose-tiny"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
        for conv in model.head.convs:
            conv.weight.mul_(0.05)
            bias = conv.bias.view(model.num_anchors, -1)  # (A, 6 + 3K)
            bias[:, 4], bias[:, 5] = -1.0, 0.0  # objectness, class logits
    return model.eval()


@pytest.fixture(scope="session")
def lively_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the lively edgepose-tiny (see the module docstring)."""
    from edgepose.nn import save_checkpoint
    from edgepose.spec import PoseSpec

    path = tmp_path_factory.mktemp("export_ckpt") / "lively-tiny.pt"
    spec = PoseSpec(name="edgepose-tiny", input_size=(128, 128))  # edgepose-tiny's size: export's default
    return save_checkpoint(path, make_lively_model(), spec, epoch=0, metrics={})


@pytest.fixture(scope="session")
def tiny_onnx_factory(
    lively_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """`make(**export_model kwargs) -> .onnx path`, cached per kwargs. Verification is off unless asked
    for (`verify=True`): it doubles the export time, and tests/e2e/test_export.py checks parity itself."""
    from edgepose.export import export_model

    cache: dict[tuple, Path] = {}

    def make(**kwargs: Any) -> Path:
        key = tuple(sorted((k, str(v)) for k, v in kwargs.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp("export") / "tiny.onnx"
            cache[key] = export_model(lively_checkpoint, out, **{"verify": False, **kwargs}).path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_onnx(tiny_onnx_factory: Callable[..., Path]) -> Path:
    """End-to-end lively edgepose-tiny: 128x128 float input, batch 1, opset 17, conf 0.25, IoU 0.45."""
    return tiny_onnx_factory()


@pytest.fixture(scope="session")
def tiny_onnx_raw(tiny_onnx_factory: Callable[..., Path]) -> Path:
    """The raw-head graph (--no-nms) of the same model: outputs raw_s8, raw_s16, raw_s32."""
    return tiny_onnx_factory(nms=False)
