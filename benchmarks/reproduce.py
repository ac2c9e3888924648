"""Does a committed trial reproduce? Re-run it with today's code and compare with its record.

    python benchmarks/reproduce.py results/layout_merge                  # one trial per stage
    python benchmarks/reproduce.py results/layout_merge 9a1b2c3d4e5f ... # these trials

The study's spec (``results/<name>/spec.yaml``, the one it ran) is expanded again with every
round the driver planned (``rounds.json``), so each trial gets the configuration its id was
made from; a changed spec or code that makes another id is refused by that expansion. Each
trial is trained again by ``mixerlab.train.train`` with the threads its record names, without
Ray, and its test accuracy and final validation accuracy are printed beside the record's. On
CPU with the same thread count the arithmetic is the same, so the figures must be equal (not
merely close); a difference says the code that trains changed. Figures only, no test: a
trial takes minutes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mixerlab.errors import ConfigError
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


def main(folder: str, asked: list[str]) -> int:
    path = Path(folder)
    records = {p.stem: json.loads(p.read_text()) for p in sorted((path / "records").glob("*.json"))}
    if not records:
        raise ConfigError(f"{path}: no records/ here; give a study folder (results/<name>)")
    spec, data, plan = prepare(path / "spec.yaml")
    rounds.restore(plan, Study(path))  # the trials later rounds added
    by_id = {t.trial_id: t for t in plan.trials}
    print(f"{'trial':<14}{'stage':<9}{'seed':>5}  {'test (record)':>14}{'test (now)':>12}  "
          f"{'val (record)':>13}{'val (now)':>11}  same")
    same_all = True
    for tid in pick(records, asked):
        rec = records[tid]
        cfg = by_id[tid].config
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": rec.get("threads")})})
        now = train(cfg, data=data)
        same = now["test_acc"] == rec["test_acc"] and now["val_acc"] == rec["val_acc"]
        same_all &= same
        print(f"{tid:<14}{str(rec.get('stage', '-')):<9}{rec['seed']:>5}  {rec['test_acc']:>14.2f}"
              f"{now['test_acc']:>12.2f}  {rec['val_acc']:>13.2f}{now['val_acc']:>11.2f}  {'yes' if same else 'NO'}")
    return 0 if same_all else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2:]))
    except ConfigError as err:
        print(f"reproduce: error: {err}", file=sys.stderr)
        sys.exit(2)
