"""The GPU check (benchmarks/gpu_check.sh) on a machine without a GPU.

Its CPU dry mode must write every file of a GPU run, with the GPU columns marked
"not measured", in well under a minute; without CUDA and without the dry flag, and with a
package missing, it must stop at one line, no traceback. What it carries to the device
(benchmarks/gpu_carry.py) must train on the very images the full data set gives.
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import each other by file name

import gpu_carry  # noqa: E402
import gpu_items  # noqa: E402

FILES = ("env.txt", "correctness.csv", "throughput.csv", "packing.csv", "quick.csv",
         "quick-trials.csv", "summary.md", "log.txt")
NM = gpu_items.NOT_MEASURED


def _run(*args, env_extra=None, timeout=180):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "PYTHONPATH")}
    env["GPU_CHECK_CARRY"] = "/nonexistent"  # what this machine has, not a .carry/ built for the GPU
    env.update(env_extra or {})
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    t0 = time.perf_counter()
    proc = _run("--cpu-dry", out)
    return out, proc, time.perf_counter() - t0


def test_cpu_dry_writes_every_file_with_the_gpu_columns_not_measured(dry_run):
    out, proc, wall = dry_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # eight files, no folders
    print(f"dry mode: {wall:.1f} s")

    c = pd.read_csv(out / "correctness.csv")
    assert set(c["mixer"]) == set(gpu_items.MIXERS)
    assert (c["gpu"] == NM).all() and (c["result"] == NM).all() and (c["rel_diff"] == NM).all()
    assert np.isfinite(c["cpu"].astype(float)).all()  # the CPU reference is computed for real
    assert len(c) == len(gpu_items.MIXERS) * (len(gpu_items.TOLERANCE) + 1)

    t = pd.read_csv(out / "throughput.csv")
    assert {"fp32", "bf16 autocast", "torch.compile"} <= set(t["figure"])
    assert (t["images_per_s"] == NM).all() and (t["vs_fp32_channels_last"] == NM).all()

    p = pd.read_csv(out / "packing.csv")
    assert list(p["trials"]) == list(gpu_items.PACKS)
    assert list(p["gpu_per_trial"]) == [1.0, 0.5, 0.25, 0.125]
    assert (p["total_images_per_s"] == NM).all() and (p["vs_one_trial"] == NM).all()

    q = pd.read_csv(out / "quick.csv")
    assert (q["value"] == NM).all()
    trials = pd.read_csv(out / "quick-trials.csv")
    assert len(trials) == 24 and (trials["test_acc"] == NM).all()  # quick.yaml's trials, planned

    assert "nvidia-smi: not measured" in (out / "env.txt").read_text()
    summary = (out / "summary.md").read_text()
    for name in ("correctness", "throughput", "packing", "quick", "Generated specs", "gpu_pack_8.yaml"):
        assert name in summary
    assert not any(n for n in (ROOT / "ablations").glob("gpu_pack_*"))  # specs only in a temp dir


def test_cpu_dry_takes_well_under_a_minute(dry_run):
    assert dry_run[2] < 60, f"{dry_run[2]:.0f} s"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_at_one_line(tmp_path):
    proc = _run(tmp_path / "out")
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: ") and "CUDA" in lines[0]
    assert "--cpu-dry" in lines[0] and "Traceback" not in proc.stderr


def test_a_missing_package_is_named_in_one_line(tmp_path):
    # What the device machine lacks, simulated: pydantic and Ray that fail to import.
    for name in ("pydantic", "ray"):
        (tmp_path / "block" / name).mkdir(parents=True)
        (tmp_path / "block" / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('No module named {name}', name='{name}')\n")
    proc = _run(tmp_path / "out", env_extra={"PYTHONPATH": str(tmp_path / "block")})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "cannot import pydantic, ray" in lines[0] and "gpu_carry.sh" in lines[0]


def test_no_output_folder_is_one_line():
    proc = _run()
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_the_estimate_is_read_from_the_dry_runs_own_cost_line():
    from mixerlab.sweep import load_spec
    from mixerlab.sweep.dry_run import _cost_line

    spec = load_spec(ROOT / "ablations" / "quick.yaml")
    line = _cost_line(spec, [30.0] * 8, 3, 8)  # 8 arms x 3 seeds x 30 s on 8 slots
    assert gpu_items.parse_estimate(line) == pytest.approx((90.0, 8))
    assert gpu_items.parse_estimate("estimated cost: none here: ...") is None


def test_the_carried_data_holds_every_image_the_check_reads():
    from mixerlab.data.idx import DEBIAN_ROOT, _file, read_idx
    from mixerlab.data.split import split_indices

    folder = DEBIAN_ROOT / "fashion-mnist"
    if not _file(folder, "train-labels-idx1-ubyte"):
        pytest.skip("no Fashion-MNIST on this machine")
    x = read_idx(_file(folder, "train-images-idx3-ubyte"))
    y = read_idx(_file(folder, "train-labels-idx1-ubyte"))
    masked = gpu_carry.masked_train_images(x, y)
    train, val = split_indices(torch.from_numpy(y.astype("int64")), **{
        "val_fraction": gpu_carry.KEPT["val_fraction"], "train_subset": gpu_carry.KEPT["train_subset"],
        "seed": gpu_carry.KEPT["split_seed"]})
    read = torch.cat([train, val]).numpy()
    assert np.array_equal(masked[read], x[read])  # every image a trial reads, unchanged
    assert (masked.reshape(len(x), -1).max(1) > 0).sum() == len(read)  # and nothing else
    assert gpu_items.data_config(gpu_items.Ctx(out=Path("."), tmp=Path("."), dry=False, deadline=0,
                                               log=None)).model_dump(include=set(gpu_carry.KEPT)) \
        == gpu_carry.KEPT  # the GPU items read these settings


def test_an_idx_file_written_for_the_carry_reads_back(tmp_path):
    from mixerlab.data.idx import read_idx

    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "f").write_bytes(gpu_carry._idx_bytes(a))
    assert np.array_equal(read_idx(tmp_path / "f"), a)


def test_ray_is_trimmed_of_what_a_sweep_never_loads():
    assert gpu_carry._left_out("ray/jars/ray_dist.jar") and gpu_carry._left_out("ray/rllib/x.py")
    assert gpu_carry._left_out("ray/dashboard/client/build/a.js") and gpu_carry._left_out("ray/a/tests/t.py")
    for kept in ("ray/tune/__init__.py", "ray/_raylet.so", "ray/core/src/ray/raylet/raylet",
                 "ray/dashboard/agent.py", "ray/train/__init__.py", "ray/air/__init__.py"):
        assert not gpu_carry._left_out(kept)
