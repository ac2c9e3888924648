"""Experiment trackers for sweeps (``mixerlab sweep SPEC --log NAME``): one file each,
registered on import; each imports its own package only when used."""

from mixerlab.trackers import mlflow, tensorboard, wandb  # noqa: F401
from mixerlab.trackers.hub import Trackers, make_trackers, publish
from mixerlab.trackers.registry import list_trackers, register_tracker, require
from mixerlab.trackers.run import TrackedRun, from_record

__all__ = ["TrackedRun", "Trackers", "from_record", "list_trackers", "make_trackers", "publish",
           "register_tracker", "require"]
