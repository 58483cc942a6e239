"""scripts/bench_real.py end to end on a toy Ultralytics-layout model and a seeded synthetic COCO folder.

The real model and photos (../shared/real) never reach the tests; this runs the same command path -
split, import, the four quantizations, one interleaved bench, the report - on stand-ins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.scripts import load_script
from tests.helpers.ultralytics_toy import export_toy

bench_real = load_script("bench_real")

NUM_CALIB, NUM_EVAL = 16, 10
VARIANTS = ("float", "int16", "int8", "mixed-npu16", "mixed-cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, synth_dataset_factory: Callable[..., Path]) -> dict:
    d = tmp_path_factory.mktemp("bench_real")
    model = export_toy(d / "toy-pose.onnx", score_bias=-3.0)  # a few people per image, like a photo
    data = synth_dataset_factory(num_images=NUM_CALIB + NUM_EVAL, size=128, seed=131)
    before = {p.name: p.stat().st_mtime_ns for p in (data / "images").iterdir()}
    out = d / "out"
    argv = ["--model", str(model), "--data", str(data), "--num-calib", str(NUM_CALIB), "--out", str(out),
            "--threads", "1", "--runs", "2"]  # fmt: skip
    rc = bench_real.main(argv)
    return {"rc": rc, "out": out, "data": data, "model": model, "before": before}


def test_writes_the_table_with_every_variant_against_its_float(run: dict) -> None:
    assert run["rc"] == 0
    text = (run["out"] / "real.md").read_text(encoding="utf-8")
    names = sorted(p.name for p in (run["data"] / "images").iterdir())
    assert (
        f"calibrate on {NUM_CALIB} photos ({names[0]} … {names[NUM_CALIB - 1]} by file name), "
        f"evaluate on the other {NUM_EVAL}"
    ) in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| toy-pose.")]
    assert [r[1] for r in rows] == list(VARIANTS)
    cols = next(line for line in text.splitlines() if line.startswith("| Model"))
    header = [c.strip(" |") for c in cols.split(" | ")]
    fid = {r[1]: r[header.index("OKS→float")] for r in rows}
    assert fid["float"] == "–"
    assert float(fid["int16"]) >= 0.99  # 16 bits: as good as float, labels or not
    assert all(0.5 < float(fid[v]) <= 1.0 for v in VARIANTS[2:])
    assert "p50 relative to int8 (same interleaved run)" in text
    for v in VARIANTS[1:]:
        assert f"- {v}: precision" in text  # each quantization's own report


def test_split_folders_are_disjoint_and_inputs_untouched(run: dict) -> None:
    fold = run["out"] / "fold1"
    calib = sorted(p.name for p in (fold / "calib" / "images").iterdir())
    sub = json.loads((fold / "eval" / "annotations.json").read_text(encoding="utf-8"))
    evaluated = sorted(i["file_name"] for i in sub["images"])
    assert len(calib) == NUM_CALIB and len(evaluated) == NUM_EVAL and not set(calib) & set(evaluated)
    bench = json.loads((fold / "bench.json").read_text(encoding="utf-8"))
    assert len(bench["rows"]) == len(VARIANTS)
    # derived models stay under OUT; the source model and the photos are not touched
    assert sorted(p.name for p in fold.glob("*.onnx")) == sorted(f"toy-pose.{v}.onnx" for v in VARIANTS)
    assert {p.name: p.stat().st_mtime_ns for p in (run["data"] / "images").iterdir()} == run["before"]
