"""Checkpoints: weights_only round trip, atomic writes, one-line errors for every wrong kind of file."""

from __future__ import annotations

import random

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgepose import __version__
from edgepose.errors import ModelFileError, OutputError
from edgepose.nn import (
    CHECKPOINT_FORMAT,
    Activation,
    build_model,
    load_checkpoint,
    resolve_config,
    save_checkpoint,
    set_activation,
)
from edgepose.spec import PoseSpec

torch.set_num_threads(1)
FIX = "pass a checkpoint (.pt) from `edgepose train`"


@pytest.fixture
def model():
    torch.manual_seed(103)
    m = build_model(resolve_config("edgepose-tiny"))
    with torch.no_grad():
        m.train()(torch.rand(2, 3, 64, 64))  # non-default BN running stats
    return m.eval()


def test_round_trip_with_train_state(tmp_path, model) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()(torch.rand(1, 3, 64, 64))[0].sigmoid().mean().backward()  # a bounded stand-in loss
    opt.step()
    model.eval()
    spec = PoseSpec(name="edgepose-tiny", input_size=(128, 128), conf_threshold=0.3)
    train_state = {"optimizer": opt.state_dict(), "step": 7, "ema_updates": 7.0}
    path = save_checkpoint(
        tmp_path / "last.pt", model, spec, epoch=4, metrics={"oks_ap": 0.25}, train_state=train_state
    )
    assert path == tmp_path / "last.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left

    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["format_version"] == 1
    assert raw["edgepose_version"] == __version__
    assert raw["config"]["name"] == "edgepose-tiny" and raw["config"]["activation"] == "relu"
    assert raw["spec"]["conf_threshold"] == 0.3 and raw["epoch"] == 4

    ck = load_checkpoint(path)
    assert not ck.model.training
    assert ck.cfg == model.cfg and ck.spec == spec and ck.epoch == 4 and ck.path == path
    assert ck.metrics == {"oks_ap": 0.25}
    assert ck.train_state is not None and ck.train_state["step"] == 7
    buf = next(iter(ck.train_state["optimizer"]["state"].values()))["momentum_buffer"]
    torch.testing.assert_close(buf, next(iter(opt.state_dict()["state"].values()))["momentum_buffer"])
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(model(x), ck.model(x), strict=True):
            assert torch.isfinite(a).all() and torch.equal(a, b)


def test_activation_swap_is_saved(tmp_path, model) -> None:
    set_activation(model, Activation.SILU)
    path = save_checkpoint(tmp_path / "silu.pt", model, PoseSpec(), epoch=0, metrics={})
    ck = load_checkpoint(path)
    assert ck.cfg.activation is Activation.SILU
    assert sum(isinstance(m, torch.nn.SiLU) for m in ck.model.modules()) == 57
    assert ck.train_state is None


def test_train_state_must_be_plain(tmp_path, model) -> None:
    with pytest.raises(TypeError, match=r"checkpoint train_state\['sched'\] is a StepLR; store only tensors"):
        sched = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), 1)
        save_checkpoint(
            tmp_path / "x.pt", model, PoseSpec(), epoch=0, metrics={}, train_state={"sched": sched}
        )
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder_makes_it_and_a_file_in_the_way_fails_cleanly(tmp_path, model) -> None:
    path = save_checkpoint(tmp_path / "nope" / "best.pt", model, PoseSpec(), epoch=0, metrics={})
    assert path.is_file() and load_checkpoint(path).epoch == 0
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file is a file, not a folder"):
        save_checkpoint(tmp_path / "file" / "best.pt", model, PoseSpec(), epoch=0, metrics={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "nope"]


def _onnx_bytes() -> bytes:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph).SerializeToString()


def _write(tmp_path, name: str, kind: str, model) -> object:
    p = tmp_path / name
    if kind == "state_dict":
        torch.save(model.state_dict(), p)
    elif kind == "random":
        p.write_bytes(random.Random(104).randbytes(4096).replace(b"PK", b"pk").lstrip(b"\x80\x08"))
    elif kind == "onnx":
        p.write_bytes(_onnx_bytes())
    elif kind == "pickled_module":
        torch.save(model, p)
    elif kind == "other_tool":
        torch.save({"epoch": 3, "model_state": model.state_dict(), "best_fitness": 0.5}, p)
    elif kind == "truncated":
        save_checkpoint(p, model, PoseSpec(), epoch=0, metrics={})
        p.write_bytes(p.read_bytes()[:2000])
    elif kind == "future":
        save_checkpoint(p, model, PoseSpec(), epoch=0, metrics={})
        d = torch.load(p, weights_only=True)
        d["format_version"] = 9
        torch.save(d, p)
    elif kind == "wrong_weights":
        save_checkpoint(p, model, PoseSpec(), epoch=0, metrics={})
        d = torch.load(p, weights_only=True)
        d["config"]["width_multiple"] = 0.25
        torch.save(d, p)
    return p


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("sd.pt", "state_dict", "is a plain state_dict without config or spec, not an edgepose checkpoint"),
        ("noise.pt", "random", "is not a PyTorch checkpoint (unrecognised file contents)"),
        ("model.onnx", "onnx", "is an ONNX model"),
        ("model.pt", "onnx", "is an ONNX model"),  # ONNX bytes under the wrong suffix
        ("full.pt", "pickled_module", "holds pickled objects other than weights"),
        (
            "yolo.pt",
            "other_tool",
            "is not an edgepose checkpoint (found ['best_fitness', 'epoch', 'model_state'])",
        ),
        ("cut.pt", "truncated", "could not be read as a PyTorch checkpoint (truncated or corrupt?)"),
        (
            "future.pt",
            "future",
            "has checkpoint format_version 9, this edgepose reads <= 1; upgrade edgepose",
        ),
        ("bad.pt", "wrong_weights", "is a damaged edgepose checkpoint (Error(s) in loading state_dict"),
    ],
)
def test_wrong_files_give_one_line_errors(tmp_path, model, name: str, kind: str, message: str) -> None:
    p = _write(tmp_path, name, kind, model)
    with pytest.raises(ModelFileError) as e:
        load_checkpoint(p)
    text = str(e.value)
    assert text.startswith(str(p)) and message in text and "\n" not in text
    if kind != "future":
        assert text.endswith(FIX)


def test_missing_path_and_folder(tmp_path) -> None:
    with pytest.raises(ModelFileError) as e:
        load_checkpoint(tmp_path / "best.pt")
    assert str(e.value) == f"{tmp_path / 'best.pt'}: no such file; {FIX}"
    with pytest.raises(ModelFileError, match="is a folder, not a checkpoint"):
        load_checkpoint(tmp_path)


def test_onnx_fixture_is_valid() -> None:
    onnx.checker.check_model(onnx.load_from_string(_onnx_bytes()))
