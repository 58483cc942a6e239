"""`edgepose export` through typer's CliRunner: bad inputs are one-line errors that leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.defaults import DEPLOY
from edgepose.onnxkit.model import spec_of
from edgepose.spec import (
    DETECTIONS_NAME,
    IOU_THR_NAME,
    MAX_DET_NAME,
    SCORE_THR_NAME,
    GraphKind,
    InputFormat,
)

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["export", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--opset", "9"],
            "error: --opset 9 is too low (NonMaxSuppression needs 10+, the detection tail 13+); "
            "use --opset 17 (default) or 13-21",
        ),
        (["--opset", "12"], "error: --opset 12 is too low"),
        (["--opset", "22"], "error: --opset 22 is not supported; use 13-21 (default 17)"),
        (
            ["--img", "100"],
            "error: --img 100 is not divisible by the largest stride 32; use a multiple of 32, e.g. 96",
        ),
        (["--batch", "2", "--dynamic-batch"], "error: --batch 2 and --dynamic-batch exclude each other"),
        (["--conf", "1.5"], "error: --conf 1.5 is out of range; use a value in [0, 1]"),
        (["--max-det", "0"], "error: --max-det 0 must be >= 1"),
    ],
)
def test_bad_options(lively_checkpoint: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "m.onnx"
    code, text = _run("--weights", str(lively_checkpoint), "--out", str(out), *extra)
    assert code == 1
    assert text.startswith(message) and text.count("\n") == 1, text
    assert list(tmp_path.iterdir()) == []


def test_not_a_checkpoint(tmp_path: Path) -> None:
    fake = tmp_path / "weights.pt"
    fake.write_text("not a model\n")
    code, text = _run("--weights", str(fake), "--out", str(tmp_path / "m.onnx"))
    assert code == 1
    fix = "pass a checkpoint (.pt) from `edgepose train`"
    assert text == f"error: {fake} is not a PyTorch checkpoint (unrecognised file contents); {fix}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


def test_missing_output_folders_are_made_and_an_existing_file_needs_force(
    lively_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "deeper" / "m.onnx"
    code, text = _run("--weights", str(lively_checkpoint), "--out", str(out), "--no-verify")
    assert code == 0, text
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["m.onnx"]
    before = out.read_bytes()
    code, text = _run("--weights", str(lively_checkpoint), "--out", str(out), "--no-verify")
    assert code == 1
    assert text == f"error: {out} already exists; pass --force to replace it, or choose another --out\n"
    assert out.read_bytes() == before
    code, text = _run("--weights", str(lively_checkpoint), "--out", str(out), "--no-verify", "--force")
    assert code == 0, text
    code, text = _run("--weights", str(lively_checkpoint), "--out", str(out / "x.onnx"))
    assert code == 1
    assert text == f"error: {out} is a file, not a folder; choose another --out\n"


def test_raw_export_prints_summary_and_writes_metadata(lively_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.onnx"
    code, text = _run(
        "--weights",
        str(lively_checkpoint),
        "--out",
        str(out),
        "--no-nms",
        "--img",
        "96",
        "--input-format",
        "uint8",
    )
    assert code == 0, text
    assert f"wrote {out}" in text and "raw graph, 96x96 uint8 input, opset 17, IR 8" in text
    assert "verified on 4 images at score thresholds 0.25, 0.001:" in text
    spec = spec_of(onnx.load(str(out)))
    assert (spec.graph, spec.input_size, spec.input_format) == (GraphKind.RAW, (96, 96), InputFormat.UINT8)
    assert [p.name for p in tmp_path.iterdir()] == ["raw.onnx"]  # no temp file left beside it


def test_export_bakes_the_defaults_module(lively_checkpoint: Path, tmp_path: Path) -> None:
    """Editing edgepose/defaults.py (simulated before anything imports it) changes what `edgepose export`
    bakes in: the graph's threshold initializers, the output rows and the spec metadata."""
    code = textwrap.dedent(
        f"""
        import dataclasses, edgepose.defaults as d
        d.DEPLOY = dataclasses.replace(d.DEPLOY, conf=0.3, iou=0.55, max_det=40)
        from edgepose.cli import app
        app(["export", "--weights", {str(lively_checkpoint)!r}, "--out", "m.onnx", "--no-verify"],
            standalone_mode=False)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(str(tmp_path / "m.onnx"))
    names = (SCORE_THR_NAME, IOU_THR_NAME, MAX_DET_NAME)
    baked = {i.name: numpy_helper.to_array(i).item() for i in model.graph.initializer if i.name in names}
    assert baked[SCORE_THR_NAME] == pytest.approx(0.3)
    assert baked[IOU_THR_NAME] == pytest.approx(0.55)
    assert baked[MAX_DET_NAME] == 40
    spec = spec_of(model)
    assert (spec.conf_threshold, spec.iou_threshold, spec.max_det) == (0.3, 0.55, 40)
    out = next(o for o in model.graph.output if o.name == DETECTIONS_NAME)
    assert out.type.tensor_type.shape.dim[1].dim_value == 40


def test_export_defaults_are_the_deployment_defaults(lively_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    code, text = _run("--weights", str(lively_checkpoint), "--out", str(out), "--no-verify")
    assert code == 0, text
    spec = spec_of(onnx.load(str(out)))
    assert (spec.conf_threshold, spec.iou_threshold, spec.max_det) == (
        DEPLOY.conf,
        DEPLOY.iou,
        DEPLOY.max_det,
    )


def test_export_size_is_the_checkpoints_trained_size_unless_img(
    lively_checkpoint: Path, tmp_path: Path
) -> None:
    """A checkpoint trained with `--img 96` (its spec) of a model whose config says 128: export, like
    `val --weights` and `bench X.pt`, builds a 96 px graph; `--img` overrides it."""
    from edgepose.nn import load_checkpoint, save_checkpoint
    from edgepose.spec import PoseSpec

    model = load_checkpoint(lively_checkpoint).model
    assert model.cfg.input_size == 128
    ckpt = save_checkpoint(
        tmp_path / "w96.pt", model, PoseSpec(name="edgepose-tiny", input_size=(96, 96)), epoch=1, metrics={}
    )
    for extra, size in (([], 96), (["--img", "160"], 160)):
        out = tmp_path / f"m{size}.onnx"
        code, text = _run("--weights", str(ckpt), "--out", str(out), "--no-verify", *extra)
        assert code == 0, text
        assert f"{size}x{size} float input" in text
        m = onnx.load(str(out))
        assert spec_of(m).input_size == (size, size)
        dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        assert dims == [1, 3, size, size]


def test_an_untrained_model_with_huge_keypoints_still_verifies(
    lively_checkpoint: Path, tmp_path: Path
) -> None:
    """A model a few steps into training decodes keypoints 1e5 px off the image; float32 rounding then
    differs by tenths of a pixel between PyTorch and onnxruntime, which is not an export error (the
    README's smoke run: train --max-steps 5, then bench runs/n/best.pt)."""
    import torch

    from edgepose.export import export_model
    from edgepose.nn import load_checkpoint, save_checkpoint

    ck = load_checkpoint(lively_checkpoint)
    with torch.no_grad():
        for conv in ck.model.head.convs:
            w = conv.weight.view(ck.model.num_anchors, -1, *conv.weight.shape[1:])  # (A, 6 + 3K, C, 1, 1)
            w[:, 6::3] *= 3e3  # keypoint x
            w[:, 7::3] *= 3e3  # keypoint y
    huge = save_checkpoint(tmp_path / "huge.pt", ck.model, ck.spec, epoch=0, metrics={})
    report = export_model(huge, tmp_path / "huge.onnx")
    assert report.verify is not None and report.verify.detections > 0
    assert 0.01 < report.verify.max_kpt_diff < 2.0  # beyond the absolute 0.01 px, within rounding
    # The tolerance stays 0.01 px for the values of a trained model: a real 0.02 px error is caught.
    from edgepose.export.verify import _PxDiff

    ref = np.array([100.0, 200.0])
    assert not _PxDiff.of(ref + 0.02, ref, scale=5 * 32.0).ok and _PxDiff.of(ref + 0.005, ref, scale=160.0).ok
    assert _PxDiff.of(ref + 0.3, ref, scale=1e5).ok and not _PxDiff.of(ref + 3.0, ref, scale=1e5).ok
