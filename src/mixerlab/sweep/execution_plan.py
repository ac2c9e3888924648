"""Each configuration's way to run, measured once per study: ``<study>/execution.json``.

A way (:class:`~mixerlab.execution.Execution`) is chosen per configuration, i.e. per model
and batch size, by timing its candidates on the device its trials use
(:func:`~mixerlab.execution_choice.choose`); every trial of that configuration then runs it: every
seed and nuisance setting, every later round, every session. The file is written before the
first trial starts and read on resume, so a study resumed on another machine runs the way it
started, and the seeds of a configuration are never split between two precisions.

A study folder that already holds records when this is first asked (it ran before ways were
chosen) is marked ``legacy``: its trials keep running as they always did (fp32 on CPU), so an
extended or resumed old study stays comparable with its own records.

Inference throughput is a property of the configuration and its way, not of the seed: only
the trials of the first measured seed time it (``measure_throughput``), the others skip it.
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch

from mixerlab.execution import Execution, ExecutionPins
from mixerlab.execution_choice import choose
from mixerlab.results import atomic_write_text
from mixerlab.sweep.study import Study
from mixerlab.sweep.trials import Trial

FILE = "execution.json"


def key(trial: Trial) -> str:
    """What a way is chosen for: the model and the batch size (not the seed, lr, epochs)."""
    cfg = trial.config
    raw = f"{cfg.model.model_dump_json()}|{cfg.train.batch_size}"
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def trial_device(spec) -> str:
    """The device a spec's trials train on: its ``train.device``, else cuda where it asks for
    GPUs, cpu otherwise (what ``train.pick_device`` finds on a worker Ray gave those)."""
    device = spec.train_config().device
    return device if device != "auto" else ("cuda" if spec.resources.gpu else "cpu")


def measure(trials: list[Trial], pins: ExecutionPins, device: str, cpus: float) -> dict[str, dict]:
    """The way of every configuration among ``trials``, by :func:`key`, with its candidates'
    training images/s; timed with ``cpus`` threads, as a trial runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus)))
    ways = {}
    try:
        for trial in trials:
            k = key(trial)
            if k in ways:
                continue
            cfg, t = trial.config.model, trial.config.train
            way, rates = choose(cfg, t.batch_size, pins, torch.device(device))
            ways[k] = {"variant": cfg.label, "batch_size": t.batch_size,
                       "execution": way.model_dump(), "label": way.label,
                       "rates": {name: round(r, 1) for name, r in rates.items()}}
    finally:
        torch.set_num_threads(threads)
    return ways


def load(study: Study) -> dict | None:
    path = study.path / FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        from mixerlab.errors import ConfigError

        raise ConfigError(f"{path}: unreadable ({err}); it holds the way each configuration runs. "
                          "Delete it to measure again (only if no trial has run)") from None


def ensure(study: Study, trials: list[Trial], pins: ExecutionPins, timer) -> dict:
    """The study's ways, with any configuration of ``trials`` not yet in them measured by
    ``timer(trials) -> ways`` and saved (atomically) before a trial runs."""
    saved = load(study)
    if saved is None:
        saved = {"legacy": bool(study.records()), "pins": pins.model_dump(), "ways": {}}
    if saved["legacy"]:
        if not (study.path / FILE).exists():
            atomic_write_text(study.path / FILE, json.dumps(saved, indent=1))
        return saved
    missing = [t for t in trials if key(t) not in saved["ways"]]
    if missing:
        if not pins.all_pinned:
            print(f"timing the ways to run {len({key(t) for t in missing})} configuration(s)",
                  file=sys.stderr)
        saved["ways"].update(timer(missing))
        atomic_write_text(study.path / FILE, json.dumps(saved, indent=1))
    return saved


def assign(trials: list[Trial], saved: dict | None, first_seed: int) -> list[Trial]:
    """``trials`` with their configuration's way set, and inference timed by the first seed
    only. Legacy studies (or none saved) get them unchanged."""
    if not saved or saved["legacy"]:
        return trials
    out = []
    for trial in trials:
        way = Execution.model_validate(saved["ways"][key(trial)]["execution"])
        t = trial.config.train
        train = t.model_copy(update={"execution": way,
                                     "measure_throughput": t.measure_throughput and
                                     trial.config.seed == first_seed})
        out.append(Trial(trial.trial_id, trial.config.model_copy(update={"train": train}), trial.extra))
    return out
