"""Does bf16 autocast reach fp32's test accuracy? Paired over seeds, per mixer.

Each mixer's model of the quick study (patch 4, depth 4, width 64, 5 epochs, 10,000
Fashion-MNIST training images, batch 128, lr 5e-3: ``ablations/quick.yaml``) is trained
with the same seeds twice, once in fp32 and once in bf16 autocast, each its fastest way on
this machine (``mixerlab.execution_choice.choose`` with the precision pinned: the layout and the
attention kernel are measured). A seed fixes the initial weights, the data order and the
augmentation, so the two trials of a seed differ only in precision, and the differences
bf16 - fp32 are paired. A mixer is cleared for bf16 (``register_mixer(..., bf16=True)``)
when the 95% t interval of the mean difference lies inside the region of practical
equivalence, +-0.5 points of test accuracy.

Two trials run at a time, one thread each, as ``mixerlab sweep`` runs them on two cores.

    python benchmarks/precision.py                      # 4 mixers x 5 seeds x 2 precisions
    python benchmarks/precision.py --seeds 2 --epochs 1 --subset 1000   # smoke

Writes ``<out>/<device>-precision.csv`` (one row per trial) and ``<out>/<device>-precision.md``
(command, date, versions, per-mixer table).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import shlex
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from figures import device_tag

from mixerlab import provenance
from mixerlab.analysis.report_text import markdown_table
from mixerlab.analysis.stats import paired
from mixerlab.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
from mixerlab.execution import ExecutionPins
from mixerlab.execution_choice import choose

ROPE = 0.5  # points of test accuracy: the adaptive seeds' default region (sweep/spec.py)
_DATA = {}  # per worker process: the data set, loaded once


def _model(mixer: str, args) -> ModelConfig:
    return ModelConfig(mixer=mixer, patch_size=args.patch_size, depth=4, width=64,
                       image_size=28, in_chans=1, num_classes=10)


def _run(cfg_json: str) -> dict:
    from mixerlab.data import open_data
    from mixerlab.train import train

    torch.set_num_threads(1)
    cfg = TrialConfig.model_validate_json(cfg_json)
    key = cfg.data.model_dump_json()
    if key not in _DATA:
        _DATA[key] = open_data(cfg.data)
    rec = train(cfg, data=_DATA[key])
    return {"mixer": cfg.model.mixer, "seed": cfg.seed, "precision": rec["precision"],
            "execution": cfg.train.execution.label, "test_acc": rec["test_acc"],
            "val_acc": rec["val_acc"], "status": rec["status"], "train_time_s": rec["train_time_s"]}


def summarise(trials: pd.DataFrame) -> pd.DataFrame:
    """Per mixer: bf16 - fp32 test accuracy paired by seed, its interval, the ROPE verdict,
    and fp32's training time over bf16's (median of the seeds' ratios)."""
    rows = []
    for mixer, g in trials.groupby("mixer", sort=False):
        wide = g.pivot(index="seed", columns="precision", values="test_acc")
        t = g.pivot(index="seed", columns="precision", values="train_time_s")
        p = paired(wide["bf16"], wide["fp32"])
        inside = -ROPE <= p["lo"] and p["hi"] <= ROPE
        rows.append({"mixer": mixer, "seeds": p["n_pairs"], "fp32": wide["fp32"].mean(),
                     "bf16": wide["bf16"].mean(), "bf16_minus_fp32": p["diff"], "lo": p["lo"],
                     "hi": p["hi"], "p": p["p"],
                     "verdict": "equivalent" if inside else "not shown equivalent",
                     "fp32_way": g[g.precision == "fp32"]["execution"].iloc[0],
                     "bf16_way": g[g.precision == "bf16"]["execution"].iloc[0],
                     "time_fp32_over_bf16": statistics.median(t["fp32"] / t["bf16"])})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mixers", nargs="+", default=["conv", "mlp", "attention", "identity"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--subset", type=int, default=10000, help="training images (stratified)")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)
    command = shlex.join(["python", "benchmarks/precision.py", *(sys.argv[1:] if argv is None else argv)])
    device = torch.device("cpu")
    started, t0 = provenance.now(), time.perf_counter()
    torch.set_num_threads(1)  # choose as the trials run: one thread each
    data = DataConfig(name="fashion-mnist", train_subset=args.subset)
    configs = []
    for mixer in args.mixers:
        model = _model(mixer, args)
        for precision in ("fp32", "bf16"):
            way, _ = choose(model, 128, ExecutionPins(precision=precision), device)
            train = TrainConfig(epochs=args.epochs, threads=1, measure_throughput=False, execution=way)
            configs += [TrialConfig(model=model, data=data, train=train, seed=s) for s in range(args.seeds)]
    print(f"{len(configs)} trials, 2 at a time", flush=True)
    rows = []
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        for i, row in enumerate(pool.map(_run, [c.model_dump_json() for c in configs]), 1):
            print(f"[{i}/{len(configs)}] {row['mixer']} seed {row['seed']} {row['execution']}: "
                  f"test {row['test_acc']:.2f}, {row['train_time_s']:.0f} s", flush=True)
            rows.append(row)
    trials = pd.DataFrame(rows)
    table = summarise(trials)
    out, tag = Path(args.out), device_tag(device)
    out.mkdir(parents=True, exist_ok=True)
    trials.to_csv(out / f"{tag}-precision.csv", index=False)
    v = provenance.versions()
    md = [f"# bf16 against fp32, paired over seeds: {tag}", "",
          f"Command: `{command}`; started {started}; wall {(time.perf_counter() - t0) / 60:.1f} min; "
          f"{provenance.hardware()['cpu']}, 2 trials at a time, 1 thread each; torch "
          f"{v['torch_version']}, commit {v['git_commit']}.",
          f"Each mixer at patch {args.patch_size}, depth 4, width 64, {args.epochs} epochs, "
          f"{args.subset} training images, seeds 0-{args.seeds - 1}; test accuracy bf16 - fp32 "
          f"paired by seed, 95% t interval; equivalent when it lies within +-{ROPE} points.", "",
          markdown_table(table.round(3)), ""]
    (out / f"{tag}-precision.md").write_text("\n".join(md))
    print(table.to_string(index=False))
    print(f"wrote {out / f'{tag}-precision.csv'} and {out / f'{tag}-precision.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
