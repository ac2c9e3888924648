"""Ablation sweeps: specs, trial expansion, and the Ray Tune runner."""

from mixerlab.sweep.spec import Spec, load_spec
from mixerlab.sweep.trials import Plan, Trial, expand

__all__ = ["Plan", "Spec", "Trial", "expand", "load_spec"]
