"""Bench pieces without models: variants, cache keys, the ONNX reader, kernel counts, rows, latency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepose.bench.cache import BenchCache, make_key
from edgepose.bench.inputs import unique_labels
from edgepose.bench.kernels import KernelCounts, KernelMode, count_kernels, count_layers, read_nodes
from edgepose.bench.latency import measure_latencies, measure_latency
from edgepose.bench.result import COLUMNS, ROW_KEYS, fill_delta_ap
from edgepose.bench.run import layers_16bit_pct
from edgepose.bench.variants import MIXED_LABELS, parse_variants, variant_label
from edgepose.errors import ConfigError
from edgepose.quant.options import HighPrecision
from edgepose.runtime.timing import Timings
from edgepose.spec import QUANT_METHOD_KEY, QUANT_PLAN_KEY, TAIL_PREFIX, PoseSpec, Precision
from tests.helpers.bench_rows import bench_row


# --- variants -----------------------------------------------------------------------------------------
def test_variants_parse_in_report_order_without_repeats() -> None:
    assert parse_variants(" MIXED,int8, float,int8 ") == (Precision.FLOAT, Precision.INT8, Precision.MIXED)


@pytest.mark.parametrize(("text", "hint"), [("int4", "int8"), ("mxed", "mixed"), ("flaot", "float")])
def test_unknown_variant_names_the_choices_and_the_close_one(text: str, hint: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_variants(f"float,{text}")
    assert str(exc.value) == (
        f"unknown variant '{text}'; choose from float, int16, int8, mixed; did you mean '{hint}'?"
    )


def test_far_off_variant_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"^unknown variant 'xyz'; choose from float, int16, int8, mixed$"):
        parse_variants("xyz")


# --- cache ------------------------------------------------------------------------------------------------
def test_cache_key_changes_with_options_and_calibration_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    base = make_key({"precision": "int8"}, [a, b])
    assert make_key({"precision": "int8"}, [a, b]) == base
    assert make_key({"precision": "int16"}, [a, b]) != base
    assert make_key({"precision": "int8"}, [a]) != base
    b.write_bytes(b"3")
    assert make_key({"precision": "int8"}, [a, b]) != base


def test_cache_key_changes_with_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout whose exporter or quantizer changed (same version string) makes new files."""
    from edgepose.bench import cache as cache_mod

    pkg = tmp_path / "pkg"
    (pkg / "quant").mkdir(parents=True)
    (pkg / "quant" / "engine.py").write_text("A = 1\n")
    (pkg / "notes.txt").write_text("not code")
    before = cache_mod.code_digest(pkg)
    (pkg / "notes.txt").write_text("still not code")
    cache_mod.code_digest.cache_clear()
    assert cache_mod.code_digest(pkg) == before
    (pkg / "quant" / "engine.py").write_text("A = 2\n")
    cache_mod.code_digest.cache_clear()
    changed = cache_mod.code_digest(pkg)
    assert changed != before
    cache_mod.code_digest.cache_clear()
    key = make_key({"precision": "int8"})
    monkeypatch.setattr(cache_mod, "code_digest", lambda: changed)
    assert make_key({"precision": "int8"}) != key


def test_cache_makes_a_file_once(tmp_path: Path) -> None:
    cache = BenchCache(tmp_path / "c")
    calls: list[Path] = []

    def make(p: Path) -> None:
        calls.append(p)
        p.write_bytes(b"model")

    p1, cached1 = cache.get_or_make("m/int8 x", "ab" * 32, make)
    p2, cached2 = cache.get_or_make("m/int8 x", "ab" * 32, make)
    assert (cached1, cached2) == (False, True) and p1 == p2 and calls == [p1]
    assert p1.name == "m_int8_x-abababababababab.onnx"
    assert cache.made == [p1] and cache.reused == [p1]


