"""Item 1: the trials of ablations/quick.yaml the usual way, against ``mixerlab sweep``.

The usual way is how the ConvMixer CIFAR-10 repository trains (github.com/locuslab/
convmixer-cifar10, train.py): one script per trial, ``torchvision.datasets`` + ``DataLoader``
(2 workers, its default) with per-sample transforms, eager float32, the default memory
format, a ``loss.item()`` every step; here the trials run one after another, each on all
cores. Everything else is mixerlab's recipe, so that only the loop and the input pipeline
differ: the same images (mixerlab's stratified split and subset), the same model
(``create_model`` after ``torch.manual_seed(seed)``, so the same initial weights), AdamW,
one-cycle, label smoothing, gradient clipping, batch, epochs, validation every epoch and the
test set once at the end. mixerlab's side is the real CLI on a generated spec (real Ray,
two single-threaded trials side by side), in a temporary results folder.

Default: one seed of each of the 8 configurations (8 trials, 5 epochs, 10,000 images, as
quick.yaml); ``--full``: all 24 trials. Figures: the wall-time ratio (whole commands, start
to end), mean test accuracy of both sides and their paired difference, and the attribution
(``attribution.py``).

    python benchmarks/usual_way.py [--full | --quick]
    python benchmarks/usual_way.py trial --mixer conv --patch-size 4 --seed 0   # one trial
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attribution
import torch
import yaml
from figures import Context, figure, standalone
from pipeline import torchvision_raw, usual_transform
from torch.utils.data import DataLoader, Subset
from torchvision import datasets

from mixerlab.config import DataConfig, ModelConfig, TrainConfig
from mixerlab.data.split import split_indices
from mixerlab.execution import Execution, from_record, legacy
from mixerlab.models import create_model
from mixerlab.schedule import lr_factor

ITEM = "usual_way"
HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "ablations" / "quick.yaml"
SMOKE = dict(configs=[{"mixer": "conv", "patch_size": 7}], epochs=1, train_subset=512,
             val_fraction=0.02)  # --quick: one tiny trial a side


# ---- one trial, the usual way (run as its own process) --------------------------------------

def _evaluate(model, loader, device) -> float:
    model.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(-1) == y).sum().item()
            n += len(y)
    return 100.0 * correct / n


def trial(args) -> dict:
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tmp = None if args.root else tempfile.TemporaryDirectory()
    root = str(torchvision_raw(Path(args.root or tmp.name)))
    train_set = datasets.FashionMNIST(root, train=True, transform=usual_transform(True))
    plain_set = datasets.FashionMNIST(root, train=True, transform=usual_transform(False))
    test_set = datasets.FashionMNIST(root, train=False, transform=usual_transform(False))
    # The same images as mixerlab's trial: its validation split, then its training subset.
    train_idx, val_idx = split_indices(train_set.targets, args.val_fraction, args.train_subset,
                                       args.split_seed)
    kw = dict(num_workers=args.workers)
    train_loader = DataLoader(Subset(train_set, train_idx.tolist()), batch_size=args.batch_size,
                              shuffle=True, drop_last=True, **kw)
    val_loader = DataLoader(Subset(plain_set, val_idx.tolist()), batch_size=args.eval_batch_size, **kw)
    test_loader = DataLoader(test_set, batch_size=args.eval_batch_size, **kw)

    torch.manual_seed(args.seed)  # as mixerlab.train: the same initial weights
    model = create_model(ModelConfig(mixer=args.mixer, patch_size=args.patch_size,
                                     depth=args.depth, width=args.width)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total = args.epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor("onecycle", s, total, 0))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    train_time, val_acc = 0.0, float("nan")
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum = n = 0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            loss = criterion(model(x), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            n += len(y)
        train_time += time.perf_counter() - t0
        val_acc = _evaluate(model, val_loader, device)
        print(f"epoch {epoch + 1}: train loss {loss_sum / n:.4f}, val acc {val_acc:.2f}%, "
              f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    rec = dict(mixer=args.mixer, patch_size=args.patch_size, seed=args.seed, epochs=args.epochs,
               val_acc=val_acc, test_acc=_evaluate(model, test_loader, device),
               train_time_s=train_time, trial_time_s=time.perf_counter() - t_start,
               threads=torch.get_num_threads())
    if tmp is not None:
        tmp.cleanup()
    return rec


def trial_main(argv: list[str]) -> None:
    t = TrainConfig()  # mixerlab's documented defaults, so the script alone runs its recipe
    p = argparse.ArgumentParser(description="one trial, the usual way (prints one JSON line)")
    p.add_argument("--mixer", default="conv")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--eval-batch-size", type=int, default=t.eval_batch_size)
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--weight-decay", type=float, default=t.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=t.label_smoothing)
    p.add_argument("--grad-clip", type=float, default=t.grad_clip)
    p.add_argument("--train-subset", type=int, default=10000)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (ConvMixer's default)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads: all cores")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--root", default=None, help="folder with FashionMNIST/raw (else a temporary copy)")
    print(json.dumps(trial(p.parse_args(argv))), flush=True)


# ---- the study: both sides on the same trials ----------------------------------------------

def study_spec(ctx: Context) -> dict:
    """quick.yaml with the stated subset: seed 0 only (default), all seeds (--full), or SMOKE."""
    spec = yaml.safe_load(SPEC.read_text())
    spec["name"] = "usual_way_bench"
    if ctx.quick:
        spec.pop("grid")
        spec["configs"] = SMOKE["configs"]
        spec["train"]["epochs"] = SMOKE["epochs"]
        spec["dataset"].update(train_subset=SMOKE["train_subset"], val_fraction=SMOKE["val_fraction"])
    if not ctx.full:
        spec["seeds"] = [0]
    if torch.device(ctx.device).type == "cuda":
        spec["resources"]["gpu"] = 0.5  # two trials share the GPU, as two share the CPU here
    return spec


def trials_of(spec: dict) -> list[dict]:
    configs = spec.get("configs") or [dict(zip(spec["grid"], values))
                                      for values in itertools.product(*spec["grid"].values())]
    seeds = spec["seeds"] if isinstance(spec["seeds"], list) else list(range(spec["seeds"]))
    return [{**spec["model"], **c, "seed": s} for c in configs for s in seeds]


def configs_of(spec: dict) -> list[ModelConfig]:
    """The study's distinct model configurations: its trials less the seeds, in order."""
    out = []
    for tr in trials_of(spec):
        cfg = ModelConfig(**{k: v for k, v in tr.items() if k != "seed"})
        if cfg not in out:
            out.append(cfg)
    return out


