"""Latency cost of the in-graph decode + NMS tail: raw-head graph vs end-to-end graph, side by side.

Both graphs come from the same checkpoint at the same size (default edgepose-n, random init, 256 px,
deployment thresholds 0.25 / 0.45 / 100). Runs are interleaved (raw, e2e, raw, e2e, ...) so background
load hits both alike; onnxruntime on CPU with a fixed thread count. Prints p50/p90 of each and the
tail's overhead in percent of the raw graph's p50 (target: <= 3%).

    .venv/bin/python scripts/bench_tail.py [--weights CKPT] [--img 256] [--runs 300] [--threads 2]
        [--also LABEL=OTHER_E2E.onnx ...]

`--also` adds more end-to-end graphs of the same model and size to the interleaving (e.g. one exported
by an older edgepose, to measure a change to the tail side by side with the current one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _checkpoint(weights: str | None, model: str, folder: Path) -> Path:
    if weights:
        return Path(weights)
    import torch

    from edgepose.nn import build_model, resolve_config, save_checkpoint
    from edgepose.spec import PoseSpec

    torch.manual_seed(0)
    cfg = resolve_config(model)
    return save_checkpoint(
        folder / "random.pt",
        build_model(cfg).eval(),
        PoseSpec(name=model, input_size=(cfg.input_size, cfg.input_size)),  # export builds this size
        epoch=0,
        metrics={},
    )


def _session(path: Path, threads: int, spin: bool):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3
    # Spinning worker threads make every small op pay for a busy core when the machine is shared.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="checkpoint to export (default: random-init --model)")
    ap.add_argument("--model", default="edgepose-n")
    ap.add_argument("--img", type=int, default=256)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-spin", action="store_true", help="onnxruntime threads sleep instead of spinning")
    ap.add_argument("--conf", type=float, default=0.25, help="score threshold fed to the end-to-end graph")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH", help="another e2e graph")
    args = ap.parse_args()

    from edgepose.export import export_model
    from edgepose.export.selfcheck import sample_images
    from edgepose.runtime.preprocess import to_input
    from edgepose.spec import INPUT_NAME, SCORE_THR_NAME, InputFormat

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt = _checkpoint(args.weights, args.model, folder)
        raw = export_model(ckpt, folder / "raw.onnx", img=args.img, nms=False, verify=False)
        e2e = export_model(ckpt, folder / "e2e.onnx", img=args.img, verify=False)
        spin = not args.no_spin
        sessions = {
            "raw head": _session(raw.path, args.threads, spin),
            "end-to-end": _session(e2e.path, args.threads, spin),
        }
        x = to_input(sample_images(1, (args.img, args.img)), InputFormat.FLOAT)  # (1, 3, S, S)
        e2e_feed = {INPUT_NAME: x, SCORE_THR_NAME: np.array(args.conf, np.float32)}
        feeds = {"raw head": {INPUT_NAME: x}, "end-to-end": e2e_feed}
        nodes = {"raw head": raw.nodes.total, "end-to-end": e2e.nodes.total}
        for item in args.also:
            label, _, path = item.partition("=")
            if not path or not Path(path).is_file():
                raise SystemExit(f"--also {item!r}: expected LABEL=PATH to an existing .onnx file")
            import onnx

            sessions[label], feeds[label] = _session(Path(path), args.threads, spin), e2e_feed
            nodes[label] = len(onnx.load(path, load_external_data=False).graph.node)
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for i in range(args.warmup + args.runs):
            k = i % len(sessions)
            order = list(sessions)[k:] + list(sessions)[:k]  # rotate who goes first
            for name in order:
                t0 = time.perf_counter()
                sessions[name].run(None, feeds[name])
                dt = time.perf_counter() - t0
                if i >= args.warmup:
                    times[name].append(dt * 1e3)
        kept = int(sessions["end-to-end"].run(None, feeds["end-to-end"])[1][0])

    p50 = {k: float(np.percentile(v, 50)) for k, v in times.items()}
    print(
        f"{e2e.spec.name} {args.img}x{args.img}, onnxruntime CPU, {args.threads} threads, "
        f"{args.runs} interleaved runs{'' if spin else ', no spinning'}, score threshold {args.conf:g} "
        f"({kept} detections kept on the sample image)"
    )
    for k, v in times.items():
        print(f"  {k:<11} p50 {p50[k]:7.3f} ms   p90 {np.percentile(v, 90):7.3f} ms   nodes {nodes[k]}")
    for k in [k for k in times if k != "raw head"]:
        extra = p50[k] - p50["raw head"]
        overhead = extra / p50["raw head"] * 100
        what = "tail overhead" if k == "end-to-end" else f"{k} vs raw head"
        print(f"  {what}: {extra:+.3f} ms = {overhead:+.2f}% (target <= 3%)")


if __name__ == "__main__":
    main()
