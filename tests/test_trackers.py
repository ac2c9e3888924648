"""Experiment trackers (``mixerlab sweep --log``), checked by reading back what they wrote.

One real sweep per module (synthetic data, 3 configurations x 2 seeds, 2 epochs, capacity
matched, one configuration diverging) logs to TensorBoard, MLflow and W&B at once, offline,
into its temporary folder; the tests read the runs back with each tool's own reader
(TensorBoard's EventAccumulator, ``mlflow.search_runs``, W&B's protobuf records of the
offline run file) and compare them with the study's records. Nothing is mocked; the missing
package is a real failing import.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

SPEC = """\
name: trk
question: Do the trackers hold every trial, grouped by configuration?
dataset: {name: synthetic, synthetic_size: 64}
train: {epochs: 2, batch_size: 32}
model: {depth: 1, width: 16, patch_size: 7}
configs: [{mixer: conv}, {mixer: identity}, {mixer: conv, lr: 1.0e+30, grad_clip: null}]
match: {by: params, reference: {mixer: conv, width: 16}, tolerance: 0.05}
seeds: 2
resources: {cpu: 1}
"""
SERIES = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s")
FINALS = ("params", "macs", "flops", "test_acc", "train_images_per_s", "infer_images_per_s")


def finals(rec: dict) -> list[str]:
    """The final metrics a record holds: inference throughput is timed once per configuration
    (its first seed, 0 here) and is NaN, so never logged, for the others."""
    assert math.isfinite(rec["infer_images_per_s"]) == (rec["seed"] == 0), rec["seed"]
    return [k for k in FINALS if math.isfinite(rec[k])]


def _env(tmp: Path) -> dict:
    """Offline and local: no tracking server, no W&B account, nothing under $HOME."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WANDB_", "MLFLOW_"))}
    env.update(WANDB_CONFIG_DIR=str(tmp / "wandb-config"), WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
               WANDB_DATA_DIR=str(tmp / "wandb-data"))
    return env


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from mixerlab.sweep.runner import prepare
    from mixerlab.sweep.trials import group_id

    tmp = tmp_path_factory.mktemp("trackers")
    spec = tmp / "trk.yaml"
    spec.write_text(SPEC)
    proc = subprocess.run(
        [sys.executable, "-m", "mixerlab", "sweep", spec, "--results", tmp / "results",
         "--log", "tensorboard", "--log", "mlflow", "--log", "wandb"],
        capture_output=True, text=True, timeout=300, env=_env(tmp))
    assert proc.returncode == 0, proc.stderr
    path = tmp / "results" / "trk"
    records = {json.loads(f.read_text())["trial_id"]: json.loads(f.read_text())
               for f in (path / "records").glob("*.json")}
    groups = {t.trial_id: group_id(t) for t in prepare(spec)[2].trials}
    return {"tmp": tmp, "path": path, "spec": spec, "stderr": proc.stderr, "records": records,
            "groups": groups}


