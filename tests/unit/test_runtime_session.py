"""Loading a model: every wrong file or option is one ModelFileError/ConfigError line with the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepose.errors import ConfigError, ModelFileError
from edgepose.runtime import PoseEstimator
from edgepose.spec import GraphKind, InputFormat
from tests.helpers.runtime_onnx import SMALL_ROWS, SMALL_SPEC, build_model


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as exc:
        PoseEstimator(tmp_path / "nope.onnx")
    assert (
        one_line(exc)
        == f"{tmp_path / 'nope.onnx'}: no such file; pass the .onnx written by `edgepose export`"
    )
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        PoseEstimator(tmp_path)


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"PK\x03\x04 definitely a zip, not a protobuf" * 10)
    with pytest.raises(ModelFileError) as exc:
        PoseEstimator(bad)
    assert one_line(exc).startswith(f"{bad} is not an ONNX model (")
    assert one_line(exc).endswith("pass a .onnx from `edgepose export`")


def test_no_metadata(tmp_path: Path) -> None:
    path = build_model(tmp_path / "third_party.onnx", metadata={"producer": "someone"})
    with pytest.raises(ModelFileError) as exc:
        PoseEstimator(path)
    msg = one_line(exc)
    assert "has no edgepose metadata" in msg and "`edgepose export --from-onnx`" in msg


def test_broken_metadata(tmp_path: Path) -> None:
    meta = SMALL_SPEC.to_metadata() | {"edgepose.input_format": '"int4"'}
    path = build_model(tmp_path / "m.onnx", metadata=meta)
    with pytest.raises(ModelFileError, match="unreadable edgepose metadata"):
        PoseEstimator(path)


def test_raw_graph(tmp_path: Path) -> None:
    path = build_model(tmp_path / "raw.onnx", metadata=SMALL_SPEC.replace(graph=GraphKind.RAW).to_metadata())
    with pytest.raises(ModelFileError) as exc:
        PoseEstimator(path)
    assert "raw-head graph" in one_line(exc) and "re-export without --no-nms" in one_line(exc)


def test_metadata_that_disagrees_with_the_graph(tmp_path: Path) -> None:
    wrong_k = SMALL_SPEC.replace(keypoint_names=tuple("abcd"), flip_index=(0, 1, 2, 3))
    path = build_model(tmp_path / "k.onnx", SMALL_SPEC, SMALL_ROWS, metadata=wrong_k.to_metadata())
    with pytest.raises(ModelFileError, match=r"rows have 15 values, expected 18 \(6 \+ 3 x 4 keypoints\)"):
        PoseEstimator(path)
    path = build_model(
        tmp_path / "f.onnx", metadata=SMALL_SPEC.replace(input_format=InputFormat.UINT8).to_metadata()
    )
    with pytest.raises(
        ModelFileError, match="metadata says input format 'uint8' but input 'images' is tensor"
    ):
        PoseEstimator(path)
    path = build_model(tmp_path / "s.onnx", metadata=SMALL_SPEC.replace(input_size=(96, 64)).to_metadata())
    with pytest.raises(
        ModelFileError, match=r"has shape \['batch', 3, 64, 64\], metadata says \(B, 3, 96, 64\)"
    ):
        PoseEstimator(path)


def test_options(tmp_path: Path) -> None:
    path = build_model(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="did you mean 'CPUExecutionProvider'"):
        PoseEstimator(path, providers=["CPUExecutionProvder"])
    with pytest.raises(ConfigError, match="threads must be >= 1, got 0"):
        PoseEstimator(path, threads=0)
    est = PoseEstimator(path, threads=2, providers=["CPUExecutionProvider"])
    opts = est.session.get_session_options()
    assert opts.intra_op_num_threads == 2
    assert est.session.get_providers() == ["CPUExecutionProvider"]
    assert est.spec == SMALL_SPEC
    assert len(est(np.full((64, 64, 3), 114, np.uint8))) == 3
