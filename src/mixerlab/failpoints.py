"""Failpoints: named places where the reliability tests kill the process for real.

``MIXERLAB_FAILPOINTS=name[,name...]`` makes :func:`failpoint` send SIGKILL to the current
process when execution reaches that name, e.g. ``tables:before-rename`` kills the driver
between writing a results table and renaming it into place. Unset (always, outside the
tests), a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    if name in os.environ.get("MIXERLAB_FAILPOINTS", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
