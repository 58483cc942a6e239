"""Bench on ONNX files only (torch-free): exact AP through the runtime, ΔAP, reports, and one-line errors.

The "oracle" model is a fixed-table graph (tests/helpers/runtime_onnx.py) whose rows are the ground truth
of a one-image val set, so its AP is exactly 1.0; a copy with keypoints moved 3 px, labelled int8 in its
metadata, must score less, and its ΔAP is exactly the difference.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgepose.bench.report import JSON_NAME, MD_NAME, PNG_NAME, figure
from edgepose.bench.result import COLUMNS, ROW_KEYS
from edgepose.bench.run import run_bench
from edgepose.cli import app
from edgepose.fsio import file_digest
from edgepose.spec import PoseSpec, Precision
from tests.helpers.runtime_onnx import build_model, int8_of, oracle_rows

runner = CliRunner()
SIZE = 128


@pytest.fixture(scope="module")
def val(synth_dataset_factory: Callable[..., Path]) -> Path:
    # Generator version 1: 4 labelled people in image 0 (version 2, COCO's protocol, leaves 1 at 128 px).
    return synth_dataset_factory(num_images=1, size=SIZE, seed=102, version=1)


@pytest.fixture(scope="module")
def models(val: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("oracle")
    spec = PoseSpec(name="oracle", input_size=(SIZE, SIZE), max_det=20, version="test")
    exact = build_model(d / "oracle.onnx", spec, oracle_rows(val, 0.0))
    moved = int8_of(exact, d / "moved.onnx", spec, oracle_rows(val, 3.0))
    return exact, moved


def test_exact_ap_delta_and_reports(val: Path, models: tuple[Path, Path], tmp_path: Path) -> None:
    exact, moved = models
    res = run_bench([exact, moved], val, threads=1, runs=4, warmup=1, out_dir=tmp_path / "out")
    a, b = res.rows
    assert (a.variant, b.variant) == (Precision.FLOAT, Precision.INT8)
    assert a.ap == 1.0 and a.ap50 == 1.0 and a.ar == 1.0
    assert a.delta_ap == 0.0
    assert 0.0 < b.ap < 1.0
    assert b.delta_ap == b.ap - a.ap
    assert a.num_detections == 4
    for r in res.rows:  # the per-image scoring kept for intervals re-accumulates to the table's AP
        assert r.image_evals is not None and r.image_evals.ap() == r.ap and r.image_evals.people == 4
    for r in res.rows:
        assert 0 < r.p50_ms <= r.p90_ms
        assert r.fps == pytest.approx(1000.0 / r.p50_ms, abs=1e-6)
        assert r.preprocess_ms > 0 and r.inference_ms > 0 and r.postprocess_ms > 0
        assert r.size_bytes == Path(r.model).stat().st_size
        assert r.kernels.describe() == "float"  # the oracle has no Conv: nothing quantized runs
    assert (a.layers_16bit_pct, b.layers_16bit_pct) == (None, 0.0)

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([JSON_NAME, MD_NAME, PNG_NAME])
    data = json.loads((out / JSON_NAME).read_text())
    assert data["columns"] == list(ROW_KEYS)
    assert [list(r) for r in data["rows"]] == [list(ROW_KEYS)] * 2
    assert data["rows"][0]["delta_ap"] == 0.0 and data["rows"][1]["delta_ap"] == b.ap - 1.0
    assert data["settings"]["eval_setting"] == {"conf": 0.001, "iou": 0.65, "max_det": 100}
    assert data["settings"]["threads"] == 1 and data["settings"]["runs"] == 4
    md = (out / MD_NAME).read_text()
    assert "| " + " | ".join(COLUMNS) + " |" in md
    assert "| oracle | float | 100.0 | 100.0 |" in md  # the file's stem: no other input shares it
    assert (out / PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _invoke(tmp_path: Path, *args: str) -> object:
    return runner.invoke(app, ["bench", *args, "--out", str(tmp_path / "out"), "--runs", "2",
                               "--cache-dir", str(tmp_path / "cache")])  # fmt: skip


def test_cli_same_model_twice_is_reported_once(val: Path, models: tuple[Path, Path], tmp_path: Path) -> None:
    exact, _ = models
    res = _invoke(tmp_path, str(exact), str(exact), "--data", str(val), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert f"warning: {exact} is given twice; benchmarking it once" in res.output
    rows = json.loads((tmp_path / "out" / JSON_NAME).read_text())["rows"]
    assert [r["model"] for r in rows] == [str(exact)]
    for col in COLUMNS:
        assert col in res.output


def test_cli_val_images_of_another_size_are_information_not_a_warning(
    synth_dataset_factory: Callable[..., Path], models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Letterboxing images of any size into the model input is normal (COCO's are 480x640, 640x427, ...):
    said once among the measurement conditions, not as a warning."""
    val160 = synth_dataset_factory(num_images=1, size=160, seed=102)
    res = _invoke(tmp_path, str(models[0]), "--data", str(val160))
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    line = (
        "letterbox: the val images (160x160) are scaled into the model input (128x128) with their aspect "
        "ratio kept, as the runtime does: accuracy is measured at the model's input size"
    )
    assert " ".join(res.output.split()).count(line) == 1
    assert line in (tmp_path / "out" / MD_NAME).read_text()
    assert json.loads((tmp_path / "out" / JSON_NAME).read_text())["settings"]["val_image_sizes"] == {
        "160x160": 1
    }