def ways_of(configs: list[ModelConfig], records: list[dict], device: str) -> list[Execution]:
    """How the sweep ran each configuration, from its records (one way per configuration)."""
    out = []
    for cfg in configs:
        rec = next(r for r in records if r["mixer"] == cfg.mixer and r["patch_size"] == cfg.patch_size)
        out.append(from_record(rec) or legacy(bool(rec["channels_last"]), torch.device(device)))
    return out


def run_usual(spec: dict, root: Path, device: str, log) -> tuple[list[dict], float]:
    t, d = spec["train"], spec["dataset"]
    t0 = time.perf_counter()
    records = []
    for tr in trials_of(spec):
        cmd = [sys.executable, str(HERE / "usual_way.py"), "trial", "--mixer", tr["mixer"],
               "--patch-size", str(tr["patch_size"]), "--depth", str(tr["depth"]),
               "--width", str(tr["width"]), "--seed", str(tr["seed"]), "--epochs", str(t["epochs"]),
               "--batch-size", str(t["batch_size"]), "--train-subset", str(d["train_subset"]),
               "--val-fraction", str(d.get("val_fraction", 0.1)), "--device", device,
               "--root", str(root)]
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, check=True)
        records.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return records, time.perf_counter() - t0


def run_mixerlab(spec: dict, folder: Path, log) -> tuple[list[dict], float, float]:
    import pandas as pd

    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    cmd = [sys.executable, "-m", "mixerlab", "sweep", str(path), "--results", str(folder / "sweeps")]
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=log, stderr=log, env=env, check=True)
    wall = time.perf_counter() - t0
    study = folder / "sweeps" / spec["name"]
    trials = pd.read_parquet(study / "trials.parquet")
    prov = json.loads((study / "provenance.json").read_text())
    return trials.to_dict("records"), wall, prov["wall_time_s"]


