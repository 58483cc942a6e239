"""Real-model benchmark: a YOLO-pose ONNX + a labelled COCO-keypoints photo folder -> one bench table.

    .venv/bin/python scripts/bench_real.py [--model M.onnx] [--data DIR] [--num-calib 64]
        [--out bench_real_out] [--threads 2] [--runs 30] [--folds 1|2] [--repeats 1] [--resamples 1000]
        [--seed 0]

Defaults: `../shared/real/` beside the checkout when it is there (Ultralytics YOLO11n-pose, 130 COCO
photos); otherwise --model and --data are required. Steps:

1. split the photos by file name: the first --num-calib calibrate, all the others evaluate (disjoint;
   with --folds 2 a second run swaps the roles: the last --num-calib calibrate, the rest evaluate);
2. `edgepose export --from-onnx` (evaluation thresholds baked in);
3. `edgepose quantize`: int16, int8, mixed for 16-bit NPUs (16-bit islands, `--high-precision int16`)
   and mixed for CPUs (float islands, `--high-precision float --latency-aware`), every optimization at
   its default (kept where it measures better); the second mixed run reuses the first one's probe;
   with --repeats K, int8 and both mixed flavours are quantized K times (`quantize --seed 0..K-1`: the
   fitted rounding's patch sample, the only random choice; files NAME.int8.seedS.onnx for S >= 1): one
   quantize run's sample moves YOLO11n-pose's pooled ΔAP by about a point, as much as most changes tried;
4. `edgepose bench` of all the files in ONE run (latency interleaved), fidelity to float included;
5. OUT/real.md: the split (which photos calibrated, which evaluated), the table, each quantization's
   time and notes, and each ΔAP's 95% paired-bootstrap interval over the evaluated photos
   (edgepose.bench.intervals); with --folds 2 also AP and ΔAP pooled over both folds (every photo once,
   scored by the variant calibrated on the other fold's photos) with its interval; with --repeats, each
   variant's mean, lowest and highest ΔAP and OKS→float over its seeds; OUT/fold*/bench.*.

Derived models are written under OUT/ only: a third-party model's licence may forbid committing them.
Accuracy noise: on ~100 people AP moves by about a point between equivalent runs, hence the intervals
(they cover which photos were evaluated, not which ones calibrated); the fidelity columns (no labels
needed) are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench_real_report import report, statistics  # scripts/ is sys.path[0] when this file runs

from edgepose import fsio
from edgepose.bench.intervals import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from edgepose.defaults import BENCH_THREADS
from edgepose.quant.options import HighPrecision
from edgepose.spec import ANNOTATIONS_FILE, Precision

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "real"
DEFAULT_MODEL = SHARED / "yolo11n-pose" / "yolo11n-pose-640.onnx"
DEFAULT_DATA = SHARED / "coco-train2017-subset"
MIN_CALIB = 16  # below this the ranges and the probe images are guesses
MIN_EVAL = 8
# The variants whose bytes depend on `quantize --seed` (their fitted rounding samples calibration patches);
# int16 has no 8-bit stage, so --repeats quantizes it once.
SEEDED = ("int8", "mixed-npu16", "mixed-cpu")


class BenchRealError(Exception):
    """A bad argument or input folder: one line, naming the value and the fix."""


@dataclass(frozen=True)
class Split:
    calib: list[str]  # file names
    evaluate: list[str]
    people: int  # labelled people (non-crowd, with keypoints) in the evaluation images


def read_split(data: Path, num_calib: int, reverse: bool = False) -> tuple[dict, Split]:
    """The COCO JSON of `data` and its split by file name (first `num_calib` calibrate, or the last)."""
    ann = data / ANNOTATIONS_FILE
    if not ann.is_file():
        raise BenchRealError(
            f"--data {data} has no {ANNOTATIONS_FILE}: this benchmark needs a labelled COCO-keypoints folder "
            f"({ANNOTATIONS_FILE} + images/); for unlabelled photos quantize with `edgepose quantize "
            "--calib DIR` and compare with `edgepose bench FLOAT.onnx QUANT.onnx --data DIR` (fidelity to "
            "float, no AP)"
        )
    coco = json.loads(ann.read_text(encoding="utf-8"))
    names = sorted(img["file_name"] for img in coco.get("images", []))
    if num_calib < MIN_CALIB:
        raise BenchRealError(f"--num-calib {num_calib} is too few; use at least {MIN_CALIB} (64 recommended)")
    if len(names) - num_calib < MIN_EVAL:
        raise BenchRealError(
            f"--num-calib {num_calib} leaves {len(names) - num_calib} of {len(names)} photos to evaluate; "
            f"lower --num-calib to <= {len(names) - MIN_EVAL} or add photos"
        )
    calib = names[-num_calib:] if reverse else names[:num_calib]
    chosen = set(calib)
    evaluate = [n for n in names if n not in chosen]
    evaluated = set(evaluate)
    ids = {img["id"] for img in coco["images"] if img["file_name"] in evaluated}
    people = sum(
        1
        for a in coco.get("annotations", [])
        if a.get("image_id") in ids and not a.get("iscrowd") and a.get("num_keypoints", 0) > 0
    )
    if people == 0:
        raise BenchRealError(
            f"the {len(evaluate)} evaluation photos of {data} have no labelled people; add some"
        )
    return coco, Split(calib, evaluate, people)


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # a filesystem without symlinks
        shutil.copy2(src, dst)


def write_split(data: Path, coco: dict, split: Split, work: Path) -> tuple[Path, Path]:
    """work/calib/images/* and work/eval/{annotations.json, images/*} (links to the user's photos)."""
    calib, evaluate = work / "calib", work / "eval"
    for d in (calib, evaluate):
        shutil.rmtree(d, ignore_errors=True)
        (d / "images").mkdir(parents=True)
    for n in split.calib:
        _link(data / "images" / n, calib / "images" / n)
    keep = set(split.evaluate)
    images = [img for img in coco["images"] if img["file_name"] in keep]
    ids = {img["id"] for img in images}
    sub = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    (evaluate / ANNOTATIONS_FILE).write_text(json.dumps(sub), encoding="utf-8")
    for n in split.evaluate:
        _link(data / "images" / n, evaluate / "images" / n)
    return calib, evaluate


# The variants: file suffix, quantize_model keyword arguments, what the row means.
VARIANTS: tuple[tuple[str, dict[str, object], str], ...] = (
    ("int16", {"precision": Precision.INT16}, "every layer 16-bit (emulated on CPU)"),
    ("int8", {"precision": Precision.INT8}, "every layer 8-bit"),
    (
        "mixed-npu16",
        {"precision": Precision.MIXED, "high_precision": HighPrecision.INT16},
        "16-bit islands: for 16-bit NPUs",
    ),
    (
        "mixed-cpu",
        {"precision": Precision.MIXED, "high_precision": HighPrecision.FLOAT, "latency_aware": True},
        "float islands, latency-aware: for CPUs",
    ),
)


def run_fold(model: Path, data: Path, out: Path, args: argparse.Namespace, reverse: bool) -> dict:
    from edgepose.bench.run import run_bench
    from edgepose.defaults import EVAL
    from edgepose.export.importer import import_onnx
    from edgepose.quant.quantize import quantize_model

    coco, split = read_split(data, args.num_calib, reverse)
    out.mkdir(parents=True, exist_ok=True)
    calib_dir, eval_dir = write_split(data, coco, split, out)
    stem = model.stem
    float_path = out / f"{stem}.float.onnx"
    t = time.perf_counter()
    import_onnx(model, float_path, conf=EVAL.conf, iou=EVAL.iou, max_det=EVAL.max_det)
    seconds = {"import": round(time.perf_counter() - t, 1)}
    reports = {}
    names = {float_path.name: Precision.FLOAT.value}  # file -> its row name in real.md
    order = {Precision.FLOAT.value: (-1, 0)}
    for seed in range(args.repeats):  # seed by seed: a seed's second mixed flavour reuses its first's probe
        for k, (suffix, kwargs, _) in enumerate(VARIANTS):
            if seed and suffix not in SEEDED:
                continue
            name = run_name(suffix, seed)
            path = out / f"{stem}.{name}.onnx"
            t = time.perf_counter()
            rep = quantize_model(
                float_path,
                calib_dir,
                path,
                threads=args.threads,
                seed=seed,
                **kwargs,  # type: ignore[arg-type]
            )
            seconds[name] = round(time.perf_counter() - t, 1)
            reports[name] = rep
            names[path.name], order[name] = name, (k, seed)
            print(f"quantized {path.name} in {seconds[name]:.0f} s", file=sys.stderr, flush=True)
    files = sorted(names, key=lambda f: order[names[f]])  # each variant's seeds side by side
    cwd = Path.cwd()
    os.chdir(out)  # table labels: file names, not long paths
    try:
        res = run_bench(files, eval_dir.name, threads=args.threads, runs=args.runs, out_dir=".")
    finally:
        os.chdir(cwd)
    return {"split": split, "seconds": seconds, "reports": reports, "bench": res, "names": names,
            "repeats": args.repeats}  # fmt: skip


def run_name(suffix: str, seed: int) -> str:
    """A quantized file's row name: the variant, and the seed when it is not 0 (`int8.seed2`)."""
    return suffix if seed == 0 else f"{suffix}.seed{seed}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    ap.add_argument("--num-calib", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("bench_real_out"))
    ap.add_argument("--threads", type=int, default=BENCH_THREADS)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--folds", type=int, choices=(1, 2), default=1)
    ap.add_argument("--repeats", type=int, default=1, help="quantize runs per seeded variant (seeds 0..K-1)")
    ap.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help="bootstrap seed")
    args = ap.parse_args(argv)
    try:
        if args.model is None or args.data is None:
            raise BenchRealError(
                f"no --model/--data given and {SHARED} is not there; "
                "pass --model YOLO_POSE.onnx --data COCO_DIR"
            )
        if args.repeats < 1:
            raise BenchRealError(f"--repeats {args.repeats} must be >= 1 (1: one quantize run per variant)")
        if not args.model.is_file():
            raise BenchRealError(f"--model {args.model} does not exist; pass a YOLO-pose .onnx file")
        folds = [run_fold(args.model, args.data, args.out / f"fold{k + 1}", args, reverse=k == 1)
                 for k in range(args.folds)]  # fmt: skip
    except BenchRealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    t = time.perf_counter()
    stats = statistics(folds, args.resamples, args.seed)
    print(f"bootstrap intervals in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    text = report(folds, args.model, args.data, stats)
    fsio.write_text(args.out / "real.md", text)  # atomic: a stopped run leaves no half table
    print(text)
    return 0


if __name__ == "__main__":
    from edgepose.errors import EdgeposeError

    try:
        sys.exit(main())
    except EdgeposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
