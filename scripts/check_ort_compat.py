"""Which onnxruntime releases load and run edgepose's ONNX files: one venv per release, one table.

    python scripts/check_ort_compat.py f.onnx f.int8.onnx f.int16.onnx --ort 1.17.3 1.18.1 1.32.0

Each file runs twice per release: on a blank image (no detections: the empty-output path) and on
random noise. A release "runs" a file when both calls succeed and return the `detections` /
`num_detections` pair. The venvs are cached in --cache (pip downloads each release once);
this needs the package index, so it is a maintenance script, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import venv
from pathlib import Path

PROBE = r"""
import json, sys
import numpy as np
import onnxruntime as ort
out = {}
for path in sys.argv[1:]:
    try:
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0]
        h, w = inp.shape[2], inp.shape[3]
        dtype = np.uint8 if "uint8" in inp.type else np.float32
        scale = 255 if dtype == np.uint8 else 1.0
        rng = np.random.default_rng(0)
        blank = np.zeros((1, 3, h, w), dtype)
        noisy = (rng.random((1, 3, h, w)) * scale).astype(dtype)
        names = [o.name for o in s.get_outputs()]
        if names != ["detections", "num_detections"]:
            raise ValueError(f"outputs {names}, expected detections, num_detections")
        for x in (blank, noisy):
            s.run(names, {inp.name: x})
        out[path] = "runs"
    except Exception as e:  # report, do not stop: the table is the point
        out[path] = "fails: " + str(e).splitlines()[0][:120]
print(json.dumps(out))
"""


def env_for(version: str, cache: Path) -> Path:
    """A venv with onnxruntime==version (numpy < 2 for releases built before numpy 2)."""
    d = cache / f"ort-{version}"
    py = d / "bin" / "python"
    if not py.exists():
        venv.create(d, with_pip=True)
        numpy = "numpy<2" if tuple(int(v) for v in version.split(".")[:2]) < (1, 19) else "numpy"
        subprocess.run([py, "-m", "pip", "install", "-q", numpy, f"onnxruntime=={version}"], check=True)
    return py


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--ort", nargs="+", required=True, help="onnxruntime releases to try")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/edgepose-ort-compat"))
    args = ap.parse_args()
    rows = {}
    for version in args.ort:
        py = env_for(version, args.cache)
        res = subprocess.run([py, "-c", PROBE, *map(str, args.models)], capture_output=True, text=True)
        rows[version] = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
    names = [m.name for m in args.models]
    print("| onnxruntime | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for version, row in rows.items():
        cells = [row.get(str(m), "no result") for m in args.models]
        print(f"| {version} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
