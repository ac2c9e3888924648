"""One row per figure: what every benchmark item returns, and how it is printed and written.

A figure is a ratio or a rate measured in one run, with its unit and a note that says what
it compares, so the CSV is tidy (item, name, value, unit, note) and each row stands alone.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mixerlab import provenance
from mixerlab.train import pick_device

COLUMNS = ("item", "name", "value", "unit", "note")


@dataclass
class Context:
    """What run.py hands to every item: the size of the run, the device, where files go."""

    quick: bool = False  # smoke size: seconds, not minutes; the figures mean nothing
    full: bool = False  # item 1: all 24 trials instead of the stated subset
    device: str = "cpu"
    out_dir: Path = Path("results/benchmarks")
    tag: str = ""  # the device's slug, the stem of every file written
    extra: dict = field(default_factory=dict)  # per-item overrides from a standalone script

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self.tag = self.tag or device_tag(self.device)


def figure(item: str, name: str, value: float, unit: str, note: str = "") -> dict:
    return {"item": item, "name": name, "value": float(value), "unit": unit, "note": note}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_tag(device) -> str:
    """``cpu-<model name>`` or the GPU's name, as a file-name slug."""
    device = torch.device(device)
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    return f"cpu-{slug(provenance.cpu_model())}"


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({k: r[k] for k in COLUMNS} for r in rows)


def fmt(value: float) -> str:
    """Four significant digits, no exponent for the sizes these figures have."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| item | figure | value | unit | note |", "|---|---|---:|---|---|"]
    lines += [f"| {r['item']} | {r['name']} | {fmt(r['value'])} | {r['unit']} | {r['note']} |"
              for r in rows]
    return "\n".join(lines)


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(f"  {r['name']:<58} {fmt(r['value']):>10} {r['unit']:<14} {r['note']}")


def standalone(description: str, item: str, run, add_args=None) -> None:
    """``main()`` of an item run alone: parse --quick/--device/--out, run, print, write CSV."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke size: seconds, figures meaningless")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--out", default="results/benchmarks", help="folder for the CSV (and figures)")
    if add_args:
        add_args(p)
    args = p.parse_args()
    extra = {k: v for k, v in vars(args).items() if k not in ("quick", "device", "out")}
    ctx = Context(quick=args.quick, full=extra.pop("full", False),
                  device=str(pick_device(args.device)), out_dir=Path(args.out), extra=extra)
    rows = run(ctx)
    print_rows(rows)
    path = ctx.out_dir / f"{ctx.tag}-{item}.csv"
    write_csv(rows, path)
    print(f"wrote {path}")
