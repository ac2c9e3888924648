"""Resumable trial state in a directory: written atomically after every epoch."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from mixerlab.config import HOW_FIELDS, TrialConfig
from mixerlab.errors import ConfigError

_LATER_MODEL_FACTORS = {"layout": "isotropic", "stem": "patch", "channel_mlp_ratio": None,
                        "downsample": "conv3"}
# The streamed path's fields (issue 22); ``workers`` never changes a result (each sample's
# augmentation is seeded by itself, data/stream_loader.py), so it is never hashed.
_LATER_DATA_FIELDS = {"split_per_seed": False, "stream": None, "memory_budget_gb": 16.0,
                      "randaugment": None, "random_erasing": 0.0, "crop_pct": None}
# WSD and budget ladders: every committed trial has them at these defaults.
_LATER_TRAIN_FIELDS = {"precise_bn": 0, "cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt",
                       "budgets": None}


def config_hash(cfg: TrialConfig, *, with_seed: bool = True) -> str:
    """Stable id of a trial configuration (what it computes, not where it runs).

    ``with_seed=False``: the id the seeds of one configuration share (trackers group by it).
    """
    d = cfg.model_dump(mode="json")
    if not with_seed:
        d.pop("seed")
    d["data"].pop("data_dir", None)
    d["data"].pop("workers", None)  # how fast, not what: see _LATER_DATA_FIELDS
    # Factors added after studies were committed are hashed only when set, so a default
    # configuration keeps the id (and the finished record) it had before they existed.
    for part, later in (("model", _LATER_MODEL_FACTORS), ("data", _LATER_DATA_FIELDS),
                        ("train", _LATER_TRAIN_FIELDS)):
        for k, default in later.items():
            if d[part].get(k) == default:
                d[part].pop(k)
    for k in HOW_FIELDS:
        d["train"].pop(k, None)
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def save_state(state: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    # weights_only: a checkpoint holds tensors, numbers, strings and lists, never code.
    return torch.load(path, map_location="cpu", weights_only=True)


class DirCheckpoint:
    """Save after each epoch into ``DIR/checkpoint.pt``; ``load()`` resumes the same config."""

    def __init__(self, directory: str | os.PathLike, cfg: TrialConfig):
        self.path = Path(directory) / "checkpoint.pt"
        self.key = config_hash(cfg)

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        state = load_state(self.path)
        if state.get("config_hash") != self.key:
            raise ConfigError(
                f"{self.path} holds a checkpoint of a different configuration; "
                "use another --out directory or delete that file to start afresh"
            )
        return state

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_state({**state, "config_hash": self.key}, self.path)
