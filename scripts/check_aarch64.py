"""Prove the board path on aarch64: the runtime's tests, `edgepose predict` and `edgepose bench` run under
emulation and give the same detections as x86-64 from the same ONNX files.

    .venv/bin/python scripts/check_aarch64.py [--weights models/edgepose-n.pt | --float F.onnx --int8 Q.onnx]
                                              [--work DIR] [--aarch64-python PATH]

Steps (subprocesses; output streams under a header per step): synthetic images (seed 300) -> export
float -> quantize 8-bit -> predict on x86-64 -> runtime tests on aarch64 (started early, in the
background) -> predict on aarch64 -> compare -> bench on aarch64. Exit 0 when float agrees within
0.01 px (scores 1e-4) and every detection count matches; exit 1 with a one-line reason otherwise.
8-bit differences are reported, not failed: they are expected to be bit-identical and the summary
says whether they are.

Both sides predict through `predict-here`: the real `edgepose predict` command, called in-process
(the emulated side imports numpy/cv2/onnxruntime once for both models) with torch and onnx made
unimportable, and a tap on the pipeline's events that keeps every result at full float32 precision:
predictions.json rounds boxes to 0.01 px, i.e. to the tolerance itself. `bench-here` runs
`edgepose bench` the same way. This file imports only the standard library at the top, since those
two run on the emulated side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from aarch64_compare import (  # scripts/ is sys.path[0] when this file runs
    FLOAT_TOL_PX,
    FLOAT_TOL_SCORE,
    VariantDiff,
    compare_detections,
    load_coco,
    load_raw,
    tolerance_failures,
)

from edgepose.spec import IMAGE_SUFFIXES

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TOOL = REPO.parent / "shared" / "tools" / "aarch64-python"  # where CI has it
# The emulated site: the base install's packages plus the test tools, at the dev lock's versions (so the
# board side runs what x86-64 runs). Each distinct set builds its own ~220 MB site folder (about 20 s).
PIP_BASE = ("numpy", "onnxruntime", "opencv-python-headless")
PIP_EXTRA = ("pycocotools", "typer", "rich", "matplotlib", "onnx", "pytest", "hypothesis")


def locked(names: tuple[str, ...]) -> str:
    """`name==version` for each name, from requirements/dev.lock."""
    sys.path.insert(0, str(REPO / "scripts"))
    from check_env import read_lock

    pins = read_lock(REPO / "requirements" / "dev.lock")
    return " ".join(f"{n}=={pins[n]}" for n in names)


RUNTIME_TESTS = (
    "tests/unit/test_letterbox.py",
    "tests/unit/test_runtime_draw.py",
    "tests/unit/test_runtime_estimator.py",
    "tests/unit/test_runtime_session.py",
    "tests/unit/test_torch_free.py",
    "tests/unit/test_cli_predict.py",
)
BLOCKED = ("torch", "onnx", "onnxslim", "onnxsim")  # a board's runtime path needs none of them
VAL_SEED, CALIB_SEED = 300, 3
VARIANTS = ("float", "int8")


class CheckFailed(Exception):
    """One line saying why the check failed."""


# ------------------------------------------------------------------ guest side (also under emulation)


def _block_imports() -> None:
    import importlib.abc

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name}: not needed on a board; blocked by check_aarch64.py")

    sys.meta_path.insert(0, Blocker())


def environment() -> dict[str, str]:
    """Machine and the runtime's library versions, as this interpreter sees them."""
    import cv2
    import numpy
    import onnxruntime

    env = {"machine": platform.machine(), "python": platform.python_version(), "numpy": numpy.__version__}
    env.update(onnxruntime=onnxruntime.__version__, opencv=cv2.__version__)
    print(f"platform.machine() = {env['machine']!r}; " + ", ".join(f"{k} {v}" for k, v in env.items()))
    return env


