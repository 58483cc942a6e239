"""`edgepose bench` on the tiny checkpoint: export + int8 quantization, cached by content hash.

One bench run (module fixture) is inspected by several tests; the second run must reuse the cache
(export and quantize are patched to fail, and the cached files keep their bytes and mtimes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from edgepose.bench.report import JSON_NAME
from edgepose.bench.result import COLUMNS, ROW_KEYS
from edgepose.cli import app
from edgepose.fsio import file_digest

runner = CliRunner()


def _bench(ckpt: Path, val: Path, calib: Path, root: Path, out: str) -> object:
    return runner.invoke(app, ["bench", str(ckpt), "--data", str(val), "--variants", "int8,float",
                               "--calib", str(calib), "--num-calib", "4", "--runs", "3", "--threads", "1",
                               "--out", str(root / out), "--cache-dir", str(root / "cache")])  # fmt: skip


@pytest.fixture(scope="module")
def first_run(
    lively_checkpoint: Path,
    synth_dataset_factory: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[object, Path, tuple[Path, Path, Path]]:
    torch.set_num_threads(1)
    val = synth_dataset_factory(num_images=6, size=128, seed=104)
    calib = synth_dataset_factory(num_images=4, size=128, seed=105)
    root = tmp_path_factory.mktemp("bench")
    res = _bench(lively_checkpoint, val, calib, root, "out1")
    assert res.exit_code == 0, res.output
    return res, root, (lively_checkpoint, val, calib)


def test_table_json_and_numbers(first_run: tuple[object, Path, tuple[Path, Path, Path]]) -> None:
    res, root, _ = first_run
    text = " ".join(res.output.split())
    for col in COLUMNS:
        assert col in res.output
    assert "exported with the COCO evaluation thresholds (score 0.001, IoU 0.65, max 100 detections)" in text
    data = json.loads((root / "out1" / JSON_NAME).read_text())
    rows = data["rows"]
    assert [r["variant"] for r in rows] == ["float", "int8"]  # report order, whatever --variants order
    assert all(list(r) == list(ROW_KEYS) for r in rows)
    f, q = rows
    assert f["delta_ap"] == 0.0 and q["delta_ap"] == q["ap"] - f["ap"]
    # Both variants of the checkpoint belong to its float export (by content) and are labelled by it.
    assert f["lineage"] == q["lineage"] == file_digest(f["model"])
    assert f["label"] == q["label"] == f["delta_ap_vs"] == q["delta_ap_vs"] == "lively-tiny"
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p90_ms"]
        assert r["fps"] == pytest.approx(1000.0 / r["p50_ms"], abs=1e-6)
        assert min(r["preprocess_ms"], r["inference_ms"], r["postprocess_ms"]) > 0
        assert r["input_size"] == [128, 128] and r["num_images"] == 6 and r["cached"] is False
        assert r["size_bytes"] == Path(r["model"]).stat().st_size
    # onnxruntime runs the int8 model's layers as integer kernels, except at most the 3 head convs (one
    # per stride) whose outputs feed the float tail: no QuantizeLinear after them, so no QLinearConv.
    assert (f["kernel_mode"], f["fused_int8_layers"], f["emulated_layers"]) == ("float", 0, 0)
    assert q["fused_int8_layers"] + q["emulated_layers"] == f["float_layers"] > 0
    assert q["emulated_layers"] <= 3 and q["float_layers"] == 0
    assert (f["layers_16bit_pct"], q["layers_16bit_pct"]) == (None, 0.0)
    assert q["size_bytes"] < f["size_bytes"] / 2
    assert len(data["cache"]["made"]) == 2 and data["cache"]["reused"] == []


def test_second_run_reuses_the_cache(
    first_run: tuple[object, Path, tuple[Path, Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root, (ckpt, val, calib) = first_run
    cached = sorted((root / "cache").glob("*.onnx"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in cached}

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached variant was made again")

    import edgepose.export.exporter
    import edgepose.quant.quantize

    monkeypatch.setattr(edgepose.export.exporter, "export_model", boom)
    monkeypatch.setattr(edgepose.quant.quantize, "quantize_model", boom)
    res = _bench(ckpt, val, calib, root, "out2")
    assert res.exit_code == 0, res.output
    data = json.loads((root / "out2" / JSON_NAME).read_text())
    assert data["cache"]["made"] == [] and sorted(data["cache"]["reused"]) == [str(p) for p in cached]
    assert [r["cached"] for r in data["rows"]] == [True, True]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in cached} == before
    first = json.loads((root / "out1" / JSON_NAME).read_text())["rows"]
    assert [r["ap"] for r in data["rows"]] == [r["ap"] for r in first]  # same files, same images
    assert "reused 2 cached model(s)" in res.output