# --- the ONNX reader and kernel counts -------------------------------------------------------------------
def _qdq_graph(path: Path) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(w from DQ) [emulated]; QLinearConv [fused]; Conv(float w) on the DQ output
    [float island]; plain Conv [float]; tail Conv."""
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    wq = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.int8), "wq")
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.uint8), "z")
    zw = numpy_helper.from_array(np.array(0, np.int8), "zw")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q0"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq0"),
        helper.make_node("DequantizeLinear", ["wq", "s", "zw"], ["wd"], name="dqw"),
        helper.make_node("Conv", ["xd", "wd"], ["y1"], name="emulated_conv"),
        helper.make_node("Conv", ["xd", "w"], ["y0"], name="float_island"),
        helper.make_node("QLinearConv", ["xq", "s", "z", "wq", "s", "zw", "s", "z"], ["y2q"], name="fused"),
        helper.make_node("Conv", ["y1", "w"], ["y3"], name="float_conv"),
        helper.make_node("Conv", ["y3", "w"], ["y4"], name=TAIL_PREFIX + "conv"),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y4", f, None),
         helper.make_tensor_value_info("y2q", TensorProto.UINT8, None),
         helper.make_tensor_value_info("y0", f, None)],
        initializer=[w, wq, s, z, zw],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return model


def test_reader_matches_onnx_load(tmp_path: Path) -> None:
    model = _qdq_graph(tmp_path / "g.onnx")
    nodes = read_nodes(tmp_path / "g.onnx")
    expected = [(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node]
    assert [(n.name, n.op_type, n.inputs, n.outputs) for n in nodes] == expected


def test_kernels_are_classified_and_the_tail_is_ignored(tmp_path: Path) -> None:
    _qdq_graph(tmp_path / "g.onnx")
    nodes = read_nodes(tmp_path / "g.onnx")
    counts = count_kernels(nodes)
    assert counts == KernelCounts(fused_int=1, emulated=1, float_layers=2)
    assert counts.mode is KernelMode.PARTLY_FUSED and counts.describe() == "1 fused int8, 1 emulated, 2 float"
    assert count_layers(nodes) == 3  # the Conv nodes outside the tail (QLinearConv is not a Conv)
    assert KernelCounts(5, 0, 2).describe() == "5 fused int8, 2 float"
    assert KernelCounts(3, 0, 0).mode is KernelMode.FUSED_INT8
    assert KernelCounts(0, 3, 0).mode is KernelMode.EMULATED
    assert KernelCounts(0, 0, 3).describe() == "float"


def test_16bit_share_from_precision_and_the_mixed_plan(tmp_path: Path) -> None:
    _qdq_graph(tmp_path / "g.onnx")  # 2 layers outside the tail
    p = tmp_path / "g.onnx"
    spec = PoseSpec()
    assert layers_16bit_pct(spec, {}, p) is None
    assert layers_16bit_pct(spec.replace(precision=Precision.INT16), {}, p) == 100.0
    assert layers_16bit_pct(spec.replace(precision=Precision.INT8), {}, p) == 0.0
    mixed = spec.replace(precision=Precision.MIXED)
    props = {
        QUANT_PLAN_KEY: json.dumps(["emulated_conv"]),
        QUANT_METHOD_KEY: json.dumps({"high_precision": "int16"}),
    }
    assert layers_16bit_pct(mixed, props, p) == pytest.approx(100.0 / 3)  # 1 of the 3 layers
    props[QUANT_METHOD_KEY] = json.dumps({"high_precision": "float"})
    assert layers_16bit_pct(mixed, props, p) == 0.0


# --- rows, ΔAP, latency ----------------------------------------------------------------------------------
def test_delta_ap_against_the_float_row_of_the_same_lineage_not_the_same_name() -> None:
    # Two float models with the same spec name and size (the old grouping key), listed in an order where
    # the first float is not the int8 file's source: ΔAP follows the recorded lineage.
    rows = [
        bench_row("n/best", Precision.FLOAT, 0.011, "sha-a"),
        bench_row("edgepose-n", Precision.FLOAT, 0.6123, "sha-b"),
        bench_row("edgepose-n.int8", Precision.INT8, 0.5523, "sha-b"),
        bench_row("other.int8", Precision.INT8, 0.5, "sha-c"),  # its float is not among the rows
        bench_row("old.int8", Precision.INT8, 0.5, ""),  # quantized before the lineage was recorded
    ]
    fill_delta_ap(rows)
    assert [r.delta_ap for r in rows[:2]] == [0.0, 0.0]
    assert rows[2].delta_ap == pytest.approx(-0.06, abs=1e-12) and rows[2].delta_ap_vs == "edgepose-n"
    assert rows[3].delta_ap is None and rows[4].delta_ap is None
    cells = [dict(zip(COLUMNS, r.cells(), strict=True)) for r in rows]
    assert [c["ΔAP"] for c in cells] == ["0.0", "0.0", "-6.0", "n/a", "n/a"]
    assert [c["ΔAP vs"] for c in cells] == ["n/best", "edgepose-n", "edgepose-n", "n/a", "n/a"]
    assert cells[1]["AP"] == "61.2" and cells[1]["Size MB"] == "2.00" and cells[1]["16-bit %"] == "–"
    assert list(rows[2].to_dict()) == list(ROW_KEYS)
    assert rows[2].to_dict()["delta_ap_vs"] == "edgepose-n" and rows[2].to_dict()["lineage"] == "sha-b"


def test_labels_tell_every_input_apart() -> None:
    paths = [Path("runs/n/best.pt"), Path("runs/m/best.pt"), Path("models/edgepose-n.pt"),
             Path("edgepose-n.int8.onnx"), Path("a/best.onnx"), Path("a/best.pt")]  # fmt: skip
    assert unique_labels(paths) == [
        "n/best",
        "m/best",
        "edgepose-n",
        "edgepose-n.int8",
        "a/best.onnx",
        "a/best.pt",
    ]
    assert unique_labels([Path("x/edgepose-n.pt")]) == ["edgepose-n"]


def test_mixed_flavours_are_labelled_from_the_recorded_high_precision() -> None:
    method = lambda hp: {QUANT_METHOD_KEY: json.dumps({"high_precision": hp})}  # noqa: E731
    assert variant_label(Precision.MIXED, method("int16")) == "mixed-npu16"
    assert variant_label(Precision.MIXED, method("float")) == "mixed-cpu"
    assert variant_label(Precision.MIXED, {}) == "mixed-npu16"  # files from before it was recorded
    assert variant_label(Precision.INT8, method(None)) == "int8"
    assert set(MIXED_LABELS) == set(HighPrecision)  # every flavour has its one name


class _FakeEstimator:
    """Returns scripted timings: total ms per call = 1, 2, ..., so percentiles are known exactly."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray, **kwargs: object) -> object:
        self.calls += 1
        t = Timings(0.5, float(self.calls) - 1.0, 0.5)  # total = calls

        class _R:
            timings = t

        return _R()