# -- readers: each tool's own ---------------------------------------------------------------
def tensorboard_runs(root: Path) -> dict:
    """trial id -> {group, scalars: tag -> [(step, value)], hparams, group_name, status}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.util import tensor_util

    runs = {}
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
        acc.Reload()
        scalars = {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                         for e in acc.Tensors(tag)]
                   for tag in acc.Tags()["tensors"] if not tag.startswith("_hparams_")}
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(
            content[metadata.SESSION_START_INFO_TAG])
        end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
        hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
        runs[folder.name] = {"group": folder.parent.name, "scalars": scalars, "hparams": hparams,
                             "group_name": start.group_name,
                             "status": api_pb2.Status.Name(end.status)}
    return runs


def mlflow_runs(uri: str, experiment: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment])


def wandb_records(path: Path):
    """The protobuf records of an offline run file, ``run-<id>.wandb``.

    wandb 0.31 has no Python reader for it any more (the internal datastore moved to its Go
    core), so this reads the container itself: a 7-byte header (``:W&B``, magic, version),
    then LevelDB-log blocks of 32 KiB whose chunks (CRC, length, type) carry serialized
    ``wandb_internal_pb2.Record`` messages, decoded with wandb's own protobuf classes.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def wandb_runs(root: Path) -> dict:
    """trial id -> {id, group, name, tags, config, history: key -> [(step, value)], summary,
    exit_code}, from the offline run folders under ``root``."""
    runs = {}
    for file in sorted(root.glob("offline-run-*/run-*.wandb")):
        run = {"history": {}, "summary": {}}
        for rec in wandb_records(file):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run.update(id=rec.run.run_id, group=rec.run.run_group, name=rec.run.display_name,
                           tags=list(rec.run.tags), project=rec.run.project,
                           config={i.key: json.loads(i.value_json) for i in rec.run.config.update})
            elif kind == "history":
                items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                         for i in rec.history.item}
                for key, value in items.items():
                    if not key.startswith("_"):
                        run["history"].setdefault(key, []).append((items["_step"], value))
            elif kind == "summary":
                for i in rec.summary.update:
                    run["summary"][i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
            elif kind == "exit":
                run["exit_code"] = rec.exit.exit_code
        runs[run["config"]["trial_id"]] = run
    return runs


# -- the sweep's runs -----------------------------------------------------------------------
def test_the_sweep_says_where_each_tracker_writes(study):
    err = study["stderr"]
    trackers = study["path"] / "trackers"
    assert f"--log tensorboard: {trackers / 'tensorboard'}" in err
    assert f"--log mlflow: sqlite:///{trackers / 'mlflow' / 'mlflow.db'} experiment trk" in err
    assert "--log wandb: offline project trk" in err and "no WANDB_API_KEY" in err
    statuses = sorted(r["status"] for r in study["records"].values())
    assert statuses == ["diverged", "diverged", "ok", "ok", "ok", "ok"]


def test_tensorboard_holds_a_run_per_trial_in_its_configurations_folder(study):
    runs = tensorboard_runs(study["path"] / "trackers" / "tensorboard")
    groups = study["groups"]
    assert {tid: run["group"] for tid, run in runs.items()} == groups
    assert sorted(list(groups.values()).count(g) for g in set(groups.values())) == [2, 2, 2]
    for tid, rec in study["records"].items():
        run = runs[tid]
        assert run["group_name"] == groups[tid]
        history = rec["history"]
        for tag in SERIES:  # every epoch the record holds, at step = epoch
            assert run["scalars"].get(tag, []) == [
                (h["epoch"], pytest.approx(h[tag])) for h in history if math.isfinite(h[tag])], tag
        hp = run["hparams"]
        assert hp["status"] == rec["status"] and hp["seed"] == rec["seed"]
        assert hp["width"] == rec["width"] == rec["match_width"] and hp["match_by"] == "params"
        assert hp["lr"] == rec["lr"] and hp["mixer"] == rec["mixer"]
        if rec["status"] == "ok":
            assert run["status"] == "STATUS_SUCCESS"
            for tag in finals(rec):  # exact: written in double precision
                assert run["scalars"][tag] == [(len(history), rec[tag])], tag
        else:
            assert run["status"] == "STATUS_FAILURE" and "test_acc" not in run["scalars"]


def test_mlflow_holds_a_run_per_trial_tagged_with_its_group(study):
    uri = f"sqlite:///{study['path'] / 'trackers' / 'mlflow' / 'mlflow.db'}"
    runs = mlflow_runs(uri, "trk").set_index("tags.trial_id")
    records, groups = study["records"], study["groups"]
    assert sorted(runs.index) == sorted(records)
    assert runs["tags.group"].to_dict() == groups
    assert sorted(runs["tags.group"].value_counts()) == [2, 2, 2]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    for tid, rec in records.items():
        run = runs.loc[tid]
        for key in ("mixer", "width", "match_by", "match_width", "match_params",
                    "match_channel_mlp_ratio", "lr", "grad_clip", "epochs", "seed", "dataset"):
            assert run[f"params.{key}"] == str(rec[key]), key
        assert run["tags.status"] == rec["status"]
        assert run["tags.mlflow.runName"].endswith(f"seed {rec['seed']}")
        assert f"w{rec['width']}" in run["tags.mlflow.runName"]
        history = client.get_metric_history(run["run_id"], "val_acc")
        assert [(m.step, m.value) for m in history] == [
            (h["epoch"], pytest.approx(h["val_acc"])) for h in rec["history"]]
        if rec["status"] == "ok":
            assert run["status"] == "FINISHED"
            for key in finals(rec):
                assert run[f"metrics.{key}"] == pytest.approx(rec[key]), key
        else:
            assert run["status"] == "FAILED" and "loss became" in run["tags.mlflow.note.content"]
            assert math.isnan(run["metrics.test_acc"])  # never logged: not measured


def test_wandb_offline_runs_are_grouped_by_configuration(study):
    runs = wandb_runs(study["path"] / "trackers" / "wandb")
    records, groups = study["records"], study["groups"]
    assert {tid: run["group"] for tid, run in runs.items()} == groups
    for tid, rec in records.items():
        run = runs[tid]
        assert run["project"] == "trk" and run["tags"] == [rec["status"]]
        assert run["id"].startswith(tid) and run["name"].endswith(f"seed {rec['seed']}")
        for key in ("mixer", "width", "match_by", "match_width", "lr", "seed", "status"):
            assert run["config"][key] == rec[key], key
        assert run["history"]["val_acc"] == [
            (h["epoch"], pytest.approx(h["val_acc"])) for h in rec["history"]]
        assert run["summary"]["status"] == rec["status"]
        if rec["status"] == "ok":
            assert run["exit_code"] == 0
            for key in finals(rec):
                assert run["summary"][key] == pytest.approx(rec[key]), key
        else:
            assert run["exit_code"] == 1 and "test_acc" not in run["summary"]


# -- catching up, replacing, and an ASHA-stopped trial --------------------------------------
def test_catch_up_logs_each_record_once_and_a_stopped_trial_is_labelled(study, tmp_path,
                                                                         monkeypatch):
    """A new destination gets every record once (what a re-run with --log does for a
    finished study); a record logged again replaces the trial's run; a trial ASHA stopped,
    built by the sweep's own builder, is labelled ``stopped`` everywhere."""
    from mixerlab.sweep.runner import prepare
    from mixerlab.sweep.stopped import stopped_record
    from mixerlab.trackers import make_trackers

    records, groups = study["records"], study["groups"]
    for key, value in _env(tmp_path).items():
        if key.startswith("WANDB_"):
            monkeypatch.setenv(key, value)
    # MLflow: the sweep's own store (an existing database, as a tracking server would be) and
    # another experiment in it, which is another destination
    uri = f"sqlite:///{study['path'] / 'trackers' / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "trk-again")
    ledger = study["path"] / "trackers" / "logged.jsonl"
    hub = make_trackers(["tensorboard", "mlflow", "wandb"], study["path"], "trk", groups,
                        log_dir=tmp_path / "logs")
    try:
        hub.catch_up(records)
        lines = ledger.read_text().splitlines()
        assert len(lines) == 2 * 3 * len(records)  # the sweep's logs and these
        hub.catch_up(records)  # nothing new: the ledger says every record is there
        assert ledger.read_text().splitlines() == lines

        ok = next(t for t in prepare(study["spec"])[2].trials
                  if records[t.trial_id]["status"] == "ok")
        last = records[ok.trial_id]["history"][0]
        stopped = stopped_record(ok, last, study_name="trk")  # what StudyCallback saves, then logs
        assert hub.log(stopped) == 3
    finally:
        hub.close()
    tid, logs = ok.trial_id, tmp_path / "logs"

    tb = tensorboard_runs(logs / "tensorboard")
    assert len(tb) == len(records) and tb[tid]["hparams"]["status"] == "stopped"
    assert tb[tid]["status"] == "STATUS_UNKNOWN" and "test_acc" not in tb[tid]["scalars"]
    assert tb[tid]["scalars"]["params"] == [(0, records[tid]["params"])]

    ml = mlflow_runs(uri, "trk-again")
    assert len(ml) == len(records) and ml["tags.trial_id"].is_unique  # replaced, not added
    run = ml.set_index("tags.trial_id").loc[tid]
    assert run["status"] == "KILLED" and run["tags.status"] == "stopped"
    assert run["tags.group"] == groups[tid] and "ASHA" in run["tags.mlflow.note.content"]
    assert run["metrics.val_acc"] == pytest.approx(last["val_acc"])
    assert len(mlflow_runs(uri, "trk")) == len(records)  # the sweep's experiment untouched

    wb = wandb_runs(logs / "wandb")
    assert len(wb) == len(records) and len(list(logs.glob(f"wandb/*{tid}*"))) == 1
    assert wb[tid]["tags"] == ["stopped"] and wb[tid]["exit_code"] == 0
    assert wb[tid]["group"] == groups[tid] and wb[tid]["summary"]["status"] == "stopped"


# -- a missing package ----------------------------------------------------------------------
def test_a_missing_tracker_package_is_one_line_and_nothing_is_written(tmp_path):
    # A real failing import: a folder first on the path whose mlflow raises what Python
    # raises for a package that is not installed.
    fake = tmp_path / "shadow" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'mlflow'\", name='mlflow')\n")
    spec = tmp_path / "trk.yaml"
    spec.write_text(SPEC)
    env = {**_env(tmp_path), "PYTHONPATH": str(tmp_path / "shadow")}
    proc = subprocess.run(
        [sys.executable, "-m", "mixerlab", "sweep", spec, "--results", tmp_path / "results",
         "--log", "tensorboard", "--log", "mlflow"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mixerlab sweep: error: --log mlflow needs the mlflow package: "
        "pip install 'mixerlab[mlflow]'"]
    assert not (tmp_path / "results").exists()