def _assert_one_line_error(res: object, tmp_path: Path, text: str) -> None:
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_cli_bad_variant_suggests(val: Path, models: tuple[Path, Path], tmp_path: Path) -> None:
    res = _invoke(tmp_path, str(models[0]), "--data", str(val), "--variants", "float,int4")
    _assert_one_line_error(
        res, tmp_path, "unknown variant 'int4'; choose from float, int16, int8, mixed; did you mean 'int8'?"
    )


def test_cli_val_folder_without_annotations_or_images(models: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "val"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "notes.txt").write_text("not an image")
    res = _invoke(tmp_path, str(models[0]), "--data", str(folder))
    _assert_one_line_error(
        res, tmp_path, f"--data {folder}: no annotations.json and no images (looked for *.jpg"
    )


def test_unlabelled_folder_measures_fidelity_and_latency_without_ap(
    val: Path, models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 16: fidelity needs no labels, so `bench --data FRAMES/` works on a user's camera frames."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in (val / "images").iterdir():
        shutil.copy(p, frames / p.name)
    labelled = run_bench(list(models), val, threads=1, runs=2, warmup=1, out_dir=tmp_path / "a")
    res = run_bench(list(models), frames, threads=1, runs=2, warmup=1, out_dir=tmp_path / "b")
    assert res.settings["labelled"] is False and labelled.settings["labelled"] is True
    assert res.warnings == labelled.warnings == []  # the float row is there: nothing to warn about
    assert res.settings["num_images"] == labelled.settings["num_images"] == 1
    assert res.settings["val_image_sizes"] == labelled.settings["val_image_sizes"]  # read from the image
    for r, ref in zip(res.rows, labelled.rows, strict=True):
        assert (r.ap, r.ap50, r.ap75, r.ar, r.delta_ap) == (None,) * 5
        assert r.delta_ap_vs == ref.delta_ap_vs == "oracle"  # still named: fidelity is against it
        assert r.fidelity_oks == ref.fidelity_oks and r.fidelity_score_mae == ref.fidelity_score_mae
        assert r.num_detections == ref.num_detections
        cells = dict(zip(COLUMNS, r.cells(), strict=True))
        assert [cells[c] for c in ("AP", "AP50", "AP75", "AR", "ΔAP")] == ["n/a"] * 5
    assert 0.0 < res.rows[1].fidelity_oks < 1.0  # the moved model: measured, not a default
    md = (tmp_path / "b" / MD_NAME).read_text()
    assert f"accuracy: {frames} has no annotations: AP, AP50, AP75, AR and ΔAP are n/a" in md
    assert (tmp_path / "b" / PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = figure(res)  # the plot: OKS to float against latency (float = 1 by definition)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "OKS to the float model's people (no labels)"
    ys = [float(c.get_offsets()[0][1]) for c in ax.collections]
    assert ys == [1.0, pytest.approx(res.rows[1].fidelity_oks)]


def test_cli_onnx_without_metadata(val: Path, tmp_path: Path) -> None:
    bare = build_model(
        tmp_path / "bare.onnx",
        PoseSpec(input_size=(SIZE, SIZE), max_det=8),
        np.zeros((0, 57), np.float32),
        metadata={},
    )
    res = _invoke(tmp_path, str(bare), "--data", str(val))
    _assert_one_line_error(res, tmp_path, f"{bare} has no edgepose metadata")


def test_onnx_bench_needs_no_torch_or_onnx(val: Path, models: tuple[Path, Path], tmp_path: Path) -> None:
    """Issue 10: on a board only the runtime's dependencies exist; torch and onnx are made unimportable."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['onnx'] = None\n"
        "sys.modules['onnxslim'] = None\n"
        "from edgepose.cli import app\n"
        f"app(['bench', {str(models[0])!r}, '--data', {str(val)!r}, '--runs', '2', '--threads', '1',"
        f" '--out', {str(tmp_path / 'out')!r}], standalone_mode=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "out" / JSON_NAME).read_text())["rows"]
    assert len(rows) == 1 and rows[0]["ap"] == 1.0


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--threads", "0"), "--threads must be >= 1, got 0; use e.g. --threads 2"),
        (("--num-images", "-3"), "--num-images must be >= 1, got -3"),
    ],
)
def test_cli_bad_numbers(
    val: Path, models: tuple[Path, Path], tmp_path: Path, args: tuple[str, str], text: str
) -> None:
    _assert_one_line_error(_invoke(tmp_path, str(models[0]), "--data", str(val), *args), tmp_path, text)


def test_cli_out_is_a_file(val: Path, models: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "out").write_text("keep me")
    res = _invoke(tmp_path, str(models[0]), "--data", str(val))
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        f"error: --out {tmp_path / 'out'} is a file; pass a folder for bench.json, bench.md and bench.png"
    ], res.output
    assert (tmp_path / "out").read_text() == "keep me"


def test_delta_ap_is_against_the_float_each_file_was_quantized_from(val: Path, tmp_path: Path) -> None:
    """Issue 17.1: two float models with the same name and input size (the old grouping key), in folders
    whose files share names. The int8 file was made from the second: its ΔAP is against that one, and
    every row has a name of its own."""
    spec = PoseSpec(name="oracle", input_size=(SIZE, SIZE), max_det=20, version="test")
    elsewhere = build_model(tmp_path / "elsewhere.onnx", spec, oracle_rows(val, 1.0))  # not benchmarked
    (tmp_path / "n").mkdir()
    (tmp_path / "m").mkdir()
    n_best = build_model(tmp_path / "n" / "best.onnx", spec, oracle_rows(val, 2.0))  # an AP of its own
    m_best = build_model(tmp_path / "m" / "best.onnx", spec, oracle_rows(val, 0.0))
    m_int8 = int8_of(m_best, tmp_path / "m" / "best.int8.onnx", spec, oracle_rows(val, 3.0))
    orphan = int8_of(elsewhere, tmp_path / "orphan.int8.onnx", spec, oracle_rows(val, 3.0))
    int8 = spec.replace(precision=Precision.INT8)
    old = build_model(tmp_path / "old.int8.onnx", int8, oracle_rows(val, 3.0))  # no lineage recorded
    warnings: list[str] = []
    inputs = [n_best, m_best, m_int8, orphan, old]
    res = run_bench(inputs, val, threads=1, runs=2, warmup=0, warn=warnings.append)
    by = {r.label: r for r in res.rows}
    assert list(by) == ["n/best", "m/best", "best.int8", "orphan.int8", "old.int8"]  # no two share a name
    assert 0.0 < by["n/best"].ap < by["m/best"].ap == 1.0
    assert by["best.int8"].delta_ap_vs == "m/best"
    assert by["best.int8"].delta_ap == by["best.int8"].ap - 1.0  # not against n/best, the first float
    assert by["orphan.int8"].delta_ap is None and by["old.int8"].delta_ap is None
    assert warnings == [
        f"orphan.int8: quantized from elsewhere.onnx (sha256 {file_digest(elsewhere)[:12]}), which is not "
        "among the models benchmarked; ΔAP n/a: pass that float file too",
        "old.int8: the float model it was quantized from is not recorded (quantized before edgepose recorded "
        "it); ΔAP n/a: quantize it again with `edgepose quantize` to compare",
    ]
