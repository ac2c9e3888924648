"""The GPU check (issue 37): one run on a lent GPU, every result in one folder.

    benchmarks/gpu_check.sh OUT              # on a GPU machine (what the .sh sets up, then this)
    benchmarks/gpu_check.sh --cpu-dry OUT    # here: the same files, GPU columns "not measured"
    python benchmarks/gpu_check.py --out OUT [--cpu-dry] [--items quick packing]

Checks its imports and the GPU first and stops at one line (exit 2) when one is missing. Then
runs the items of ``gpu_items.py`` in order, writing each item's table as soon as it is
done (so a run cut off by its time limit still returns what it measured):

    env.txt          nvidia-smi, the device, the versions and where each package came from
    correctness.csv  GPU against CPU: forward, one training step, a 1-epoch trial per mixer
    throughput.csv   the recipe model at fp32, bf16 autocast and torch.compile
    packing.csv      1, 2, 4, 8 trials sharing the GPU through `mixerlab sweep`
    quick.csv        ablations/quick.yaml on the GPU: wall time against the dry run's estimate
    quick-trials.csv its 24 trials (GPU mode only)
    summary.md       every table, the wall time of each item, the generated specs
    log.txt          this output and every sweep's

Eight files, no folders: what the device tool brings back from ``$OUT``. An item that fails
leaves a FAILED table and the others still run; the exit code is then 1, as it is when a
correctness check fails. The run aims to end within ``--budget-s`` (default 450 s); an item
started too late is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

NOT_MEASURED = "not measured"
ITEM_NAMES = ("correctness", "throughput", "packing", "quick")
# Seconds an item needs at least to be worth starting on the GPU (from the budget's plan).
MIN_LEFT = {"correctness": 30, "throughput": 60, "packing": 90, "quick": 90}
# What the check imports. The device machine's python3 has the first group (KINDS.md); it
# lacks pydantic and Ray, which gpu_check.sh installs from the carried folder (Ray only for
# the sweeps, i.e. in GPU mode); mixerlab runs from src/.
ON_DEVICE = ("torch", "numpy", "pandas", "pyarrow", "yaml", "scipy")
CARRIED = ("pydantic", "mixerlab")
CARRIED_GPU = ("ray", "ray.tune")
HINTS = {
    "machine": "this Python lacks what the device machine's python3 has: set $PYTHON to that one",
    "carried": "carry them: run `bash benchmarks/gpu_carry.sh` here, then call the device with "
               "carry=['.carry'] (header of benchmarks/gpu_check.sh)",
    "mixerlab": "run benchmarks/gpu_check.sh from the repository (it puts src/ on PYTHONPATH)",
}


def _missing(names: tuple[str, ...]) -> list[str]:
    """The modules among ``names`` that cannot be imported (the one missing underneath, e.g.
    pydantic for mixerlab), or ``name (error)`` for a broken install."""
    out = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            out.append(getattr(err, "name", None) or name)
        except Exception as err:  # a broken install: say which, in one line
            out.append(f"{name} ({type(err).__name__}: {str(err).splitlines()[0][:80]})")
    return list(dict.fromkeys(out))


def preflight(dry: bool) -> str | None:
    """One line saying what stops the check on this machine, or None."""
    problems = []
    base = _missing(ON_DEVICE)
    if base:
        problems.append(f"cannot import {', '.join(base)}; {HINTS['machine']}")
    carried = [] if base else _missing(CARRIED + (() if dry else CARRIED_GPU))
    to_carry = [m for m in carried if m != "mixerlab"]
    if to_carry:
        problems.append(f"cannot import {', '.join(to_carry)}; {HINTS['carried']}")
    if "mixerlab" in carried:
        problems.append(f"cannot import mixerlab; {HINTS['mixerlab']}")
    if not dry and not base:
        import torch

        if not torch.cuda.is_available():
            problems.append(f"no CUDA device (torch {torch.__version__}, CUDA build "
                            f"{torch.version.cuda}): run it on a GPU machine, or pass --cpu-dry")
    return "gpu_check: " + "; ".join(problems) if problems else None


def _package(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version(name)
    except PackageNotFoundError:
        return f"{name}: not installed"
    mod = importlib.util.find_spec({"PyYAML": "yaml"}.get(name, name))
    where = Path(mod.origin).parent.parent if mod and mod.origin else "?"
    return f"{name} {v} ({where})"


def env_text(ctx, command: str) -> str:
    """What ran where: command, nvidia-smi, device, versions and each package's folder."""
    import torch

    from mixerlab import provenance

    lines = [f"command: {command}", f"mode: {'CPU dry run' if ctx.dry else 'GPU'}",
             f"started: {provenance.now()}", f"python: {sys.executable} {platform.python_version()}",
             f"machine: {provenance.hardware()}",
             f"PYTHONPATH: {os.environ.get('PYTHONPATH', '')}",
             f"MIXERLAB_DATA: {os.environ.get('MIXERLAB_DATA', '(unset)')}"
             + (" (carried: unread training images zeroed, gpu_carry.py)" if os.environ.get(
                 "GPU_CHECK_MASKED_DATA") else ""),
             f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuDNN "
             f"{torch.backends.cudnn.version()}", ""]
    if ctx.dry:
        lines += [f"nvidia-smi: {NOT_MEASURED} (CPU dry run)", f"GPU: {NOT_MEASURED}"]
    else:
        p = torch.cuda.get_device_properties(0)
        lines += [f"GPU: {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
                  f"compute capability {p.major}.{p.minor}, bf16 {torch.cuda.is_bf16_supported()}"]
        smi = shutil.which("nvidia-smi")
        for args in (["--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                      "--format=csv"], []):
            out = (subprocess.run([smi, *args], capture_output=True, text=True, timeout=60).stdout
                   if smi else "not found")
            lines += [f"$ nvidia-smi {' '.join(args)}", out]
    lines += ["", "packages:"] + [f"  {_package(n)}" for n in (
        "torch", "torchvision", "triton", "timm", "ray", "pydantic", "pydantic_core", "numpy",
        "pandas", "pyarrow", "scipy", "PyYAML")]
    lines.append(f"mixerlab: {provenance.versions()}")
    return "\n".join(lines) + "\n"


def _has_failure(table) -> bool:
    """A failed check (``FAIL``) or a part that broke (``FAILED: ...``, ``SKIPPED: ...``)."""
    cells = table.astype(str)
    return bool(cells.apply(lambda c: c.eq("FAIL") | c.str.startswith(("FAILED", "SKIPPED"))).any().any())


def failed_table(item: str, why: str):
    import pandas as pd

    return pd.DataFrame([{"item": item, "result": why}])


def render(tables: dict, walls: dict, ctx, command: str) -> str:
    """summary.md: the command, each item's wall time, every table, the generated specs."""
    from mixerlab.analysis.report_text import markdown_table

    lines = [f"# GPU check ({'CPU dry run: GPU columns not measured' if ctx.dry else 'GPU'})", "",
             f"Command: `{command}`; items' wall time: " +
             ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) + ".", ""]
    for name, table in tables.items():
        lines += [f"## {name}", "", markdown_table(table), ""]
    specs = sorted((ctx.tmp / "specs").glob("*.yaml"))
    if specs:
        lines += ["## Generated specs", ""]
        for p in specs:
            lines += [f"`{p.name}`:", "", "```yaml", p.read_text().rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT"), help="the output folder (default: $OUT)")
    ap.add_argument("--cpu-dry", action="store_true",
                    help="no GPU: write every file, the GPU columns 'not measured' (well under a minute)")
    ap.add_argument("--items", nargs="+", choices=ITEM_NAMES, default=list(ITEM_NAMES),
                    help="some items only (a rerun on a warm machine)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="aim to end within this many seconds")
    ap.add_argument("--pack-target-s", type=float, default=5.0,
                    help="seconds one packed trial trains alone (sets the packing sweeps' epochs)")
    ap.add_argument("--quick-gpu", type=float, default=0.125, help="resources.gpu of the quick study")
    args = ap.parse_args(argv)
    if not args.out:
        print("gpu_check: no output folder: pass --out DIR or set $OUT", file=sys.stderr)
        return 2
    problem = preflight(args.cpu_dry)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import gpu_items
    import torch

    if args.cpu_dry:
        torch.set_num_threads(1)  # figures meaningless anyway; a busy small CPU runs one faster
    command = shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp, open(out / "log.txt", "w") as log:
        ctx = gpu_items.Ctx(out=out, tmp=Path(tmp), dry=args.cpu_dry, log=log,
                            deadline=t_start + args.budget_s, pack_target_s=args.pack_target_s,
                            quick_gpu=args.quick_gpu)
        (out / "env.txt").write_text(env_text(ctx, command))
        tables, walls, failures = {}, {}, 0
        for name in args.items:
            ctx.say(f"== {name} ({ctx.left():.0f} s of the budget left)")
            t0 = time.perf_counter()
            if not ctx.dry and ctx.left() < MIN_LEFT[name]:
                table = failed_table(name, f"SKIPPED: {ctx.left():.0f} s of the budget left, "
                                           f"{MIN_LEFT[name]} s needed; rerun with --items {name}")
            else:
                try:
                    table = getattr(gpu_items, name)(ctx)
                except Exception as err:  # one broken item must not cost the others' figures
                    log.write(traceback.format_exc())
                    table = failed_table(name, f"FAILED: {type(err).__name__}: {err}")
            walls[name] = time.perf_counter() - t0
            failures += _has_failure(table)
            table.to_csv(out / f"{name}.csv", index=False)
            ctx.say(table.to_string(index=False))
            tables[name] = table
            (out / "summary.md").write_text(render(tables, walls, ctx, command))
        ctx.say(f"gpu_check: {f'{failures} item(s) with a failure' if failures else 'done'} in "
                f"{time.perf_counter() - t_start:.0f} s; files in {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
