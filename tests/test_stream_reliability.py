"""The streamed data path under a real fault: a study on the embedded local Ray, its driver
killed mid-trial (the whole process session, like a power cut), the same command again.

The data set is an ImageFolder tree of real JPEG files (synthetic images, written by PIL)
with ``memory_budget_gb`` so low that the path is chosen streamed by size, so the driver
prints the one-line notice and every trial decodes its batches from the files. The fault,
the waits and the checks are test_reliability's own (imported, not copied); the scenario
appends its row to the fault table of ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_reliability import (  # noqa: F401  (_end_started_sessions: autouse, ends our sessions)
    Sweep,
    _end_started_sessions,
    assert_complete,
    assert_resumed,
    figure,
    ray_known_checkpoints,
    record_bytes,
    sweep,
    wait_for,
)
from test_stream import write_tree

from mixerlab.sweep.runner import prepare

# 3 classes x (20 train + 4 test) JPEGs of 16 px; 8 epochs of 1 batch-step per 16 images:
# each trial reports and checkpoints 7 times, so the kill lands between two of them.
SPEC = """\
name: streamkill
question: Does a streamed study survive a killed driver?
dataset: {{name: imagefolder, data_dir: {data}, memory_budget_gb: 0.00001, val_fraction: 0.25}}
train: {{epochs: 8, batch_size: 16, measure_throughput: false}}
model: {{depth: 1, width: 16}}
grid: {{mixer: [conv, identity], patch_size: [4]}}
seeds: 2
resources: {{cpu: 1}}
execution: {{precision: fp32, memory_format: channels_last, attention_kernel: fused}}
"""


def streamed_unfinished(study: Path) -> dict[str, int]:
    """Trials Ray's saved experiment state would resume from a checkpoint: killed now, they
    continue mid-training on the streamed loader."""
    return {t: e for t, e in ray_known_checkpoints(study).items() if t not in record_bytes(study)}


@pytest.mark.slow
def test_streamed_study_killed_mid_trial_resumes_every_trial_once(tmp_path, run_cli):
    data = write_tree(tmp_path / "tree", {"train": 20, "test": 4}, fmt="jpg")
    spec = tmp_path / "streamkill.yaml"
    spec.write_text(SPEC.format(data=data))
    planned = [t.trial_id for t in prepare(spec)[2].trials]  # ids depend on the data's shape
    results, study = tmp_path / "results", tmp_path / "results" / "streamkill"

    first = Sweep(spec, "--results", results, log=tmp_path / "first")
    wait_for(lambda: streamed_unfinished(study), 120, "Ray's snapshot named a checkpoint of an "
             "unfinished trial", first)
    first.kill_session()
    notices = [line for line in first.stderr.splitlines() if line.startswith("dataset imagefolder:")]
    assert len(notices) == 1 and "streamed from" in notices[0] and \
        "over dataset.memory_budget_gb" in notices[0], first.stderr[-3000:]
    before = record_bytes(study)
    resumable = streamed_unfinished(study)
    assert resumable and len(before) < len(planned), "the kill came after the study had finished"

    again = sweep(spec, "--results", results, log=tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    trials = assert_complete(study, planned)
    assert set(trials["data_path"]) == {"stream"}, trials["data_path"]
    after = record_bytes(study)
    for tid, content in before.items():  # finished trials were not trained again
        assert after[tid] == content, f"trial {tid} finished before the kill but was re-run"
    for tid, epoch in resumable.items():  # cut trials continued from their checkpoint
        assert_resumed(after[tid], epoch, tid)
        assert json.loads(after[tid])["data_path"] == "stream"

    code, out, err = run_cli("analyze", study)
    assert code == 0, err
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and "streamkill" in report.read_text(), out
    figure("driver killed (streamed data)", faults=1, planned=planned, study=study,
           recovery_s=again.seconds, note=f"ImageFolder JPEGs streamed by the memory budget; "
           f"{len(before)} record(s) kept byte-identical; {len(resumable)} trial(s) resumed "
           "from a checkpoint")
