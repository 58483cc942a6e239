"""Training-step throughput: NCHW vs channels_last (NHWC) memory format, side by side in one run.

`edgepose train` keeps the model and each batch in channels_last; this measures why. The same model
(edgepose-n by default, seeded), the same random batch and SGD step; the two layouts are timed
alternately (cf, cl, cf, cl, ...) so background load hits both alike. Prints images/s per layout and
the ratio.

    .venv/bin/python scripts/bench_train_step.py [--model edgepose-n] [--img 256] [--batch 32] [--rounds 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edgepose-n")
    ap.add_argument("--img", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4, help="alternations; each times --steps steps per layout")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    import torch

    from edgepose.nn import build_model, resolve_config

    torch.manual_seed(0)
    model = build_model(resolve_config(args.model)).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = torch.rand(args.batch, 3, args.img, args.img)  # (B, 3, S, S)

    def step(inp: torch.Tensor) -> None:
        loss = sum(o.square().mean() for o in model(inp))  # touches every output, like the real loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    layouts = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}
    rate: dict[str, list[float]] = {k: [] for k in layouts}
    for r in range(args.rounds + 1):  # round 0 warms up both
        for name, fmt in layouts.items():
            model.to(memory_format=fmt)
            inp = x.contiguous(memory_format=fmt)
            step(inp)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(inp)
            if r:
                rate[name].append(args.batch * args.steps / (time.perf_counter() - t0))
    print(
        f"{args.model} train step, batch {args.batch} at {args.img} px, {torch.get_num_threads()} threads, "
        f"{args.rounds} alternating rounds of {args.steps} steps"
    )
    for name, v in rate.items():
        print(f"  {name:<13} {np.median(v):6.1f} img/s (rounds: {', '.join(f'{x:.1f}' for x in v)})")
    print(f"  channels_last / NCHW: {np.median(rate['channels_last']) / np.median(rate['NCHW']):.2f}x")


if __name__ == "__main__":
    main()