def _edgepose(args: Sequence[str]) -> None:
    """`edgepose ARGS` in this process; then fail if torch or onnx got imported on the way."""
    from edgepose.cli import app

    print(f"edgepose {' '.join(args)}", flush=True)
    rc = app(list(args), standalone_mode=False)
    if rc:
        raise SystemExit(rc)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
    if loaded:
        raise SystemExit(f"error: `edgepose {args[0]}` imported {loaded}, which a board does not need")


def predict_here(models: Sequence[str], images: Path, out: Path, extra: Sequence[str]) -> None:
    """`edgepose predict --save-json` of each NAME=MODEL into out/NAME, plus out/NAME/raw.json (full
    precision) and out/env.json, with torch and onnx unimportable."""
    _block_imports()
    env = environment()
    from edgepose.runtime import pipeline

    run_predict, results = pipeline.run_predict, []

    def tapped(*args: object, **kwargs: object) -> Iterator[object]:
        for event in run_predict(*args, **kwargs):  # type: ignore[arg-type]
            if isinstance(event, pipeline.FrameDone):
                results.append((str(event.source.path), event.result))
            yield event

    pipeline.run_predict = tapped  # the command imports it from the module when it runs
    for item in models:
        name, model = item.split("=", 1)
        results.clear()
        _edgepose(["predict", model, str(images), "--out", str(out / name), "--save-json", *extra])
        if not results:  # every image is a FrameDone, with or without people
            raise SystemExit("error: the tap on edgepose.runtime.pipeline.run_predict saw no images")
        raw = {path: [[d.box.tolist(), d.score, d.keypoints.reshape(-1).tolist()] for d in r]
               for path, r in results}  # fmt: skip  # float32 -> float: exact
        (out / name / "raw.json").write_text(json.dumps(raw), encoding="utf-8")
    (out / "env.json").write_text(json.dumps(env), encoding="utf-8")


def bench_here(args: Sequence[str]) -> None:
    """`edgepose bench ARGS` with torch and onnx unimportable, and one warm-up run when it has --warmup
    (emulation is 100-400x slower; the default five warm-ups would be most of this step)."""
    import inspect

    _block_imports()
    environment()
    from edgepose.cli.bench import bench

    warmup = ["--warmup", "1"] if "warmup" in inspect.signature(bench).parameters else []
    _edgepose(["bench", *args, *warmup])


# ------------------------------------------------------------------ orchestration (x86-64 host)


def children_cpu() -> float:
    """User + system seconds of the subprocesses that have finished."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Steps:
    """Numbered steps; each subprocess streams its output and fails the check with its last line."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.background: list[subprocess.Popen] = []

    def header(self, title: str) -> None:
        self.n += 1
        # CPU time of finished subprocesses too: on a shared machine wall time says more about the neighbours
        clock = f"t={time.perf_counter() - self.t0:.0f} s, subprocess CPU {children_cpu():.0f} s"
        print(f"\n=== [{self.n}/{self.total}] {title}  ({clock})", flush=True)

    @staticmethod
    def _popen(cmd: Sequence[object], env: Mapping[str, str] | None, stdout: object) -> subprocess.Popen:
        print("$ " + " ".join(map(str, cmd)).replace(str(REPO) + "/", ""), flush=True)
        return subprocess.Popen(
            [str(c) for c in cmd], cwd=REPO, env={**os.environ, "COLUMNS": "160", **(env or {})},
            stdout=stdout, stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip

    @staticmethod
    def _finish(what: str, proc: subprocess.Popen, lines: Sequence[str]) -> str:
        if proc.wait() != 0:
            last = next((t.strip() for t in reversed(lines) if t.strip()), "no output")
            raise CheckFailed(f"{what} failed (exit {proc.returncode}): {last}")
        return "".join(lines)

    def run(
        self, what: str, cmd: Sequence[object], env: Mapping[str, str] | None = None, tables: bool = True
    ) -> str:
        """Run `cmd`, streaming its output (without rich's boxed tables when not `tables`)."""
        proc = self._popen(cmd, env, subprocess.PIPE)
        tail: deque[str] = deque(maxlen=200)
        for line in proc.stdout:  # type: ignore[union-attr]
            if tables or not ("\u2500" <= line.lstrip()[:1] <= "\u257f"):  # box-drawing characters
                print("  " + line, end="", flush=True)
            tail.append(line)
        return self._finish(what, proc, tail)

    def start(
        self, cmd: Sequence[object], env: Mapping[str, str], log: Path
    ) -> tuple[subprocess.Popen, Path]:
        with log.open("w") as f:
            proc = self._popen(cmd, env, f)
        self.background.append(proc)
        return proc, log

    def join(self, what: str, started: tuple[subprocess.Popen, Path]) -> str:
        proc, log = started
        proc.wait()
        lines = log.read_text(errors="replace").splitlines(keepends=True)
        print("".join("  " + line for line in lines), end="", flush=True)
        return self._finish(what, proc, lines)

    def stop_background(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))


