"""How many trials run at once: whether one trial fits, and the number of concurrent slots.

One owner for the run (Ray's cluster resources) and the dry run's estimate (this machine's
cores and GPUs), so the two count alike.
"""

from __future__ import annotations

import os

from mixerlab.errors import ConfigError


def machine_resources(gpu: float) -> dict[str, float]:
    """This machine's CPUs, and its CUDA devices where a trial asks for a GPU (as Ray counts)."""
    total: dict[str, float] = {"CPU": os.cpu_count() or 1}
    if gpu:
        import torch

        total["GPU"] = torch.cuda.device_count()
    return total


def check_fits(spec_path, resources, total: dict[str, float]) -> None:
    """One trial's ``resources`` must fit the cluster's ``total``, or nothing would ever start."""
    cpu, gpu = resources.cpu, resources.gpu
    if cpu > total.get("CPU", 0) or gpu > total.get("GPU", 0):
        raise ConfigError(
            f"{spec_path}: resources: a trial asks for {cpu} CPU and {gpu} GPU but the cluster has "
            f"{total.get('CPU', 0):g} CPU and {total.get('GPU', 0):g} GPU; lower 'resources'")


def concurrent_slots(total: dict[str, float], resources, limit: int | None, n_trials: int) -> int:
    """Trials at a time: as many as ``total`` holds of one trial's ``resources``, at most
    ``limit`` (when set) and ``n_trials``, at least one."""
    slots = int(total.get("CPU", 1) // resources.cpu)
    if resources.gpu:
        slots = min(slots, int(total.get("GPU", 0) // resources.gpu))
    return max(1, min(slots, limit or slots, n_trials))
