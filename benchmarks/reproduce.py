"""Does a committed trial reproduce? Re-run it with today's code and compare with its record.

    python benchmarks/reproduce.py results/layout_merge                  # one trial per stage
    python benchmarks/reproduce.py results/layout_merge 9a1b2c3d4e5f ... # these trials
    python benchmarks/reproduce.py results/budget_long --epochs 2        # the first 2 epochs

The study's spec (``results/<name>/spec.yaml``, the one it ran) is expanded again with every
round the driver planned (``rounds.json``), so each trial gets the configuration its id was
made from; a changed spec or code that makes another id is refused by that expansion. Each
trial is trained again by ``mixerlab.train.train`` with the threads and the way to run
(precision, layout, attention kernel) its record names (fp32 for a record without them), without
Ray, and its test accuracy and final validation accuracy are printed beside the record's. On
CPU with the same thread count the arithmetic is the same, so the figures must be equal (not
merely close); a difference says the code that trains changed. Figures only, no test: a
trial takes minutes.

``--epochs N`` re-runs only the first N epochs of each trial (its schedule unchanged: the lr
of a one-cycle run depends on the whole length) and compares epoch N's validation accuracy
and training loss with the record's history: a check of a long trial (30 epochs: 25 minutes)
in a fraction of its time, of the same arithmetic and data order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mixerlab.errors import ConfigError
from mixerlab.execution import from_record
from mixerlab.sweep import rounds
from mixerlab.sweep.runner import prepare
from mixerlab.sweep.study import Study
from mixerlab.train import train


def pick(records: dict[str, dict], asked: list[str]) -> list[str]:
    """The asked ids, or the first finished trial of each stage (in id order)."""
    if asked:
        missing = [t for t in asked if t not in records]
        if missing:
            raise ConfigError(f"no record for {', '.join(missing)}; see records/ for the study's trial ids")
        return asked
    first: dict[str, str] = {}
    for tid in sorted(records):
        if records[tid].get("status") == "ok":
            first.setdefault(str(records[tid].get("stage", "all")), tid)
    return list(first.values())


class _Enough(Exception):
    """Raised after the epochs asked for: the prefix has been trained."""


def prefix(cfg, data, epochs: int) -> dict:
    """The history row of epoch ``epochs`` of ``cfg``, trained with its full schedule."""
    rows = []

    def stop(row, state):
        rows.append(row)
        if len(rows) >= epochs:
            raise _Enough

    try:
        train(cfg, data=data, on_epoch=stop)
    except _Enough:
        pass
    return rows[-1]


def main(folder: str, asked: list[str], epochs: int | None = None) -> int:
    path = Path(folder)
    records = {p.stem: json.loads(p.read_text()) for p in sorted((path / "records").glob("*.json"))}
    if not records:
        raise ConfigError(f"{path}: no records/ here; give a study folder (results/<name>)")
    spec, data, plan = prepare(path / "spec.yaml")
    rounds.restore(plan, Study(path))  # the trials later rounds added
    by_id = {t.trial_id: t for t in plan.trials}
    what = ("test", "val") if epochs is None else (f"val@{epochs}", f"loss@{epochs}")
    print(f"{'trial':<14}{'stage':<9}{'seed':>5}  {what[0] + ' (record)':>16}{what[0] + ' (now)':>14}  "
          f"{what[1] + ' (record)':>16}{what[1] + ' (now)':>14}  same")
    same_all = True
    for tid in pick(records, asked):
        rec = records[tid]
        cfg = by_id[tid].config
        # The threads and the way it ran (precision, layout, kernel) as recorded: a record made
        # before ways were chosen ran fp32, and runs fp32 again.
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={
            "threads": rec.get("threads"), "execution": from_record(rec)})})
        if epochs is None:
            now = train(cfg, data=data)
            pairs = [(rec["test_acc"], now["test_acc"]), (rec["val_acc"], now["val_acc"])]
        else:
            if not 0 < epochs <= len(rec.get("history") or []):
                raise ConfigError(f"--epochs {epochs}: trial {tid}'s record has "
                                  f"{len(rec.get('history') or [])} epochs of history; pass 1 to that")
            was, now = rec["history"][epochs - 1], prefix(cfg, data, epochs)
            pairs = [(was["val_acc"], now["val_acc"]), (was["train_loss"], now["train_loss"])]
        same = all(a == b for a, b in pairs)
        same_all &= same
        print(f"{tid:<14}{str(rec.get('stage', '-')):<9}{rec['seed']:>5}  {pairs[0][0]:>16.4f}"
              f"{pairs[0][1]:>14.4f}  {pairs[1][0]:>16.4f}{pairs[1][1]:>14.4f}  {'yes' if same else 'NO'}")
    return 0 if same_all else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", help="the study folder (results/<name>)")
    p.add_argument("trials", nargs="*", help="trial ids (default: the first finished of each stage)")
    p.add_argument("--epochs", type=int, help="re-run only the first N epochs of each trial")
    args = p.parse_args()
    try:
        sys.exit(main(args.study, args.trials, args.epochs))
    except ConfigError as err:
        print(f"reproduce: error: {err}", file=sys.stderr)
        sys.exit(2)