def _g(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}"


def summary(
    envs: Mapping[str, Mapping[str, str]], diffs: Sequence[VariantDiff], tests: str, bench: str
) -> str:
    lines = ["", "=== aarch64 vs x86-64"]
    for side, e in envs.items():
        lines.append(
            f"{side:>8}: platform.machine() {e['machine']}, python {e['python']}, numpy {e['numpy']}, "
            f"onnxruntime {e['onnxruntime']}, opencv {e['opencv']}"
        )
    lines += [
        f"   tests: {tests} (aarch64; torch and onnx absent/blocked in predict and bench)",
        f"   bench: {bench}",
    ]
    for d in diffs:
        rule = f" (limit {FLOAT_TOL_PX} px, {FLOAT_TOL_SCORE:g})" if d.variant == "float" else ""
        same = "yes" if d.identical else "no"
        if d.variant != "float" and not d.identical:
            same += " (unexpected: onnxruntime's reference integer kernels should match across CPUs)"
        lines.append(
            f"{d.variant:>8}: {d.images} images, detections {d.host_dets} x86-64 / {d.arm_dets} aarch64; "
            f"max diff box {_g(d.max_box)} px, keypoints {_g(d.max_kpt)} px, scores {_g(d.max_score)}{rule}; "
            f"bit-identical: {same}"
        )
    return "\n".join(lines)


def _bench_line(path: Path) -> str:
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    return (
        ", ".join(f"{r['variant']} p50 {r['p50_ms']:.0f} ms" for r in rows) + " (emulated: not board speed)"
    )