def test_latency_percentiles_fps_and_split_after_warmup() -> None:
    est = _FakeEstimator()
    lat = measure_latency(est, np.zeros((4, 4, 3), np.uint8), runs=10, warmup=2)  # type: ignore[arg-type]
    assert est.calls == 12
    totals = np.arange(3, 13, dtype=float)  # warm-up calls 1, 2 are not timed
    assert lat.p50_ms == pytest.approx(np.percentile(totals, 50))
    assert lat.p90_ms == pytest.approx(np.percentile(totals, 90))
    assert lat.fps == pytest.approx(1000.0 / lat.p50_ms, abs=1e-9)
    assert (lat.preprocess_ms, lat.postprocess_ms) == (0.5, 0.5)
    assert lat.inference_ms == pytest.approx(np.median(totals - 1.0))
    with pytest.raises(ConfigError, match="--runs must be >= 1, got 0"):
        measure_latency(est, np.zeros((4, 4, 3), np.uint8), runs=0)  # type: ignore[arg-type]


def test_latencies_of_several_models_are_timed_in_rotating_interleaved_rounds() -> None:
    calls: list[str] = []

    class _Named:
        def __init__(self, name: str, ms: float) -> None:
            self.name, self.ms = name, ms

        def __call__(self, image: np.ndarray, **kwargs: object) -> object:
            calls.append(self.name)
            t = Timings(0.0, self.ms + len(calls) * 1e-3, 0.0)  # slowly "warming" clock shared by both

            class _R:
                timings = t

            return _R()

    a, b = _Named("a", 2.0), _Named("b", 5.0)
    lats = measure_latencies([a, b], np.zeros((4, 4, 3), np.uint8), runs=7, warmup=1)  # type: ignore[list-item]
    # 1 warm-up each; round 1: a (switch-in + 5 timed), b (same); round 2 starts with b: 2 timed each
    assert calls == ["a", "b"] + ["a"] * 6 + ["b"] * 6 + ["b"] * 3 + ["a"] * 3
    assert [lat.runs for lat in lats] == [7, 7]
    a_timed = [4, 5, 6, 7, 8, 19, 20]  # call numbers (the fake clock) of a's timed calls
    b_timed = [10, 11, 12, 13, 14, 16, 17]
    assert lats[0].p50_ms == pytest.approx(2.0 + np.median(a_timed) * 1e-3)
    assert lats[1].p50_ms == pytest.approx(5.0 + np.median(b_timed) * 1e-3)
    with pytest.raises(ConfigError, match="--runs must be >= 1, got 0"):
        measure_latencies([a, b], np.zeros((4, 4, 3), np.uint8), runs=0)  # type: ignore[list-item]


