"""How many decoding processes a trial's streamed loader gets: one rule for the trial (the
engine), the spec check (``--dry-run``) and the sweep's packing of trials by CPUs."""

from __future__ import annotations

from mixerlab.errors import ConfigError


def loader_workers(requested: int | None, cpus: float) -> int:
    """The streamed path's decoding processes in a trial of ``cpus`` CPUs.

    The rule: the training step keeps one CPU and the workers get the rest, so a trial's
    processes never outnumber the CPUs Ray reserved for it (Ray packs trials by
    ``resources.cpu``). Unset, that is ``cpus - 1`` (0 on one CPU: the training process
    decodes); asking for more is an error rather than a silent oversubscription.
    """
    room = max(0, int(cpus) - 1)
    if requested is None:
        return room
    if requested > room:
        raise ConfigError(f"dataset.workers: {requested} loader worker(s) and the training step need "
                          f"{requested + 1} CPUs, but a trial has {cpus:g}; raise resources.cpu to "
                          f"{requested + 1} or lower dataset.workers to {room}")
    return requested
