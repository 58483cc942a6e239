"""Peak memory of `edgepose bench` over a growing val set (issue 8): it must stay flat, images are streamed.

Makes the tiny test model (edgepose-tiny with lively random weights, as tests/fixtures_export.py does,
so that every image yields detections to score), exports it at 128 px, synthesizes one val set of the
largest size (seed 2, 128 px), then runs `edgepose bench MODEL.onnx --num-images N` in a
fresh process per N (a float ONNX: no quantization) and prints each process's peak RSS (VmHWM, Linux).

    .venv/bin/python scripts/bench_memory.py                 # 500 and 5000 images
    .venv/bin/python scripts/bench_memory.py --sizes 50,500  # quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Runs in the child: the bench command in-process, then the process's own peak RSS. VmHWM, not
# getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forking parent (here ~400 MiB of
# torch), while VmHWM belongs to the new address space.
_CHILD = """
import json, sys
from edgepose.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_kb": int(hwm.split()[1])}), file=sys.stderr)
"""


def make_model(work: Path, size: int) -> Path:
    import torch

    sys.path.insert(0, str(ROOT))
    from edgepose.defaults import EVAL
    from edgepose.export import export_model
    from edgepose.nn import save_checkpoint
    from edgepose.spec import PoseSpec
    from tests.fixtures_export import make_lively_model  # the tests' detection-rich tiny model

    torch.set_num_threads(2)
    ckpt = save_checkpoint(work / "tiny.pt", make_lively_model(), PoseSpec(name="edgepose-tiny",
                           input_size=(size, size)), epoch=0, metrics={})  # fmt: skip
    return export_model(ckpt, work / "tiny.onnx", img=size, conf=EVAL.conf, iou=EVAL.iou).path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,5000", help="comma-separated image counts")
    ap.add_argument("--img", type=int, default=128, help="image and model size in pixels")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from edgepose.data.synth import synthesize
    from edgepose.spec import ANNOTATIONS_FILE

    with tempfile.TemporaryDirectory(prefix="edgepose-benchmem-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = make_model(work, args.img)
        t = time.perf_counter()
        val = work / "val"
        if not (val / ANNOTATIONS_FILE).is_file() or len(list((val / "images").iterdir())) < sizes[-1]:
            synthesize(val, sizes[-1], args.img, seed=2, overwrite=True)  # a --work folder keeps it
        print(
            f"val set: {sizes[-1]} images of {args.img} px ready in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        results = []
        for n in sizes:
            cmd = [
                sys.executable,
                "-c",
                _CHILD,
                "bench",
                str(model),
                "--data",
                str(val),
                "--num-images",
                str(n),
                "--runs",
                "10",
                "--threads",
                "2",
                "--out",
                str(work / f"out{n}"),
            ]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
            if proc.returncode != 0:
                sys.exit(f"bench failed for {n} images:\n{proc.stdout}\n{proc.stderr}")
            peak = json.loads(proc.stderr.strip().splitlines()[-1])["peak_rss_kb"] / 1024
            rows = json.loads((work / f"out{n}" / "bench.json").read_text())["rows"]
            results.append((n, peak, time.perf_counter() - t, rows[0]["num_detections"]))
            print(f"{n:>6} images: peak RSS {peak:7.1f} MiB, {results[-1][2]:.0f} s, "
                  f"{rows[0]['num_detections']} detections scored", flush=True)  # fmt: skip
        (n0, p0, *_), (n1, p1, *_) = results[0], results[-1]
        print(f"peak RSS grows {p1 - p0:+.1f} MiB from {n0} to {n1} images "
              f"({1024 * (p1 - p0) / max(1, n1 - n0):.1f} kB per extra image)")  # fmt: skip


if __name__ == "__main__":
    main()