# --- streamed COCO scoring ---------------------------------------------------------------------------------
def test_streamed_scoring_equals_one_pycocotools_call(synth_dataset: Path) -> None:
    from edgepose.bench.cocostream import StreamingKeypointEval
    from edgepose.cocofmt import detections_to_coco
    from edgepose.data.coco import dataset_to_coco_dict, read_coco
    from edgepose.data.coco_eval import evaluate_keypoints

    ds = read_coco(synth_dataset / "annotations.json")  # 12 images, 128 px
    rng = np.random.default_rng(100)
    per_image = []
    for rec in ds.records[::-1]:  # any order: chunks are not sorted by image id
        n = rec.num_people
        kpts = rec.keypoints.copy()  # (N, K, 3)
        kpts[..., :2] += rng.normal(0, 2.0, (n, kpts.shape[1], 2))
        kpts[..., 2] = rng.uniform(0.2, 1.0, (n, kpts.shape[1]))
        fake = rng.uniform(0, 128, (2, kpts.shape[1], 3))  # (2, K, 3) false positives
        boxes = np.concatenate([rec.boxes, np.tile([[10.0, 10.0, 60.0, 90.0]], (2, 1))])  # (N + 2, 4)
        scores = rng.uniform(0.01, 1.0, n + 2)
        per_image.append((rec, detections_to_coco(rec.image_id, boxes, scores, np.concatenate([kpts, fake]))))
    per_image[3] = (per_image[3][0], [])  # an image without detections
    expected = evaluate_keypoints(dataset_to_coco_dict(ds), [d for _, dets in per_image for d in dets])
    assert 0.05 < expected.ap < 0.95  # a non-trivial score, so equality means something
    for chunk in (1, 5, 12, 100):
        scorer = StreamingKeypointEval(ds, chunk_images=chunk)
        for rec, dets in per_image:
            scorer.add(rec, dets)
        assert scorer.metrics() == expected, chunk
    empty = StreamingKeypointEval(ds, chunk_images=5)
    for rec in ds.records:
        empty.add(rec, [])
    assert empty.metrics().as_dict() == dict.fromkeys(expected.as_dict(), 0.0)


def test_quant_metadata_keys_are_the_file_format() -> None:
    # Files quantized by any earlier version carry these keys: renaming them breaks bench on old files.
    assert QUANT_PLAN_KEY == "edgepose.quant_plan" and QUANT_METHOD_KEY == "edgepose.quant_method"


def test_plot_starts_its_ap_axis_at_zero_draws_the_float_line_and_one_legend_entry_per_model() -> None:
    """Issue 17.14: the demo's APs 13.9-14.2 once filled a 13.90-14.25 axis (noise looked huge)."""
    import matplotlib.pyplot as plt

    from edgepose.bench.report import ap_axis, figure
    from edgepose.bench.result import BenchResult

    rows = [
        bench_row("edgepose-n", p, ap, "sha-n")
        for p, ap in (
            (Precision.FLOAT, 0.142),
            (Precision.INT16, 0.1419),
            (Precision.INT8, 0.139),
            (Precision.MIXED, 0.1421),
        )
    ]
    rows += [
        bench_row("runs/best", Precision.FLOAT, 0.30, "sha-b"),
        bench_row("best.int8", Precision.INT8, 0.29, "sha-b"),
    ]
    rows[3].variant_label = "mixed-cpu"
    fill_delta_ap(rows)
    fig = figure(BenchResult(rows, {"threads": 2}))
    try:
        ax = fig.axes[0]
        assert ax.get_ylim() == (0.0, 40.0)  # 0 to the next ten above 30 + 5
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["edgepose-n", "runs/best"]
        dashed = sorted(
            round(line.get_ydata()[0], 6) for line in ax.get_lines() if line.get_linestyle() == "--"
        )
        assert dashed == [14.2, 30.0]  # each model's float AP
        assert {t.get_text() for t in ax.texts} == {"float", "int16", "int8", "mixed-cpu"}
    finally:
        plt.close(fig)
    assert (
        ap_axis([14.2, 13.9]) == (0.0, 20.0)
        and ap_axis([]) == (0.0, 10.0)
        and ap_axis([97.0]) == (0.0, 100.0)
    )