def check(args: argparse.Namespace, steps: Steps) -> None:
    tool, work = Path(args.aarch64_python), args.work
    if not os.access(tool, os.X_OK):
        raise CheckFailed(f"aarch64-python not found at {tool}; pass --aarch64-python PATH")
    ep = [sys.executable, "-m", "edgepose"]
    arm_env = {"AARCH64_PYTHONPATH": str(REPO), "AARCH64_PIP_BASE": locked(PIP_BASE),
               "AARCH64_PIP_EXTRA": locked(PIP_EXTRA)}  # fmt: skip
    me = Path(__file__).resolve()

    steps.header(f"data: {args.num_images} synthetic images, {args.size} px, seed {VAL_SEED}, in {work}")
    val = work / "val"
    steps.run("synth", [*ep, "data", "synth", "--out", val, "--num-images", args.num_images,
                        "--size", args.size, "--seed", VAL_SEED, "--force"])  # fmt: skip
    tests = None
    if not args.skip_tests:  # emulated and mostly single-threaded: overlap it with export and quantize
        print("aarch64 runtime tests start now in the background; their output is in step 5")
        cmd = [tool, "-m", "pytest", "-q", "-p", "no:cacheprovider", *RUNTIME_TESTS]
        tests = steps.start(cmd, arm_env, work / "aarch64_tests.log")

    steps.header("export the float end-to-end ONNX")
    float_onnx, int8_onnx = args.float, args.int8
    if float_onnx is None:
        if not Path(args.weights).is_file():
            raise CheckFailed(
                f"checkpoint {args.weights} not found; pass --weights FILE or --float MODEL.onnx"
            )
        float_onnx = work / "model.onnx"
        steps.run("export", [*ep, "export", "--weights", args.weights, "--out", float_onnx, "--force"])
    else:
        print(f"using {float_onnx}")

    steps.header("quantize 8-bit")
    if int8_onnx is None:
        calib = Path(args.calib)
        if not _has_images(calib):
            calib = work / "calib"
            n = args.num_calib or 32  # quantize's minimum
            print(f"{args.calib} has no images: synthesizing {n} (seed {CALIB_SEED})")
            synth = ["data", "synth", "--out", calib, "--num-images", n, "--size", args.size]
            steps.run("calibration synth", [*ep, *synth, "--seed", CALIB_SEED, "--force"])
        int8_onnx = work / "model.int8.onnx"
        some = ["--num-calib", args.num_calib] if args.num_calib else []  # default: all, as shipped
        steps.run("quantize", [*ep, "quantize", float_onnx, "--bits", "8", "--calib", calib, *some,
                               "--out", int8_onnx, "--force"], tables=False)  # fmt: skip
    else:
        print(f"using {int8_onnx}")

    models = [f"float={Path(float_onnx).resolve()}", f"int8={Path(int8_onnx).resolve()}"]
    extra = [a for opt, v in (("--conf", args.conf), ("--iou", args.iou)) if v is not None for a in (opt, v)]
    sides = {"x86-64": work / "x86_64", "aarch64": work / "aarch64"}
    for folder in sides.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    predict = ["predict-here", "--images", val / "images"]

    steps.header("x86-64: edgepose predict (float, int8)")
    steps.run(
        "x86-64 predict", [sys.executable, me, *predict, "--out", sides["x86-64"], *models, "--", *extra]
    )

    steps.header("aarch64: the torch-free runtime's tests")
    if tests is None:
        print("skipped (--skip-tests)")
        test_counts = "skipped"
    else:
        out = steps.join("aarch64 runtime tests", tests)
        test_counts = next((ln.strip("= ") for ln in reversed(out.splitlines()) if " passed" in ln), "?")

    steps.header("aarch64: edgepose predict (float, int8), torch and onnx blocked")
    steps.run(
        "aarch64 predict", [tool, me, *predict, "--out", sides["aarch64"], *models, "--", *extra], arm_env
    )

    steps.header("compare aarch64 with x86-64")
    envs = {side: json.loads((folder / "env.json").read_text()) for side, folder in sides.items()}
    if envs["aarch64"]["machine"] != "aarch64":
        raise CheckFailed(f"the emulated side reports platform.machine() = {envs['aarch64']['machine']!r}")
    diffs, failures = [], []
    for name in VARIANTS:
        d = compare_detections(name, *(load_raw(folder / name / "raw.json") for folder in sides.values()))
        coco = compare_detections(name, *(load_coco(folder / name) for folder in sides.values()))
        d.mismatches += [f"predictions.json: {m}" for m in coco.mismatches]
        diff = f"box {_g(d.max_box)} px, keypoints {_g(d.max_kpt)} px, scores {_g(d.max_score)}"
        print(
            f"{name}: {d.host_dets} vs {d.arm_dets} detections; max diff {diff}; bit-identical: {d.identical}"
        )
        failures += tolerance_failures(d, FLOAT_TOL_PX, FLOAT_TOL_SCORE) if name == "float" else d.mismatches
        diffs.append(d)

    if diffs[0].host_dets == 0:
        failures.append(f"float found nobody in {diffs[0].images} images: nothing to compare; lower --conf")
    bench = "not run (see the failure below)"
    if not failures:
        steps.header(
            f"aarch64: edgepose bench (float, int8) on {args.bench_images} images, --runs {args.runs}"
        )
        print("(its progress and table print when it is done)")
        bench_out = work / "aarch64_bench"
        shutil.rmtree(bench_out, ignore_errors=True)
        files = [m.split("=", 1)[1] for m in models]
        bench_args = [*files, "--data", val, "--num-images", args.bench_images, "--runs", args.runs,
                      "--out", bench_out, "--cache-dir", work / "bench_cache"]  # fmt: skip
        steps.run("aarch64 bench", [tool, me, "bench-here", *bench_args], arm_env)
        bench = _bench_line(bench_out / "bench.json")
    print(summary(envs, diffs, test_counts, bench))
    if failures:
        raise CheckFailed(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Relative paths are from the current folder; the defaults are in the repository.
    ap.add_argument("--weights", type=Path, default=REPO / "models/edgepose-n.pt", help="checkpoint")
    ap.add_argument("--float", type=Path, help="use this float end-to-end ONNX instead of exporting")
    ap.add_argument("--int8", type=Path, help="use this 8-bit ONNX instead of quantizing")
    ap.add_argument("--calib", type=Path, default=REPO / "calibration", help="calibration images (--bits 8)")
    ap.add_argument("--num-calib", type=int, help="calibration images used [default: quantize's, all]")
    ap.add_argument("--work", type=Path, help="work folder, kept [default: a temporary one, removed]")
    ap.add_argument("--aarch64-python", default=os.environ.get("AARCH64_PYTHON", str(DEFAULT_TOOL)))
    ap.add_argument("--num-images", type=int, default=4, help="synthetic images to predict [%(default)s]")
    ap.add_argument("--bench-images", type=int, default=2, help="of those, for bench [%(default)s]")
    ap.add_argument("--size", type=int, default=256, help="image size in px [%(default)s]")
    ap.add_argument("--runs", type=int, default=2, help="bench timed runs per model [%(default)s]")
    ap.add_argument("--conf", type=float, help="score threshold for predict [default: the model's]")
    ap.add_argument("--iou", type=float, help="NMS IoU threshold for predict [default: the model's]")
    ap.add_argument("--skip-tests", action="store_true", help="skip the emulated runtime tests")
    args = ap.parse_args(argv)
    for name in ("weights", "float", "int8", "calib", "work"):  # subprocesses run in the repository
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench-here"]:
        bench_here(argv[1:])
        return 0
    if argv[:1] == ["predict-here"]:  # predict-here NAME=MODEL... --images DIR --out DIR -- PREDICT_ARGS
        cut = argv.index("--") if "--" in argv else len(argv)
        ap = argparse.ArgumentParser(prog="check_aarch64.py predict-here")
        ap.add_argument("models", nargs="+", help="NAME=MODEL.onnx")
        ap.add_argument("--images", type=Path, required=True)
        ap.add_argument("--out", type=Path, required=True)
        a = ap.parse_args(argv[1:cut])
        predict_here(a.models, a.images, a.out, argv[cut + 1 :])
        return 0

    args = _parse(argv)
    start, steps, tmp = time.perf_counter(), Steps(total=8), None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="edgepose-aarch64-")
        args.work = Path(tmp.name)
    args.work.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        check(args, steps)
    except CheckFailed as exc:
        print(f"\ncheck_aarch64: FAIL: {exc}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        print("\ncheck_aarch64: interrupted", file=sys.stderr, flush=True)
        code = 130
    finally:
        steps.stop_background()
        if tmp is not None:
            tmp.cleanup()
    print(
        f"check_aarch64: {'PASS' if code == 0 else 'FAIL'} in {time.perf_counter() - start:.0f} s wall "
        f"({children_cpu():.0f} s CPU in subprocesses)",
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
