"""TensorBoard: one run folder per trial, ``<root>/<group>/<trial_id>``.

The folder of a configuration holds its seeds, so ``tensorboard --logdir <root>`` lists
them side by side and a run filter on the group selects one configuration. Each run holds
the per-epoch history as scalar series (step = epoch), the final metrics (parameters, MACs,
throughput, test accuracy, ...) at the last epoch trained, and a session of the HParams
plugin: the configuration and ``status`` as hyperparameters, the group as its session group,
and an end status (success; failure for diverged, oom, error; unknown for a trial ASHA
stopped, which TensorBoard has no word for: the ``status`` hyperparameter says ``stopped``).
Scalars are written in double precision, so a parameter count reads back exact.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from mixerlab.trackers.registry import register_tracker
from mixerlab.trackers.run import TrackedRun


def _session_summaries(run: TrackedRun):
    """The HParams plugin's SessionStartInfo and SessionEndInfo as two Summary protos."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(group_name=run.group,
                                             start_time_secs=run.started or time.time())
    for key, value in {**run.config, "status": run.status, "trial_id": run.trial_id}.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[key].number_value = value
        elif isinstance(value, str):
            start.hparams[key].string_value = value
        # None: the factor does not apply to this model; the plugin shows it as empty
    status = ("STATUS_SUCCESS" if run.status == "ok" else
              "STATUS_FAILURE" if run.failed else "STATUS_UNKNOWN")
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(status),
                                         end_time_secs=run.finished or time.time())

    def summary(tag, **data):
        meta = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(**data))
        return Summary(value=[Summary.Value(tag=tag, metadata=meta)])

    return (summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
            summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))


@register_tracker("tensorboard", packages=("tensorboard",), extra="tensorboard")
class TensorBoardTracker:
    def __init__(self, root: Path, study: str):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def destination(self) -> str:
        return str(self.root)

    @property
    def hint(self) -> str:
        return f"view with `tensorboard --logdir {self.root}`"

    def log(self, run: TrackedRun) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = self.root / run.group / run.trial_id
        # A second event file in the folder would merge into the same series: replace the
        # trial's earlier (or half-written) log instead.
        shutil.rmtree(folder, ignore_errors=True)
        writer = SummaryWriter(log_dir=str(folder))
        try:
            start, end = _session_summaries(run)
            writer.file_writer.add_summary(start, 0)

            def scalar(tag, value, step):
                writer.add_scalar(tag, value, step, new_style=True, double_precision=True)

            for row in run.history:
                for key, value in row.items():
                    if key != "epoch":
                        scalar(key, value, row["epoch"])
            for key, value in run.metrics.items():
                scalar(key, value, run.last_step)
            writer.file_writer.add_summary(end, run.last_step)
        finally:
            writer.close()

    def close(self) -> None:
        pass
