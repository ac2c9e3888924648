"""The streamed data path under a real fault: a study on the embedded local Ray, its driver
killed mid-trial (the whole process session, like a power cut), the same command again.

The data set is an ImageFolder tree of real JPEG files (synthetic images, written by PIL)
with ``memory_budget_gb`` so low that the path is chosen streamed by size, so the driver
prints the one-line notice and every trial decodes its batches from the files. The scenario
is ``fault_scenarios.streamed_driver_killed`` (its row of ``benchmarks/reliability.py``'s
table comes from the same function); the checks are test_reliability's own (imported, not
copied).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_reliability import (  # noqa: F401  (_end_started_sessions: autouse, ends our sessions)
    _end_started_sessions,
    assert_complete,
    assert_resumed,
    assert_untouched,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the scenarios' home

import fault_scenarios as fs  # noqa: E402
from fault_tools import record_bytes  # noqa: E402


@pytest.mark.slow
def test_streamed_study_killed_mid_trial_resumes_every_trial_once(tmp_path, run_cli):
    o = fs.streamed_driver_killed(tmp_path)  # raises if the kill came after the study finished
    study, planned, before, again = o.study, o.planned, o.before, o.again
    notices = [line for line in o.first.stderr.splitlines() if line.startswith("dataset imagefolder:")]
    assert len(notices) == 1 and "streamed from" in notices[0] and \
        "over dataset.memory_budget_gb" in notices[0], o.first.stderr[-3000:]

    assert again.returncode == 0, again.stderr[-3000:]
    trials = assert_complete(study, planned)
    assert set(trials["data_path"]) == {"stream"}, trials["data_path"]
    after = record_bytes(study)
    assert_untouched(before, after)
    for tid, epoch in o.resumable.items():  # cut trials continued from their checkpoint
        assert_resumed(after[tid], epoch, tid)
        assert json.loads(after[tid])["data_path"] == "stream"

    code, out, err = run_cli("analyze", study)
    assert code == 0, err
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and "streamkill" in report.read_text(), out
