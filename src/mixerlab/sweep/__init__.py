"""Ablation sweeps: specs, trial expansion, and the Ray Tune runner."""

from mixerlab.spec import Spec, load_spec
from mixerlab.sweep.options import SweepOptions
from mixerlab.sweep.trials import Arm, Plan, Trial, expand

__all__ = ["Arm", "Plan", "Spec", "SweepOptions", "Trial", "expand", "load_spec"]
