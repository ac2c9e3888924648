"""What a study will cost before it runs: the dry run's time estimate.

Each scientific configuration's training step and forward pass are timed for a few batches
on this machine, one thread per trial as a trial runs, and turned into seconds per trial:

    trial_s = CONTENTION x (train images x epochs) / training rate
              + (validation images x epochs + test images + throughput images) / inference rate
              + START_S

Training steps are timed alone, but a sweep runs trials side by side and they share the
memory bus: CONTENTION is the ratio of the training time the trials of results/quick
recorded (two at a time, 601.8 s in all) to what these timings predicted for them alone
(492 s). The wall time is the trial seconds shared among the concurrent slots. Every sweep
records this estimate beside its real wall time in provenance.json (``estimate_wall_s``),
so the estimate is checked on every study.
"""

from __future__ import annotations

import torch

from mixerlab.config import TrainConfig
from mixerlab.measure import benchmark_inference, benchmark_training
from mixerlab.models import create_model

CONTENTION = 1.22  # results/quick: recorded train_time_s / estimated, two trials at a time
START_S = 2.0  # per trial: fetch the data from the object store, build the model, count MACs
THROUGHPUT_IMAGES = 7 * 2 * 256  # mixerlab.train's inference timing (repeats x iters x batch)


def estimate_trials(plan, data, train_overrides: dict, cpus: float) -> list[float]:
    """Seconds per scientific configuration, summed over its nuisance settings (one seed)."""
    n_train, n_val, n_test = len(data.train_y), len(data.val_y), len(data.test_y)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cpus)))  # as a trial will run
    rates: dict = {}
    try:
        out = []
        for cfg, recipe in zip(plan.configs, plan.recipes):
            seconds = 0.0
            for setting in plan.nuisance:
                t = TrainConfig.model_validate({**train_overrides, **recipe, **setting})
                # Nuisance settings that change neither the model nor the batch reuse one timing.
                key = (cfg.model_dump_json(), t.batch_size)
                if key not in rates:
                    model = create_model(cfg)
                    shape = (cfg.in_chans, cfg.image_size, cfg.image_size)
                    train = benchmark_training(model, shape, num_classes=cfg.num_classes,
                                               batch_size=t.batch_size, warmup=1, repeats=2, iters=1,
                                               channels_last=t.channels_last)
                    infer = benchmark_inference(model, shape, batch_size=t.eval_batch_size, warmup=1,
                                                repeats=2, iters=1, channels_last=t.channels_last)
                    rates[key] = (train["train_step_images_per_s"], infer["infer_images_per_s"])
                train_rate, infer_rate = rates[key]
                seconds += (CONTENTION * n_train * t.epochs / train_rate
                            + (n_val * t.epochs + n_test + THROUGHPUT_IMAGES) / infer_rate + START_S)
            out.append(seconds)
        return out
    finally:
        torch.set_num_threads(threads)


def wall_seconds(per_config: list[float], seeds: int, slots: int) -> float:
    """Estimated wall time: every trial's seconds shared among ``slots`` concurrent trials."""
    return sum(per_config) * seeds / max(1, slots)
