"""scripts/bench_real.py end to end on a toy Ultralytics-layout model and a seeded synthetic COCO folder.

The real model and photos (../shared/real) never reach the tests; this runs the same command path -
split, import, the four quantizations (the seeded three twice: --repeats 2), one interleaved bench per
fold (--folds 2), the pooled AP and the bootstrap intervals, the repeats' spread, the report - on
stand-ins. 16 of 34 photos calibrate, so the two evaluation halves share 2 photos (as the real 64 of 130
do) and together cover every photo.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.scripts import load_script
from tests.helpers.ultralytics_toy import export_toy

bench_real = load_script("bench_real")

NUM_CALIB, NUM_EVAL = 16, 18
NUM_PHOTOS = NUM_CALIB + NUM_EVAL
VARIANTS = ("float", "int16", "int8", "mixed-npu16", "mixed-cpu")
SEEDED = VARIANTS[2:]
# the rows: each variant's seeds side by side (quantize --seed 1 for the second run of a seeded variant)
NAMES = ("float", "int16", "int8", "int8.seed1", "mixed-npu16", "mixed-npu16.seed1", "mixed-cpu",
         "mixed-cpu.seed1")  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, synth_dataset_factory: Callable[..., Path]) -> dict:
    d = tmp_path_factory.mktemp("bench_real")
    model = export_toy(d / "toy-pose.onnx", score_bias=-3.0)  # a few people per image, like a photo
    data = synth_dataset_factory(num_images=NUM_PHOTOS, size=128, seed=131)
    before = {p.name: p.stat().st_mtime_ns for p in (data / "images").iterdir()}
    out = d / "out"
    argv = ["--model", str(model), "--data", str(data), "--num-calib", str(NUM_CALIB), "--out", str(out),
            "--threads", "1", "--runs", "2", "--folds", "2", "--resamples", "50",
            "--repeats", "2"]  # fmt: skip
    seen: dict = {}

    def statistics(folds: list[dict], resamples: int, seed: int) -> dict:  # keeps what main computed
        seen["folds"], seen["stats"] = folds, real_statistics(folds, resamples, seed)
        return seen["stats"]

    real_statistics = bench_real.statistics
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench_real, "statistics", statistics)
        rc = bench_real.main(argv)
    return {"rc": rc, "out": out, "data": data, "model": model, "before": before, **seen}


def test_writes_the_table_with_every_variant_against_its_float(run: dict) -> None:
    assert run["rc"] == 0
    text = (run["out"] / "real.md").read_text(encoding="utf-8").split("## Fold 2")[0]
    names = sorted(p.name for p in (run["data"] / "images").iterdir())
    assert (
        f"calibrate on {NUM_CALIB} photos ({names[0]} … {names[NUM_CALIB - 1]} by file name), "
        f"evaluate on the other {NUM_EVAL}"
    ) in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| toy-pose.")]
    assert [r[0] for r in rows] == [f"| toy-pose.{n}" for n in NAMES]
    assert [r[1] for r in rows] == [n.split(".")[0] for n in NAMES]  # the Variant column: from the file
    cols = next(line for line in text.splitlines() if line.startswith("| Model"))
    header = [c.strip(" |") for c in cols.split(" | ")]
    fid = {r[1]: r[header.index("OKS→float")] for r in rows}
    assert fid["float"] == "–"
    assert float(fid["int16"]) >= 0.99  # 16 bits: as good as float, labels or not
    assert all(0.5 < float(fid[v]) <= 1.0 for v in VARIANTS[2:])
    assert "p50 relative to int8 (same interleaved run)" in text
    for v in NAMES[1:]:
        assert f"- {v}: precision" in text  # each quantization's own report
    reports = run["folds"][0]["reports"]
    assert list(reports) == ["int16", "int8", "mixed-npu16", "mixed-cpu", *(f"{v}.seed1" for v in SEEDED)]
    assert [reports[n].seed for n in reports] == [0, 0, 0, 0, 1, 1, 1]


def test_split_folders_are_disjoint_and_inputs_untouched(run: dict) -> None:
    fold = run["out"] / "fold1"
    calib = sorted(p.name for p in (fold / "calib" / "images").iterdir())
    sub = json.loads((fold / "eval" / "annotations.json").read_text(encoding="utf-8"))
    evaluated = sorted(i["file_name"] for i in sub["images"])
    assert len(calib) == NUM_CALIB and len(evaluated) == NUM_EVAL and not set(calib) & set(evaluated)
    bench = json.loads((fold / "bench.json").read_text(encoding="utf-8"))
    assert len(bench["rows"]) == len(NAMES)
    # derived models stay under OUT; the source model and the photos are not touched
    assert sorted(p.name for p in fold.glob("*.onnx")) == sorted(f"toy-pose.{v}.onnx" for v in NAMES)
    assert {p.name: p.stat().st_mtime_ns for p in (run["data"] / "images").iterdir()} == run["before"]


def test_each_fold_interval_is_read_from_the_same_scoring_as_its_bench_table(run: dict) -> None:
    for fold, deltas in zip(run["folds"], run["stats"]["folds"], strict=True):
        rows = {fold["names"][r.model]: r for r in fold["bench"].rows}
        assert list(rows) == list(NAMES)
        for r in rows.values():
            assert r.image_evals.ap() == r.ap  # bench's AP, to the bit
        assert list(deltas) == list(NAMES[1:])
        for v, d in deltas.items():
            assert d.delta == rows[v].ap - rows["float"].ap
            assert d.low <= d.high and d.images == NUM_EVAL and d.resamples == 50
    text = (run["out"] / "real.md").read_text(encoding="utf-8")
    assert text.count(f"ΔAP 95% interval (paired bootstrap over these {NUM_EVAL} photos, 50 resamples)") == 2
    assert "- float: ΔAP 0.0\n" in text  # the mean over folds, like every ΔAP: no "+0.0" / "-0.0"


def test_pooled_ap_scores_every_photo_once(run: dict) -> None:
    from edgepose.bench.accuracy import evaluate, load_val
    from edgepose.defaults import EVAL
    from edgepose.runtime.estimator import PoseEstimator

    pooled = run["stats"]["pooled"]
    assert list(pooled) == list(NAMES)
    folds = [{f["names"][r.model]: r.image_evals for r in f["bench"].rows} for f in run["folds"]]
    first = set(folds[0]["float"].image_ids)
    for v, e in pooled.items():  # every photo once: fold 1's evaluation photos from fold 1, the rest fold 2
        assert len(e.per_image) == NUM_PHOTOS
        assert all(e.per_image[i] is folds[0 if i in first else 1][v].per_image[i] for i in e.per_image)
    # float is the same model in both folds: pooled, it is float scored on all the photos in one run (the
    # toy's AP is 0, so its per-photo detections and matches are compared, not just the AP)
    est = PoseEstimator(run["out"] / "fold1" / "toy-pose.float.onnx", threads=1)
    whole = evaluate(est, load_val(run["data"]), conf=EVAL.conf, iou=EVAL.iou, max_det=EVAL.max_det)
    assert pooled["float"].ap() == whole.metrics.ap
    assert pooled["float"].people == whole.image_evals.people > NUM_EVAL
    for i, e in whole.image_evals.per_image.items():
        p = pooled["float"].per_image[i]
        assert (e is None) == (p is None)
        if e is not None:
            np.testing.assert_array_equal(p["dtScores"], e["dtScores"])
            np.testing.assert_array_equal(p["dtMatches"], e["dtMatches"])
            np.testing.assert_array_equal(p["gtIgnore"], e["gtIgnore"])
    text = (run["out"] / "real.md").read_text(encoding="utf-8")
    assert (
        "## Pooled over both folds (each photo evaluated by the variant calibrated on the other half)" in text
    )
    assert f"{NUM_PHOTOS} photos, {pooled['float'].people} labelled people" in text
    table = text.split("| Variant | AP | ΔAP | 95% interval of ΔAP | OKS→float (mean of folds) |")[1]
    table = table.split("## Repeats")[0]
    rows = [line.strip("| ").split(" | ") for line in table.splitlines()[2:] if line.startswith("| ")]
    assert [r[0] for r in rows] == list(NAMES)
    assert rows[0] == ["float", f"{100 * pooled['float'].ap():.1f}", "0.0", "–", "–"]
    for r, d in zip(rows[1:], run["stats"]["pooled_deltas"].values(), strict=True):
        assert d.low <= d.delta <= d.high or d.low == d.high  # a tiny toy set: the point may sit at an end
        lo, hi = (float(x) for x in r[3].strip("[]").split(", "))
        assert (lo, hi) == (round(100 * d.low, 1), round(100 * d.high, 1))
        assert 0.5 < float(r[4]) <= 1.0
    assert "Interval: paired bootstrap over photos - 50 resamples of the 34 photos" in text


def test_repeats_give_each_seeded_variant_its_mean_and_spread(run: dict) -> None:
    bench_real_report = load_script("bench_real_report")
    summary = bench_real_report.repeat_summary(run["folds"], run["stats"])
    assert list(summary) == list(SEEDED)  # int16 has no seed: quantized once, no spread
    deltas = run["stats"]["pooled_deltas"]
    text = (run["out"] / "real.md").read_text(encoding="utf-8")
    table = text.split("## Repeats: each seeded variant quantized with `--seed 0 … K-1`")[1]
    rows = {
        r[0]: r
        for r in (line.strip("| ").split(" | ") for line in table.splitlines() if line.startswith("| "))
    }
    assert list(rows) == ["Variant", *SEEDED]
    for v in SEEDED:
        e = summary[v]
        assert e["names"] == [v, f"{v}.seed1"]
        assert e["delta"] == [deltas[v].delta, deltas[f"{v}.seed1"].delta]  # pooled over both folds
        for k, fold in enumerate(run["folds"]):
            oks = {fold["names"][r.model]: r.fidelity_oks for r in fold["bench"].rows}
            assert e["oks"][k] == [oks[v], oks[f"{v}.seed1"]]
        lo, hi = min(e["oks"][0]), max(e["oks"][0])
        assert rows[v][1] == "2"
        assert rows[v][3] == f"{sum(e['oks'][0]) / 2:.3f} ({lo:.3f} … {hi:.3f})"
