"""``mixerlab train``: train and evaluate one configuration, with a progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import get_args

from tqdm import tqdm

from mixerlab.checkpoint import DirCheckpoint
from mixerlab.cli.options import Registered, add_model_options, dataset_names, model_config
from mixerlab.config import DataConfig, TrainConfig, TrialConfig, parse
from mixerlab.errors import ConfigError

_T = TrainConfig()


def register(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate one model configuration")
    add_model_options(p)
    g = p.add_argument_group("data and recipe")
    g.add_argument("--dataset", default="fashion-mnist", choices=Registered(dataset_names),
                   metavar="NAME", help="%(choices)s (the data registries; default %(default)s)")
    g.add_argument("--data-dir", default=None, help="folder holding the data set's files")
    g.add_argument("--train-subset", type=int, default=None, help="stratified subset of the training set")
    g.add_argument("--val-fraction", type=float, default=None, help="held-out validation share (default 0.1)")
    g.add_argument("--stream", action="store_true",
                   help="decode images per batch in loader workers instead of holding the data set "
                        "in memory (default: only when it would exceed dataset.memory_budget_gb)")
    g.add_argument("--workers", type=int, default=None,
                   help="loader workers of the streamed path (default: threads - 1)")
    g.add_argument("--split-per-seed", action="store_true",
                   help="draw the validation split and training subset from --seed (default: split_seed 0)")
    g.add_argument("--epochs", type=int, default=None, help=f"default {_T.epochs}")
    g.add_argument("--batch-size", type=int, default=None, help=f"default {_T.batch_size}")
    g.add_argument("--lr", type=float, default=None, help=f"AdamW peak lr, default {_T.lr}")
    g.add_argument("--weight-decay", type=float, default=None, help=f"default {_T.weight_decay}")
    g.add_argument("--schedule", choices=get_args(TrainConfig.model_fields["schedule"].annotation),
                   default=None, help=f"default {_T.schedule} (budget ladders: a spec's train.budgets)")
    g.add_argument("--label-smoothing", type=float, default=None, help=f"default {_T.label_smoothing}")
    g.add_argument("--mixup", type=float, default=None, help="mixup alpha (0 = off)")
    g.add_argument("--cutmix", type=float, default=None, help="cutmix alpha (0 = off)")
    g.add_argument("--ema", type=float, default=None, help="EMA decay of weights, e.g. 0.999")
    g.add_argument("--precise-bn", type=int, default=None, metavar="IMAGES",
                   help="recompute BatchNorm statistics over this many training images before "
                        "every evaluation (8192 is usual; 0 = the running averages, the default)")
    g.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    p.add_argument("--out", default=None,
                   help="write record.json + history.csv here, checkpoint each epoch; re-running resumes")
    p.add_argument("--json", action="store_true", help="print the result record as JSON on stdout")
    p.set_defaults(func=run)


def trial_config(args) -> TrialConfig:
    data = {"name": args.dataset, "data_dir": args.data_dir, "train_subset": args.train_subset}
    if args.val_fraction is not None:
        data["val_fraction"] = args.val_fraction
    if args.no_augment:
        data["augment"] = False
    if args.split_per_seed:
        data["split_per_seed"] = True
    if args.stream:
        data["stream"] = True
    if args.workers is not None:
        data["workers"] = args.workers
    if args.image_size is not None:  # the data set is resized to it, as dataset.image_size in a spec
        data["image_size"] = args.image_size
    train = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "schedule",
                                           "label_smoothing", "mixup", "cutmix", "ema", "precise_bn", "threads")
             if getattr(args, k) is not None}
    train.update(device=args.device, compile=args.compile)
    return TrialConfig(model=model_config(args), data=parse(DataConfig, data, "data options"),
                       train=parse(TrainConfig, train, "training options"), seed=args.seed)


def run(args) -> int:
    from mixerlab.data import open_data
    from mixerlab.train import train

    cfg = trial_config(args)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory; choose a folder path")
    data = open_data(cfg.data)  # in memory, or streamed (data/path.py)
    ckpt = DirCheckpoint(out, cfg) if out else None
    bar = tqdm(total=cfg.train.epochs, desc=f"train {cfg.model.label}", unit="epoch",
               file=sys.stderr, dynamic_ncols=True)
    state = ckpt.load() if ckpt else None
    if state:
        bar.update(state["epoch"])
        bar.write(f"resuming from {ckpt.path} at epoch {state['epoch']}", file=sys.stderr)

    def on_epoch(row, state):
        bar.update(1)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_acc']:.2f}",
                        img_s=f"{row['images_per_s']:.0f}")
        if ckpt:
            ckpt.save(state)

    record = train(cfg, data=data, on_epoch=on_epoch, checkpoint=ckpt)
    bar.close()
    if out:
        _write_outputs(out, record)
    if args.json:
        print(json.dumps(record, default=str, indent=2))
    else:
        print(f"{record['variant']} p{record['patch_size']}: status {record['status']}, "
              f"test acc {record['test_acc']:.2f}%, best val acc {record['best_val_acc']:.2f}%, "
              f"{record['params']:,} params, {record['macs']:,} MACs, "
              f"{record['train_time_s']:.1f}s training ({record['train_images_per_s']:.0f} img/s)"
              + (f" [{record['error']}]" if record["error"] else ""))
    return 0 if record["status"] == "ok" else 1


def _write_outputs(out: Path, record: dict) -> None:
    import pandas as pd

    from mixerlab.results import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "record.json", json.dumps(record, default=str, indent=2))
    atomic_write_text(out / "history.csv", pd.DataFrame(record["history"]).to_csv(index=False))
