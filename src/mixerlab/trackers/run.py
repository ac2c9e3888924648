"""One trial's record, sorted into what every experiment tracker logs about a run.

A record (``records/<trial_id>.json``, see docs/results-schema.md) is flat. Trackers want
it in four parts: the configuration (hyperparameters: every model, data and recipe factor,
the seed, the nuisance values, which are ordinary recipe factors, and the widths capacity
matching solved, ``match_*``), final metrics (size, cost, throughput, accuracies), the
per-epoch history as step series, and labels (status, error, provenance). The split follows
the config classes, not a list of metric names, so a column added to the record later is
logged without touching the trackers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from mixerlab.config import DataConfig, ModelConfig, TrainConfig

_DEFAULT_LAYOUT = ModelConfig.model_fields["layout"].default

# Record columns that describe the configuration. DataConfig's ``name`` is the record's
# ``dataset``; ``data_dir`` is where the data lives, not what was computed.
CONFIG_KEYS = frozenset(
    set(ModelConfig.model_fields) | set(TrainConfig.model_fields)
    | (set(DataConfig.model_fields) - {"name", "data_dir"})
    | {"dataset", "seed", "variant", "pos_embed", "synthetic"})
FAILED_STATUSES = ("error", "oom", "diverged")  # a trial that ended without a result


@dataclass
class TrackedRun:
    trial_id: str
    group: str  # shared by the seeds of one configuration (mixerlab.sweep.trials.group_id)
    study: str
    status: str  # ok, stopped (ASHA), diverged, oom, error
    name: str  # says the configuration and the seed, e.g. "conv p4 d4 w64 lr0.01 seed 1"
    config: dict  # factor -> value (None where a factor does not apply)
    metrics: dict  # final metrics that are not also a history series, all finite
    history: list[dict] = field(default_factory=list)  # per epoch: {"epoch": 1, "val_acc": ...}
    labels: dict = field(default_factory=dict)  # str -> str: status, error, provenance
    started: float | None = None  # UNIX seconds, when the record says
    finished: float | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def last_step(self) -> int:
        """The step final metrics are logged at: the last epoch trained (0 for none)."""
        return int(self.history[-1]["epoch"]) if self.history else 0


def _number(v) -> bool:
    # bool is an int in Python, but True is a label here, not a metric
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    # NaN in a record means "not measured" (no test accuracy for a stopped trial): trackers
    # leave the point out and the status says why.
    return _number(v) and math.isfinite(v)


def _seconds(stamp) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def run_name(record: dict) -> str:
    """Short name for a run: the factors that usually tell configurations apart, and the seed."""
    r = record
    parts = [str(r.get("variant") or r.get("model") or "?")]
    if r.get("layout") not in (None, _DEFAULT_LAYOUT):  # named only when not the default
        parts.append(str(r["layout"]))
    if r.get("stem") == "conv":
        parts.append("conv-stem")
    for key, short in (("patch_size", "p"), ("kernel_size", "k"), ("depth", "d"), ("width", "w")):
        if r.get(key) is not None:
            parts.append(f"{short}{r[key]}")
    if r.get("lr") is not None:
        parts.append(f"lr{r['lr']:g}")
    if r.get("match_by"):
        parts.append(f"{r['match_by']}-matched")
    return " ".join(parts) + f" seed {r.get('seed')}"


def from_record(record: dict, group: str) -> TrackedRun:
    config, metrics, labels = {}, {}, {}
    history = [{k: v for k, v in row.items() if k == "epoch" or _finite(v)}
               for row in record.get("history") or []]
    series = {k for row in history for k in row}
    for key, value in record.items():
        if key == "history":
            continue
        if key in CONFIG_KEYS or key.startswith("match_"):
            config[key] = value
        elif _number(value):
            # a final value that is also a series (val_acc, train_loss) is the series' last
            # point; logging it again would put two values at one step
            if key not in series and _finite(value):
                metrics[key] = value
        elif value is not None and value != "":
            labels[key] = str(value)
    status = str(record.get("status", "error"))
    labels.update(group=group, status=status)
    return TrackedRun(trial_id=str(record["trial_id"]), group=group,
                      study=str(record.get("study", "")), status=status, name=run_name(record),
                      config=config, metrics=metrics, history=history, labels=labels,
                      started=_seconds(record.get("started_at")),
                      finished=_seconds(record.get("finished_at")))