def run(ctx: Context) -> list[dict]:
    from mixerlab.analysis.stats import paired  # pandas and scipy: kept out of every trial's start

    spec = study_spec(ctx)
    n_trials = len(trials_of(spec))
    with tempfile.TemporaryDirectory(prefix="mixerlab-usual-") as tmp:
        tmp = Path(tmp)
        root = torchvision_raw(tmp / "data")
        log_path = tmp / "log.txt"
        try:
            with open(log_path, "w") as log:
                ours, wall_ours, sweep_wall = run_mixerlab(spec, tmp, log)
                usual, wall_usual = run_usual(spec, root, ctx.device, log)
        except subprocess.CalledProcessError:
            sys.stderr.write(log_path.read_text()[-4000:])
            raise
        configs = configs_of(spec)
        factors = attribution.measure(configs, DataConfig(**spec["dataset"]), root, ctx,
                                      ways_of(configs, ours, ctx.device))

    key = ("mixer", "patch_size", "seed")
    by_key = {tuple(r[k] for k in key): r for r in ours}
    pairs = [(by_key[tuple(u[k] for k in key)]["test_acc"], u["test_acc"]) for u in usual]
    a, b = zip(*pairs)
    test = paired(a, b)
    ratio = wall_usual / wall_ours
    size = (f"{n_trials} trials ({'all seeds' if ctx.full else 'seed 0'}), "
            f"{spec['train']['epochs']} epochs, {spec['dataset']['train_subset']} images")
    rows = [
        figure(ITEM, "wall time: usual way / mixerlab sweep", ratio, "x",
               f"{size}; whole commands, start to end"),
        figure(ITEM, "wall time, mixerlab sweep", wall_ours, "s",
               f"`mixerlab sweep` CLI, real Ray; the sweep itself (provenance): {sweep_wall:.1f} s"),
        figure(ITEM, "wall time, usual way", wall_usual, "s",
               f"one process per trial, one after another, {os.cpu_count()} threads each"),
        figure(ITEM, "mean test accuracy, mixerlab", sum(a) / len(a), "%", size),
        figure(ITEM, "mean test accuracy, usual way", sum(b) / len(b), "%", size),
        figure(ITEM, "test accuracy, mixerlab - usual (paired)", test["diff"], "points",
               f"95% CI {test['lo']:.2f} to {test['hi']:.2f}, paired t p={test['p']:.3g}, "
               f"{len(pairs)} pairs (same config and seed)"),
    ]
    rows += attribution.rows(factors, ratio)
    write_trials(ctx.out_dir / f"{ctx.tag}-usual_way-trials.csv", ours, usual)
    return rows


def write_trials(path: Path, ours: list[dict], usual: list[dict]) -> None:
    """Every trial of both sides, one row each: the evidence behind the means."""
    cols = ["mixer", "patch_size", "seed", "test_acc", "val_acc", "train_time_s", "trial_time_s"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["side", *cols])
        for side, recs in (("mixerlab", ours), ("usual", usual)):
            w.writerows([side, *(r[c] for c in cols)] for r in recs)


def _args(p) -> None:
    p.add_argument("--full", action="store_true", help="all 24 trials (3 seeds), not seed 0 only")


def main() -> None:
    if sys.argv[1:2] == ["trial"]:
        trial_main(sys.argv[2:])
    else:
        standalone(__doc__.splitlines()[0], ITEM, run, _args)


if __name__ == "__main__":
    main()
