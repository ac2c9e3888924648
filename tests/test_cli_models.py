"""`mixerlab models` and `mixerlab describe` through the real CLI."""

import json
import subprocess
import sys

import pytest


def test_models_lists_every_mixer(run_cli):
    code, out, _ = run_cli("models", "--json")
    data = json.loads(out)
    assert code == 0
    assert {m["mixer"] for m in data["mixers"]} >= {"attention", "mlp", "conv", "pool", "identity", "random"}
    assert "convmixer_256_8_ks5_p2" in {r["model"] for r in data["references"]}


def test_describe_json(run_cli):
    code, out, _ = run_cli("describe", "--mixer", "attention", "--patch-size", "4", "--json")
    rec = json.loads(out)
    assert code == 0
    assert rec["tokens"] == 49 and rec["pos_embed"] is True
    assert rec["macs"] > 0 and rec["flops"] == 2 * rec["macs"]
    assert "kernel_size" not in rec  # does not apply to attention


def test_describe_reference_model(run_cli):
    code, out, _ = run_cli("describe", "--model", "convmixer_256_8_ks5_p2", "--image-size", "32",
                           "--in-chans", "3", "--json")
    assert code == 0 and json.loads(out)["params"] == 594_186


@pytest.mark.parametrize("args,message", [
    (["--patch-size", "5"], "patch_size: 5 does not divide image_size 28"),
    (["--mixer", "attention", "--heads", "5"], "heads: 5 does not divide width 64"),
    (["--mixer", "nope"], "argument --mixer: invalid choice: 'nope' (choose from 'attention'"),
    (["--depth", "0"], "depth: must be a positive integer"),
    (["--width", "abc"], "invalid int value: 'abc'"),
    (["--model", "nonexistent_net"], "model: unknown 'nonexistent_net'"),
])
def test_describe_bad_options_exit_2_with_one_line(run_cli, args, message):
    code, out, err = run_cli("describe", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "mixerlab", "describe", "--patch-size", "3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "patch_size" in proc.stderr
