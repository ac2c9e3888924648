"""How to run a sweep: the command line's choices, as one object the runner passes around.

Checked when made, so a mistake in them is one line and exit 2 before the spec is read or
anything is written (a dry run checks them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixerlab.errors import ConfigError


@dataclass(frozen=True)
class SweepOptions:
    """``mixerlab sweep``'s options; the spec itself says what to run."""

    results_root: Path = Path("results")  # the study folder is results_root / spec name
    address: str | None = None  # an existing Ray cluster (HOST:PORT), else mixerlab's own Ray
    max_concurrent: int | None = None  # trials at a time (None: as resources allow)
    new_study: bool = False  # the spec changed: move the old study folder aside
    extend: bool = False  # the spec only adds values: keep the finished trials
    retry_failed: bool = False  # run the trials that ended in 'error' or 'oom' again
    log: tuple[str, ...] = ()  # experiment trackers (--log), fed from the records
    log_dir: str | None = None  # where the trackers write (None: <study folder>/trackers)
    command: str = ""  # the command line, kept in provenance.json

    def __post_init__(self) -> None:
        if self.max_concurrent is not None and self.max_concurrent <= 0:
            raise ConfigError(f"--max-concurrent: must be a positive integer (got {self.max_concurrent})")
        if self.log:  # a tracker's missing package: said before the spec is even read
            from mixerlab.trackers import require

            require(self.log)
        elif self.log_dir:
            raise ConfigError("--log-dir: name the tracker(s) too, e.g. --log tensorboard")
