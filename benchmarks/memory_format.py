"""channels_last vs NCHW for a training step of each mixer on this device (ratios, one run).

    python benchmarks/memory_format.py [--device cpu] [--threads 2]

The training engine uses channels_last for the mixers where this prints a ratio > 1.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from mixerlab.config import ModelConfig
from mixerlab.models import create_model, list_mixers


def step_fn(model, x, y, channels_last: bool):
    model = copy.deepcopy(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def compare(model, x, y, rounds: int, steps: int = 1) -> tuple[float, float]:
    """Median seconds per training step (NCHW, channels_last), timed in interleaved blocks of
    ``steps`` steps so that both formats see the same machine state."""
    fns = {False: step_fn(model, x, y, False), True: step_fn(model, x, y, True)}
    times = {False: [], True: []}
    for s in fns.values():  # warm-up
        s()
    for _ in range(rounds):
        for cl, s in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                s()
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            times[cl].append((time.perf_counter() - t0) / steps)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--patch-sizes", type=int, nargs="+", default=[2, 4])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(128, 1, 28, 28, device=args.device)
    y = torch.randint(0, 10, (128,), device=args.device)
    print(f"{args.device}, {args.threads} threads, batch 128, width 64, depth 6")
    for mixer in list_mixers():
        for ps in args.patch_sizes:
            torch.manual_seed(0)
            model = create_model(ModelConfig(mixer=mixer, patch_size=ps, depth=6, width=64)).to(args.device)
            a, b = compare(model, x, y, args.rounds)
            print(f"  {mixer:<10} p{ps}: NCHW {a * 1e3:7.1f} ms  channels_last {b * 1e3:7.1f} ms  "
                  f"speed-up {a / b:.2f}x")


if __name__ == "__main__":
    main()
