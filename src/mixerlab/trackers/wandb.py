"""Weights & Biases: one run per trial, ``group=`` the configuration, in project = the study.

Tune's ``WandbLoggerCallback`` groups by experiment, not by configuration, and logs from
the trial's worker, so a trial cut by a fault leaves a partial run; here the driver logs the
finished record instead (history included), with ``group`` = the configuration's hash
without the seed, so W&B's grouped view averages the seeds of one configuration.

Mode: ``$WANDB_MODE`` when set; else online when ``$WANDB_API_KEY`` is set, offline when it
is not (said at start): offline runs are folders ``<root>/offline-run-*`` for
``wandb sync`` to upload later. Project: ``$WANDB_PROJECT``, else the study's name
(``$WANDB_ENTITY`` is read by wandb itself). A run holds the configuration and the labels
(trial id, status, provenance) as config, the per-epoch history (step = epoch), the final
metrics in its summary, ``status`` as its tag and the error as its notes; a diverged or
failed trial exits with code 1, which W&B shows as failed.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from mixerlab.trackers.registry import register_tracker
from mixerlab.trackers.run import TrackedRun


@register_tracker("wandb", packages=("wandb",), extra="wandb")
class WandbTracker:
    def __init__(self, root: Path, study: str):
        # wandb writes into a folder "wandb" of the dir it is given: it is given root's
        # parent, so that folder is root itself
        self.root = Path(root).resolve()
        if self.root.name != "wandb":
            self.root = self.root / "wandb"
        self.root.mkdir(parents=True, exist_ok=True)
        self.project = os.environ.get("WANDB_PROJECT") or study
        self.mode = os.environ.get("WANDB_MODE") or (
            "online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.hint = (f"upload with `wandb sync {self.root}/offline-run-*`"
                     if self.mode == "offline" else "")
        if self.mode == "offline" and not os.environ.get("WANDB_MODE"):
            self.hint = "no WANDB_API_KEY, so offline runs: " + self.hint

    @property
    def destination(self) -> str:
        # Offline runs live in the folder; online ones in the project: a key set later makes
        # a new destination, and the next sweep uploads every trial there.
        where = str(self.root) if self.mode == "offline" else os.environ.get("WANDB_ENTITY", "")
        return f"{self.mode} project {self.project} {where}".strip()

    def log(self, run: TrackedRun) -> None:
        import wandb

        # A run id per record: a trial run again (--retry-failed) is a new W&B run, and an
        # uploaded run is never appended to.
        stamp = re.sub(r"\D", "", run.labels.get("finished_at", ""))[:14]
        run_id = f"{run.trial_id}-{stamp}" if stamp else run.trial_id
        for old in self.root.glob(f"offline-run-*-{run.trial_id}*"):
            shutil.rmtree(old, ignore_errors=True)  # an earlier or half-written log of it
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                  disable_git=True, save_code=False, x_save_requirements=False)
        wb = wandb.init(project=self.project, group=run.group, name=run.name, id=run_id,
                        dir=str(self.root.parent), mode=self.mode, job_type="trial",
                        config={**run.config, **run.labels}, tags=[run.status],
                        notes=run.labels.get("error") if run.status != "ok" else None,
                        reinit="create_new", settings=settings)
        try:
            for row in run.history:
                wb.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
            wb.summary.update({**run.metrics, "status": run.status})
        finally:
            wb.finish(exit_code=1 if run.failed else 0)

    def close(self) -> None:
        if "wandb" in sys.modules:  # stop wandb's service process, if a run started it
            sys.modules["wandb"].teardown()
