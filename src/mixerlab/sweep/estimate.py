"""What a study will cost before it runs: the dry run's time estimate.

Each scientific configuration's training step and forward pass are timed for a few batches
on this machine, one thread per trial as a trial runs, and turned into seconds per trial:

    trial_s = CONTENTION x (train images x epochs) / training rate
              + (validation images x epochs + test images + throughput images) / inference rate
              + START_S

A budget ladder's trial (``train.budgets``) trains its largest budget's epochs plus every
smaller budget's cool-down branch (``TrainConfig.epochs_trained``: 30 + 2 + 1 for budgets 3,
10, 30), validates after each of them, and is tested (and its throughput timed) once per
budget: those are its ``epochs`` and its test and throughput images above.

Training steps are timed alone, but a sweep runs trials side by side and they share the
memory bus: CONTENTION is the ratio of the training time the trials of results/quick
recorded (two at a time, 601.8 s in all) to what these timings predicted for them alone
(492 s). The wall time is the trial seconds shared among the concurrent slots. Every sweep
records this estimate beside its real wall time in provenance.json (``estimate_wall_s``),
so the estimate is checked on every study.
"""

from __future__ import annotations

import torch

from mixerlab.execution import Execution, of_trial
from mixerlab.measure import benchmark_inference, benchmark_training, count_flops
from mixerlab.models import create_model

CONTENTION = 1.22  # results/quick: recorded train_time_s / estimated, two trials at a time
START_S = 2.0  # per trial: fetch the data from the object store, build the model, count MACs
THROUGHPUT_IMAGES = 7 * 2 * 256  # mixerlab.train's inference timing (repeats x iters x batch)
# Forward MACs of the largest batch the dry run times: ~1 s of a training step on one core.
BATCH_MACS = 1.5e9
TIME_S = 0.5  # seconds of training steps timed per configuration, at least (inference: half)


def estimate_per_trial(plan, data, cpus: float, gpu: float = 0.0, extra=(), *,
                       loader: dict[str, float] | None = None,
                       rates_out: dict | None = None, trials=None,
                       ways: dict | None = None) -> dict[str, float]:
    """Estimated seconds of every trial of ``plan`` (and of the ``extra`` trials), by trial
    id, timed on the device the trials will use (a GPU where they ask for one and this
    machine has one). ``loader``: the streamed path's loader images/s by trial id
    (``sweep/loader_estimate.py``); a trial trains at the slower of it and its model.
    ``rates_out``: filled with each trial's (training, inference) images/s of the model.
    ``trials``: these instead of ``plan.trials`` (set to run their ways: execution_plan.assign).
    ``ways``: the study's ways (execution_plan): a configuration whose way was timed there at
    its batch takes that training rate instead of being timed again."""
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    n_train, n_val, n_test = len(data.train_y), len(data.val_y), len(data.test_y)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus)))  # as a trial will run
    rates: dict = {}
    out = {}
    try:
        for trial in [*(plan.trials if trials is None else trials), *extra]:
            cfg, t = trial.config.model, trial.config.train
            # Trials that differ in neither the model nor the batch (seeds, lr, ...) share a timing.
            way = of_trial(t, torch.device(device))
            key = (cfg.model_dump_json(), t.batch_size, t.eval_batch_size, way)
            if key not in rates:
                try:
                    rates[key] = _rates(cfg, t, device, way, _known_rate(ways, trial, way))
                except Exception:  # noqa: BLE001 - an estimate must never stop a sweep
                    # (a model that fails here fails in its trial, where it is recorded)
                    rates[key] = (float("nan"), float("nan"))
            train_rate, infer_rate = rates[key]
            if rates_out is not None:
                rates_out[trial.trial_id] = rates[key]
            if loader is not None:  # streamed: the workers may deliver fewer images than that
                train_rate = min(train_rate, loader[trial.trial_id])
            timed = THROUGHPUT_IMAGES if t.measure_throughput else 0
            epochs, ends = t.epochs_trained, len(t.ladder)  # a ladder: its branches too
            out[trial.trial_id] = (CONTENTION * n_train * epochs / train_rate
                                   + (n_val * epochs + (n_test + timed) * ends) / infer_rate + START_S)
        return out
    finally:
        torch.set_num_threads(threads)


def _known_rate(ways: dict | None, trial, way: Execution) -> float | None:
    """The training images/s the study's way timing measured for this trial's way, if any."""
    if not ways or ways.get("legacy"):
        return None
    from mixerlab.sweep.execution_plan import key

    return ways["ways"].get(key(trial), {}).get("rates", {}).get(way.label)


def _rates(cfg, t, device, way: Execution, train_rate: float | None = None) -> tuple[float, float]:
    """(training, inference) images/s of one configuration run ``way``, timed for a few batches
    (training only when ``train_rate`` is not already known)."""
    model = way.prepare(create_model(cfg))
    shape = (cfg.in_chans, cfg.image_size, cfg.image_size)
    # A model that costs many MACs per image is timed on fewer images: its rate per image no
    # longer depends on the batch, and the dry run stays short.
    cap = max(8, int(BATCH_MACS // max(1, count_flops(model, shape)["macs"])))
    # Medians of at least 3 steps, and of more for a fast model (up to TIME_S of timing):
    # two single-step samples let one slow step on a shared machine move a study's estimate
    # by a third.
    if train_rate is None:
        train_rate = benchmark_training(
            model, shape, num_classes=cfg.num_classes, batch_size=min(t.batch_size, cap), warmup=1,
            repeats=3, iters=1, min_time_s=TIME_S, channels_last=way.channels_last,
            dtype=way.dtype, device=device)["train_step_images_per_s"]
    infer = benchmark_inference(model, shape, batch_size=min(t.eval_batch_size, cap), warmup=1,
                                repeats=3, iters=1, min_time_s=TIME_S / 2,
                                channels_last=way.channels_last, dtype=way.dtype, device=device)
    return train_rate, infer["infer_images_per_s"]


def estimate_trials(plan, data, cpus: float, gpu: float = 0.0, extra=(), **kw) -> tuple[list[float], list[float]]:
    """Seconds per scientific configuration for one seed, summed over its nuisance settings;
    and the seconds of each ``extra`` trial (a later round's, timed in the same pass).
    ``kw``: ``loader``, ``rates_out``, ``trials``, ``ways`` of :func:`estimate_per_trial`."""
    per_trial = estimate_per_trial(plan, data, cpus, gpu, extra, **kw)
    seeds = len(plan.trials) // max(1, len(plan.arms) * len(plan.nuisance))
    out = []
    for i in range(len(plan.arms)):
        # plan.trials is ordered arm x setting x seed.
        block = plan.trials[i * len(plan.nuisance) * seeds:(i + 1) * len(plan.nuisance) * seeds]
        out.append(sum(per_trial[t.trial_id] for t in block) / max(1, seeds))
    return out, [per_trial[t.trial_id] for t in extra]
