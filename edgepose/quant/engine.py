"""The measured stages of `quantize_model`: 8-bit optimizations, the task probe, the mixed search.

One `Engine` per quantize run holds what every stage shares - the float model, its layers, the
calibration ranges, the probe images and the float model's detections on them - so the sensitivity
probe runs once and every mixed flavour, every optimization check and the final report reuse it.
Each `build` is a real onnxruntime.quantization run (plan.quantize_static_args), made once per (model,
plan, ranges) in a run; each `measure` runs the real quantized model on the check images, once per model
(edgepose.quant.fidelity).

Over 300 lines on purpose: the stages are methods of one Engine because they share its measured state
(ranges, probe and check images, the float detections); the numerics live in equalize.py, ranges.py,
rounding.py, biascorr.py, taskprobe.py and taskplan.py.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgepose.quant import biascorr, equalize, ranges, rounding
from edgepose.quant.calib import CalibrationSet
from edgepose.quant.fidelity import DEFAULT_REF_CONF, Fidelity
from edgepose.quant.graph import Layer, body_model, chain_tensors, find_layers, float_nodes
from edgepose.quant.optimize import OptimizationLog, Options, StepRecord, better, choose_prefix
from edgepose.quant.options import HighPrecision, LayerPrecision
from edgepose.quant.plan import PrecisionPlan, merge_for_plan
from edgepose.quant.taskplan import SearchResult, layer_macs, order_layers, search, unfused_by
from edgepose.quant.taskprobe import TaskProbe, pick_probe_images
from edgepose.spec import PoseSpec

Build = Callable[[onnx.ModelProto, PrecisionPlan, Path, str], onnx.ModelProto]  # (model, plan, cache, tag)
Tick = Callable[[str, int, int], None]
NUM_BIAS_IMAGES = 8  # per-channel means settle fast: 8 images x H x W positions per channel
NUM_ROUNDING_IMAGES = 8
PROBE_CANDIDATES = 64  # calibration images the float model looks at to pick the probe images
CHECK_FACTOR = 2  # check images per ranking image


@dataclass
class MixedOutcome:
    plan: PrecisionPlan
    sensitivity: list[float]
    search: SearchResult
    order: list[int]
    macs: list[int]
    seconds_probe: float = 0.0


@dataclass
class Engine:
    model: onnx.ModelProto  # the float end-to-end model (after equalization, when kept)
    spec: PoseSpec
    calib: CalibrationSet
    cache: Path  # onnxruntime calibration cache in use
    tmp: Path
    build_fn: Build
    num_probe_images: int  # quantize.NUM_PROBE_IMAGES unless the caller chooses
    threads: int | None = None
    tick: Tick | None = None
    seed: int = 0  # the fitted rounding's patch sample
    layers: list[Layer] = field(default_factory=list)
    check: TaskProbe | None = None  # measures optimizations and plans
    probe_index: list[int] = field(default_factory=list)  # the check images that rank the layers
    notes: list[str] = field(default_factory=list)
    _count: int = 0
    _built: dict[tuple[str, str, str], onnx.ModelProto] = field(default_factory=dict)
    _measured: dict[int, tuple[onnx.ModelProto, Fidelity]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = find_layers(self.model)
        self.body = body_model(self.model)
        self.tail = {n.name for n in float_nodes(self.model)}

    # --- building and measuring -------------------------------------------------------------------
    def build(
        self, model: onnx.ModelProto, plan: PrecisionPlan, cache: Path | None = None
    ) -> onnx.ModelProto:
        """The quantized model of (model, plan, cache), built once per run: the stages ask for the same one
        again (bias correction starts from the model the step before it measured, the mixed search from the
        kept all-8-bit model, the final quantize from the plan the search measured). quantize_static is
        deterministic, so a second build would give the same bytes. The result is shared: never modified."""
        cache = cache or self.cache
        key = self._key(model, plan, cache)
        if key not in self._built:
            self._count += 1
            self._built[key] = self.build_fn(model, plan, cache, f"e{self._count}")
        return self._built[key]

    def has_built(self, model: onnx.ModelProto, plan: PrecisionPlan, cache: Path | None = None) -> bool:
        """Whether `build` of these would return a model an earlier stage built."""
        return self._key(model, plan, cache or self.cache) in self._built

    @staticmethod
    def _key(model: onnx.ModelProto, plan: PrecisionPlan, cache: Path) -> tuple[str, str, str]:
        return (
            _digest(model.SerializeToString(deterministic=True)),
            _plan_key(plan),
            _digest(cache.read_bytes()),
        )

    def pick_images(self) -> None:
        """Pick the check images (label-free) and record the float model's detections on them.

        The CHECK_FACTOR x num_probe_images calibration images with the most people check every
        optimization and plan; the num_probe_images of them with the most people rank the layers (97 runs
        on YOLO11n-pose, so fewer images there: `mixed` makes that probe).
        """
        n = min(PROBE_CANDIDATES, len(self.calib))
        candidates = self.calib.subset(n)
        want = min(n, CHECK_FACTOR * self.num_probe_images)
        idx, ref = pick_probe_images(self.model, self.spec, candidates, want, self.threads)
        if not any(np.any(r.scores >= DEFAULT_REF_CONF) for r in ref):
            self.notes.append(
                f"warning: the float model finds no person (score >= {DEFAULT_REF_CONF}) in {n} calibration "
                "images, so fidelity cannot be measured and the measured stages compare nothing; calibrate "
                "with photos of people, in the colour order and framing of deployment"
            )
        people = [int(np.sum(r.scores >= DEFAULT_REF_CONF)) for r in ref]
        self.probe_index = sorted(
            sorted(range(len(idx)), key=lambda k: (-people[k], k))[: self.num_probe_images]
        )
        self.check = TaskProbe(
            self.model,
            None,
            self.layers,
            self.spec,
            [candidates[i] for i in idx],
            float_tail=self.tail,
            reference=ref,
            threads=self.threads,
        )

    def measure(self, q: onnx.ModelProto) -> Fidelity:
        """Fidelity to float of a quantized model on the check images (once per model object: a model from
        `build` is measured once however many stages ask)."""
        assert self.check is not None  # pick_images runs first (a bug otherwise, not a user error)
        hit = self._measured.get(id(q))
        if hit is None or hit[0] is not q:
            hit = self._measured[id(q)] = (q, self.check.fidelity_of(q))  # q held: its id stays unique
        return hit[1]

    # --- 8-bit optimizations ----------------------------------------------------------------------
    def optimize_int8(self, options: Options, log: OptimizationLog) -> tuple[onnx.ModelProto, Path, Fidelity]:
        """The float model prepared for 8 bits (ranges, rounding, bias correction as kept), its cache,
        and the fidelity of its all-8-bit model."""
        int8 = PrecisionPlan(LayerPrecision.INT8)
        if self.check is None:
            self.pick_images()
        plain = self.measure(self.build(self.model, int8))
        path: list[tuple[onnx.ModelProto, Path, Fidelity]] = [(self.model, self.cache, plain)]
        steps: list[StepRecord] = []

        def do_ranges(m: onnx.ModelProto, c: Path) -> tuple[onnx.ModelProto, Path, str, list[str]]:
            tight, changes = ranges.tighten(ranges.load_ranges(c), self.model.graph)
            new_cache = self.tmp / "calibration-tight.json"
            ranges.save_ranges(tight, new_cache, like=c)
            widest = max((ch.step_ratio for ch in changes), default=1.0)
            detail = (
                f"{len(changes)} Sigmoid/SiLU inputs clipped at -{ranges.SATURATION:g} "
                f"(8-bit step up to {widest:.1f}x finer)"
            )
            readers = _layer_readers(self.layers, self.model.graph, self.tail, {c.tensor for c in changes})
            return m, new_cache, detail, readers

        def do_rounding(m: onnx.ModelProto, c: Path) -> tuple[onnx.ModelProto, Path, str, list[str]]:
            images = self.calib.subset(NUM_ROUNDING_IMAGES)
            q = self.build(m, int8, c)  # the model the stage before measured: built already
            body = body_model(m)
            stats = rounding.input_moments(q, body, self.layers, images, self.threads, seed=self.seed)
            fitted, rep = rounding.fit_rounding(m, self.layers, stats)
            detail = (
                f"{len(rep.layers)} conv layers fitted to their 8-bit inputs (patch sample seed "
                f"{self.seed}), output error vs float -{100 * rep.gain:.0f}%"
            )
            return fitted, c, detail, sorted(rep.layers)

        def do_biascorr(m: onnx.ModelProto, c: Path) -> tuple[onnx.ModelProto, Path, str, list[str]]:
            q = self.build(m, int8, c)
            images = self.calib.subset(NUM_BIAS_IMAGES)
            err = biascorr.local_errors(q, self.body, self.layers, images, self.threads)
            fixed, bc = biascorr.apply_bias_correction(m, self.layers, err)
            return (
                fixed,
                c,
                f"{len(bc.errors)} layers, mean |channel shift| {bc.mean_abs:.4f}",
                sorted(bc.errors),
            )

        stages = [
            (n, f)
            for n, f in (("ranges", do_ranges), ("rounding", do_rounding), ("biascorr", do_biascorr))
            if options.wanted(n) is not False
        ]
        for name, fn in stages:  # each on top of the previous: the stages interact (optimize.choose_prefix)
            if self.tick:
                self.tick(f"optimize {name}", 0, 1)
            t = time.perf_counter()
            m, c, _ = path[-1]
            m2, c2, detail, changed = fn(m, c)
            fid = self.measure(self.build(m2, int8, c2))
            steps.append(
                StepRecord(name, False, path[-1][2].drop, fid.drop, time.perf_counter() - t, detail, changed)
            )
            path.append((m2, c2, fid))
            if self.tick:
                self.tick(f"optimize {name}", 1, 1)
        k = choose_prefix([p[2].drop for p in path], [options.wanted(n) is True for n, _ in stages])
        for i, step in enumerate(steps):
            step.kept = i < k
        log.steps.extend(steps)
        m8, cache8, fid = path[k]
        return m8, cache8, fid

    # --- mixed precision ----------------------------------------------------------------------------
    def mixed(
        self,
        m8: onnx.ModelProto,
        cache8: Path,
        high: HighPrecision,
        *,
        budget: float | None,
        max_drop: float | None,
        latency_aware: bool,
        all8: Fidelity,
        sensitivity: list[float] | None = None,
    ) -> MixedOutcome:
        """Rank (unless `sensitivity` is given: the probe runs once per quantize run) and search a plan."""
        t = time.perf_counter()
        if sensitivity is None:
            q8 = self.build(m8, PrecisionPlan(LayerPrecision.INT8), cache8)  # built by optimize_int8
            assert self.check is not None
            probe = TaskProbe(  # on this engine's model: the check's may be the equalized one
                self.model,
                q8,
                self.layers,
                self.spec,
                [self.check.images[k] for k in self.probe_index],
                float_tail=self.tail,
                reference=[self.check.reference[k] for k in self.probe_index],
                threads=self.threads,
            )
            sensitivity = probe.rank((lambda d, n: self.tick("sensitivity", d, n)) if self.tick else None)
        seconds_probe = time.perf_counter() - t
        macs = layer_macs(self.model, self.layers)
        unfused = unfused_by(self.layers, self.model.graph, self.tail)
        order = order_layers(sensitivity, macs, unfused, latency_aware)

        def measure(chosen: list[int]) -> Fidelity:
            plan = self.plan_for(chosen, high)
            return self.measure(self.build(merge_for_plan(self.model, m8, plan, self.layers), plan, cache8))

        result = search(
            order,
            sensitivity,
            measure,
            all8=all8,
            macs=macs,
            unfused=unfused,
            budget=budget,
            max_drop=max_drop,
            progress=(lambda d, n: self.tick("mixed search", d, n)) if self.tick else None,
        )
        if self.tick:  # the search's length is known only now: close its bar
            self.tick("mixed search", len(result.trials), len(result.trials))
        plan = self.plan_for(result.chosen, high)
        return MixedOutcome(plan, sensitivity, result, order, macs, seconds_probe)

    def plan_for(self, chosen: Sequence[int], high: HighPrecision) -> PrecisionPlan:
        names = {self.layers[i].name for i in chosen}
        return PrecisionPlan(
            LayerPrecision.INT8,
            {la.name: high.layer_precision for la in self.layers if la.name in names},  # graph order
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plan_key(plan: PrecisionPlan) -> str:
    return plan.default.value + ";" + ",".join(f"{n}={p.value}" for n, p in sorted(plan.layers.items()))


def equalized(model: onnx.ModelProto, wanted: bool | None) -> tuple[onnx.ModelProto, int]:
    """The model with its Conv -> ReLU -> Conv pairs equalized (and how many), unless `wanted` is False."""
    if wanted is False:
        return model, 0
    out, pairs = equalize.equalize(model)
    return (out, len(pairs)) if pairs else (model, 0)


def _layer_readers(
    layers: Sequence[Layer], graph: onnx.GraphProto, tail: set[str], tensors: set[str]
) -> list[str]:
    """Layers whose input chain holds any of `tensors` (for the per-layer report)."""
    return sorted(la.name for la in layers if tensors & set(chain_tensors([la], graph, tail)))


def keep_equalization(
    original: onnx.ModelProto,
    engine: Engine,
    pairs: int,
    log: OptimizationLog,
    calibrate: Callable[[onnx.ModelProto], Path],
    wanted: bool | None,
) -> Engine:
    """Measure the equalized model's plain int8 against the original's; the engine of the one kept."""
    t = time.perf_counter()
    int8 = PrecisionPlan(LayerPrecision.INT8)
    engine.pick_images()
    after = engine.measure(engine.build(engine.model, int8))
    if wanted is True:
        log.steps.append(
            StepRecord(
                "equalize", True, None, after.drop, time.perf_counter() - t, f"{pairs} Conv-ReLU-Conv pairs"
            )
        )
        return engine
    plain = Engine(
        original,
        engine.spec,
        engine.calib,
        calibrate(original),
        engine.tmp,
        engine.build_fn,
        num_probe_images=engine.num_probe_images,
        threads=engine.threads,
        tick=engine.tick,
    )
    plain.check, plain.probe_index = engine.check, engine.probe_index
    before = plain.measure(plain.build(original, int8))
    keep = better(after.drop, before.drop)
    layer_names = {la.name for la in engine.layers}
    names = [n.name for n in engine.model.graph.node if n.name in layer_names]
    log.steps.append(
        StepRecord(
            "equalize",
            keep,
            before.drop,
            after.drop,
            time.perf_counter() - t,
            f"{pairs} Conv-ReLU-Conv pairs",
            names if keep else [],
        )
    )
    return engine if keep else plain


def final_bias_pass(
    engine: Engine,
    q: onnx.ModelProto,
    prepared: onnx.ModelProto,
    plan: PrecisionPlan,
    cache: Path,
    log: OptimizationLog,
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Bias correction measured again on the final mixed model (its 16-bit/float layers change what the
    8-bit ones see); kept if it measures better."""
    t = time.perf_counter()
    before = engine.measure(q)
    err = biascorr.local_errors(
        q, engine.body, engine.layers, engine.calib.subset(NUM_BIAS_IMAGES), engine.threads
    )
    fixed, bc = biascorr.apply_bias_correction(prepared, engine.layers, err)
    q2 = engine.build(fixed, plan, cache)
    after = engine.measure(q2)
    keep = better(after.drop, before.drop)
    log.steps.append(
        StepRecord(
            "biascorr (final plan)",
            keep,
            before.drop,
            after.drop,
            time.perf_counter() - t,
            f"{len(bc.errors)} layers",
            sorted(bc.errors) if keep else [],
        )
    )
    return (q2, fixed) if keep else (q, prepared)
