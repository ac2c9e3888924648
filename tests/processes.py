"""The processes a test started: find the live ones of a session, and end them all.

Tests that start Ray run it in a session of their own (``start_new_session=True``), so they
can end exactly what they started: ``ray stop --force`` would stop every Ray on the machine,
a study running beside the tests included.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, session id) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[3])


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``: a sweep and every Ray process it started."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            st = _stat(int(d))
            if st and st[1] == sid and st[0] != "Z":
                pids.append(int(d))
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_session(sid: int, timeout: float = 30) -> None:
    """SIGKILL every process of a session we started, and wait until they are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"processes of session {sid} survived SIGKILL: {session_pids(sid)}")
