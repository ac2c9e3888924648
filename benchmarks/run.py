"""The performance benchmarks, items 1-4, in one run on one device.

    python benchmarks/run.py            # every item on the current device (cuda if available)
    python benchmarks/run.py --full     # item 1 with all 24 trials of quick.yaml, not 8
    python benchmarks/run.py --quick    # smoke: every item at toy size (figures meaningless)
    python benchmarks/run.py --items tokens efficiency

Writes ``<out>/<device>.csv`` (item, name, value, unit, note: one row per figure, every figure
a ratio or a rate from this one run) and ``<out>/<device>.md`` (device, versions, command,
date, wall time per item, the table), plus the items' own files named ``<device>-*``.
``<device>`` is ``cpu-<model name>`` or the GPU's name. An item that fails is reported in
both files and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path

import attention_kernels
import budgets
import efficiency
import overheads
import tokens
import torch
import torchvision
import usual_way
from figures import Context, figure, fmt, markdown_table, print_rows, write_csv

from mixerlab import provenance
from mixerlab.train import pick_device

# Item name -> run(Context) -> list of figure rows. Adding an item is one line here.
ITEMS = {
    "usual_way": usual_way.run,  # 1. quick.yaml's trials the usual way vs `mixerlab sweep`
    "efficiency": efficiency.run,  # 2. training FLOP/s / peak matmul per mixer; profile the worst
    "attention_kernels": attention_kernels.run,  # 2. the worst one's kernel: plain vs fused by N
    "kernel_factors": attention_kernels.kernel_factors,  # 3. why harnesses disagreed on the kernel
    "overheads": overheads.run,  # the sweep's own costs: Ray start, a checkpoint, inference timing
    "tokens": tokens.run,  # 3. step time against tokens, with O(N^2) / O(N) fits
    "budgets": budgets.run,  # 4. the dry run's own time, and its estimates against real studies
}


def header(ctx: Context, command: str, started: str, walls: dict) -> str:
    hw, v = provenance.hardware(), provenance.versions()
    dev = torch.device(ctx.device)
    size = "quick (smoke: figures meaningless)" if ctx.quick else (
        "full (item 1: all 24 trials)" if ctx.full else "default (item 1: 8 trials, seed 0)")
    lines = [
        f"# Benchmarks: {ctx.tag}", "",
        f"Command: `{command}`; size: {size}; started {started}; wall {sum(walls.values()) / 60:.1f} min.",
        f"Device: {provenance.device_name(dev)} ({dev.type}); machine: {hw['cpu']}, "
        f"{hw['cpu_count']} cores, {hw['memory_gb']} GB memory, GPUs: {', '.join(hw['gpus']) or 'none'}; "
        f"torch threads {torch.get_num_threads()}.",
        f"Versions: torch {v['torch_version']}, torchvision {torchvision.__version__}, timm "
        f"{v['timm_version']}, Ray {v.get('ray_version', '-')}, Python {platform.python_version()}, "
        f"mixerlab {v['mixerlab_version']}; code: commit {v['git_commit']}.", "",
        "| item | wall (s) |", "|---|---:|",
        *[f"| {k} | {fmt(s)} |" for k, s in walls.items()], "",
    ]
    files = sorted(p.name for p in ctx.out_dir.glob(f"{ctx.tag}-*"))
    if files:
        lines += ["Files of the items: " + ", ".join(f"`{f}`" for f in files), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke: every item at toy size")
    p.add_argument("--full", action="store_true", help="item 1: all 24 trials (3 seeds)")
    p.add_argument("--items", nargs="+", choices=list(ITEMS), default=list(ITEMS))
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)
    command = shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    ctx = Context(quick=args.quick, full=args.full, device=str(pick_device(args.device)),
                  out_dir=Path(args.out))
    started, rows, walls, failed = provenance.now(), [], {}, False
    for name in args.items:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            got = ITEMS[name](ctx)
        except Exception as err:  # one broken item must not cost the others' figures
            traceback.print_exc()
            got, failed = [figure(name, "FAILED", float("nan"), "-", f"{type(err).__name__}: {err}")], True
        walls[name] = time.perf_counter() - t0
        print_rows(got)
        rows += got
    csv_path, md_path = ctx.out_dir / f"{ctx.tag}.csv", ctx.out_dir / f"{ctx.tag}.md"
    write_csv(rows, csv_path)
    md_path.write_text(header(ctx, command, started, walls) + "\n" + markdown_table(rows) + "\n")
    print(f"wrote {csv_path} and {md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
