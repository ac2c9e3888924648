"""Which Ray a sweep talks to, and what a wrong ``--address`` or token costs: real Ray, no mocks.

A wrong address (not HOST:PORT, nothing listening, a token refused) exits 2 with one line,
within 30 s, before anything is written. A head started as Ray's docs say
(``ray start --head --port P``) is reached with the token where Ray keeps it, with no other
setting; a sweep without ``--address`` never attaches to that head.

Process hygiene as in test_reliability.py: the head runs in its own session and is killed
by session id, never with ``ray stop`` (which stops every Ray on the machine). HOME and
RAY_TMPDIR point into a short private folder, so the head's token (``~/.ray/auth_token``)
and its address file (``ray_current_cluster``) stay out of the real ones.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from processes import kill_session, session_pids

RAY = Path(sys.executable).with_name("ray")
SPEC = """\
name: tiny
question: Which Ray does it run on?
dataset: {name: synthetic, synthetic_size: 64}
train: {epochs: 1, measure_throughput: false}
model: {depth: 1, width: 8}
configs: [{mixer: conv, patch_size: 7}]
seeds: 1
resources: {cpu: 1}
execution: {precision: fp32, memory_format: channels_last, attention_kernel: fused}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def _env(home: Path, **extra) -> dict:
    """This machine's environment without any RAY_ setting, HOME moved to ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(home), "RAY_DISABLE_USAGE_STATS": "1", **extra}


def sweep(spec: Path, *args, env: dict, timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m mixerlab sweep`` in its own session; (process, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mixerlab", "sweep", str(spec), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_session(proc.pid)  # whatever Ray it left behind
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.monotonic() - t0


def assert_one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mixerlab sweep: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# -- no cluster needed -------------------------------------------------------------------
@pytest.mark.parametrize("address, fragment", [
    ("127.0.0.1", "not HOST:PORT"),
    ("127.0.0.1:ray", "not HOST:PORT"),
    ("127.0.0.1:70000", "not HOST:PORT"),
    (":6379", "not HOST:PORT"),
    ("auto", "drop --address"),
    ("ray://127.0.0.1:10001", "Ray Client (ray://) addresses are not supported"),
    ("http://127.0.0.1:8265", "GCS address HOST:PORT"),
])
def test_bad_address_form_is_one_line_and_writes_nothing(tmp_path, run_cli, address, fragment):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    before = _snapshot(tmp_path)
    code, out, err = run_cli("sweep", spec, "--results", tmp_path / "results", "--address", address)
    assert code == 2
    assert_one_line(err, f"--address {address!r}", fragment)
    assert _snapshot(tmp_path) == before


def test_nothing_listening_exits_2_within_30_s(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    before = _snapshot(tmp_path)
    port = _free_port()
    proc, seconds = sweep(spec, "--results", tmp_path / "results", "--address", f"127.0.0.1:{port}",
                          env=_env(tmp_path / "home"), timeout=60)
    assert proc.returncode == 2 and seconds < 30, (seconds, proc.stderr)
    assert_one_line(proc.stderr, f"nothing answers at 127.0.0.1:{port} within 5 s",
                    f"ray start --head --port={port}")
    assert _snapshot(tmp_path) == before


def test_parse_address_keeps_host_and_port():
    from mixerlab.sweep.connect import parse_address

    assert parse_address("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert parse_address("head.example.org:6390") == ("head.example.org", 6390)
    assert parse_address("[::1]:6379") == ("::1", 6379)


# -- a head started as Ray's docs say ----------------------------------------------------
@pytest.fixture(scope="module")
def head():
    """`ray start --head --port P` in a private HOME that holds a token, as on a machine where
    a local Ray ran before (Ray 2.60's first ``ray.init()`` writes ``~/.ray/auth_token``, and
    ``ray start --head`` then turns token authentication on)."""
    base = Path(tempfile.mkdtemp(prefix="mxl", dir="/tmp"))  # short: Ray's socket paths
    home = base / "home"
    home.mkdir()
    env = _env(home, RAY_TMPDIR=str(base))
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True, timeout=60)
    port = _free_port()
    proc = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, out
        assert "Token authentication is enabled" in out, out
        raylet = [p for p in session_pids(proc.pid) if "/raylet " in
                  Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()]
        node_id = re.search(rb"--node_id=([0-9a-f]+)",
                            Path(f"/proc/{raylet[0]}/cmdline").read_bytes()).group(1).decode()
        yield dict(address=f"127.0.0.1:{port}", home=home, base=base, node_id=node_id)
    finally:
        kill_session(proc.pid)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_head_with_token_in_home_is_reached_with_no_other_setting(tmp_path, head):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    proc, seconds = sweep(spec, "--results", tmp_path / "results", "--address", head["address"],
                          env=_env(head["home"]))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "InvalidAuthToken" not in proc.stderr, proc.stderr
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet")
    assert list(trials["status"]) == ["ok"]
    assert list(trials["ray_node_id"]) == [head["node_id"]]  # ran on the head's node


@pytest.mark.slow
@pytest.mark.parametrize("token, fragment", [
    (None, "requires a token and none was found"),
    ("0123456789abcdef0123456789abcdef", "refused mixerlab's token (from RAY_AUTH_TOKEN)"),
])
def test_missing_or_wrong_token_exits_2_within_30_s_writing_nothing(tmp_path, head, token, fragment):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    before = _snapshot(tmp_path)
    extra = {"RAY_AUTH_TOKEN": token} if token else {}
    proc, seconds = sweep(spec, "--results", tmp_path / "results", "--address", head["address"],
                          env=_env(tmp_path / "elsewhere", **extra), timeout=60)
    assert proc.returncode == 2 and seconds < 30, (seconds, proc.stderr)
    assert_one_line(proc.stderr, f"the Ray cluster at {head['address']}", fragment,
                    "~/.ray/auth_token", "RAY_AUTH_TOKEN")
    assert _snapshot(tmp_path) == before


@pytest.mark.slow
def test_local_sweep_does_not_attach_to_a_running_head(tmp_path, head):
    # Same RAY_TMPDIR as the head: ray_current_cluster names it, as /tmp/ray's would.
    assert (head["base"] / "ray" / "ray_current_cluster").read_text().strip().endswith(
        head["address"].split(":")[1])
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    proc, seconds = sweep(spec, "--results", tmp_path / "results",
                          env=_env(head["home"], RAY_TMPDIR=str(head["base"])))
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet")
    assert list(trials["status"]) == ["ok"]
    assert trials["ray_node_id"].iloc[0] != head["node_id"]  # its own Ray, not the head's


@pytest.mark.slow
def test_local_sweep_ignores_the_address_a_dead_head_left(tmp_path):
    """A head killed without `ray stop` leaves its address in ray_current_cluster."""
    base = Path(tempfile.mkdtemp(prefix="mxl", dir="/tmp"))
    try:
        (base / "ray").mkdir()
        (base / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")
        spec = tmp_path / "tiny.yaml"
        spec.write_text(SPEC)
        proc, _ = sweep(spec, "--results", tmp_path / "results",
                        env=_env(base / "home", RAY_TMPDIR=str(base)))
        assert proc.returncode == 0, proc.stderr
        # Ray's first local init writes a token and says so: into the study's logs, not here.
        assert "Token authentication" not in proc.stderr, proc.stderr
        assert "Token authentication is enabled" in (
            tmp_path / "results" / "tiny" / "logs" / "ray.log").read_text()
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- mixerlab train --image-size reaches the data set ------------------------------------
def test_train_image_size_resizes_an_imagefolder(tmp_path, run_cli):
    from PIL import Image

    for c, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (48, 40), tuple(v + 5 * i for v in colour)).save(
                tmp_path / "imgs" / c / f"{i}.png")
    code, out, err = run_cli("train", "--dataset", "imagefolder", "--data-dir", tmp_path / "imgs",
                             "--image-size", 32, "--patch-size", 8, "--depth", 1, "--width", 8,
                             "--epochs", 1, "--device", "cpu", "--json")
    assert code == 0, err
    import json

    record = json.loads(out)
    assert record["image_size"] == 32 and record["in_chans"] == 3 and record["status"] == "ok"
