"""Table-driven bad input: malformed specs and CLI calls.

Each must exit with code 2 and one clear line naming the problem, print no traceback,
start no Ray, and write nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")

GOOD = """\
name: t
question: q?
dataset: {name: synthetic, synthetic_size: 64}
train: {epochs: 1}
model: {depth: 1, width: 8}
grid: {mixer: [conv, attention], patch_size: [4, 7]}
seeds: 1
"""

# (case id, spec text or None for a CLI-only case, extra CLI args, expected message fragment)
SPECS = [
    ("yaml-syntax", "name: t\nquestion: [unclosed\n", [], "YAML syntax error at line"),
    ("not-a-mapping", "- a\n- b\n", [], "a spec must be a YAML mapping"),
    ("scalar-spec", "just a string\n", [], "a spec must be a YAML mapping"),
    ("empty-file", "", [], "a spec must be a YAML mapping"),
    ("unknown-top-key", GOOD + "epochs: 3\n", [], "unknown key 'epochs'"),
    ("missing-name", GOOD.replace("name: t\n", ""), [], "'name': Field required"),
    ("bad-name", GOOD.replace("name: t", "name: ../escape"), [], "'name'"),
    ("unknown-model-key", GOOD.replace("depth: 1", "detph: 1"), [], "unknown key 'detph'"),
    ("unknown-train-key", GOOD.replace("epochs: 1", "epoch: 1"), [], "unknown key 'epoch'"),
    ("wrong-type-epochs", GOOD.replace("epochs: 1", "epochs: many"), [], "'epochs'"),
    ("zero-epochs", GOOD.replace("epochs: 1", "epochs: 0"), [], "'epochs'"),
    ("negative-lr", GOOD.replace("epochs: 1", "epochs: 1, lr: -0.1"), [], "'lr'"),
    ("zero-width", GOOD.replace("width: 8", "width: 0"), [], "width: must be a positive integer"),
    ("negative-depth", GOOD.replace("depth: 1", "depth: -2"), [], "depth: must be a positive integer"),
    ("patch-not-dividing", GOOD.replace("[4, 7]", "[4, 5]"), [], "patch_size: 5 does not divide image_size 28"),
    ("heads-not-dividing", GOOD.replace("width: 8", "width: 8, heads: 3"), [], "heads: 3 does not divide width 8"),
    ("unknown-mixer", GOOD.replace("[conv, attention]", "[conv, transformer]"), [], "mixer: unknown 'transformer'"),
    ("unknown-grid-factor", GOOD.replace("patch_size: [4, 7]", "optimizer: [sgd]"), [], "grid.optimizer: not a factor"),
    ("empty-grid-list", GOOD.replace("[4, 7]", "[]"), [], "grid.patch_size: empty list"),
    ("grid-and-configs", GOOD + "configs: [{mixer: conv}]\n", [], "either 'grid'"),
    ("empty-configs", GOOD.replace("grid: {mixer: [conv, attention], patch_size: [4, 7]}", "configs: []"), [], "configs: empty list"),
    ("unknown-dataset", GOOD.replace("name: synthetic", "name: imagenet-22k"), [], "imagenet-22k"),
    ("unknown-timm-model", GOOD.replace("grid: {mixer: [conv, attention], patch_size: [4, 7]}", "configs: [{model: not_a_timm_net}]"), [], "model: unknown 'not_a_timm_net'"),
    ("zero-seeds", GOOD.replace("seeds: 1", "seeds: 0"), [], "'seeds'"),
    ("duplicate-seeds", GOOD.replace("seeds: 1", "seeds: [1, 1]"), [], "'seeds'"),
    ("absurd-cpu", GOOD + "resources: {cpu: 100000}\n", [], "'resources.cpu'"),
    ("negative-gpu", GOOD + "resources: {gpu: -1}\n", [], "'resources.gpu'"),
    ("bad-scheduler", GOOD + "scheduler: {type: hyperband}\n", [], "'scheduler.type'"),
    ("bad-precision-pin", GOOD + "execution: {precision: fp16}\n", [], "'execution.precision'"),
    ("unknown-execution-key", GOOD + "execution: {compile: true}\n", [], "unknown key 'execution.compile'"),
    ("missing-data-dir", GOOD.replace("name: synthetic, synthetic_size: 64", "name: mnist, data_dir: no/such/folder"), [], "dataset.data_dir"),
    ("bad-val-fraction", GOOD.replace("synthetic_size: 64", "synthetic_size: 64, val_fraction: 1.5"), [], "'val_fraction'"),
    ("match-unknown-by", GOOD + "match: {by: flops}\n", [], "'match.by'"),
    ("bad-kernel", GOOD.replace("width: 8", "width: 8, kernel_size: 4"), [], "kernel_size: must be a positive odd integer"),
    # Controlled comparisons: nuisance factors, layouts, stems, matching both ways.
    ("nuisance-model-factor", GOOD + "nuisance: {depth: [1, 2]}\n", [], "nuisance.depth: a model factor"),
    ("nuisance-unknown", GOOD + "nuisance: {momentum: [0.9]}\n", [], "nuisance.momentum: not a recipe factor"),
    ("nuisance-empty", GOOD + "nuisance: {lr: []}\n", [], "nuisance.lr: empty list"),
    ("nuisance-repeated", GOOD + "nuisance: {lr: [0.01, 0.01]}\n", [], "nuisance.lr: repeated value"),
    ("nuisance-in-grid", GOOD.replace("patch_size: [4, 7]", "lr: [0.01, 0.1]") + "nuisance: {lr: [0.001, 0.01]}\n",
     [], "nuisance.lr: also in 'grid'"),
    ("nuisance-bad-value", GOOD + "nuisance: {lr: [0.01, -1]}\n", [], "nuisance.lr=-1"),
    ("nuisance-not-a-list", GOOD + "nuisance: {lr: 0.01}\n", [], "'nuisance.lr'"),
    ("unknown-layout", GOOD.replace("width: 8", "width: 8, layout: pyramidal"), [], "'layout'"),
    ("unknown-stem", GOOD.replace("width: 8", "width: 8, stem: hybrid"), [], "'stem'"),
    ("pyramid-too-few-tokens", GOOD.replace("depth: 1, width: 8", "depth: 3, width: 8, layout: pyramid")
     .replace("[4, 7]", "[14]"), [], "patch_size"),
    ("pyramid-too-shallow", GOOD.replace("width: 8", "width: 8, layout: pyramid"), [], "depth"),
    ("conv-stem-odd-patch", GOOD.replace("width: 8", "width: 8, stem: conv"), [], "stem"),
    ("match-by-repeated", GOOD + "match: {by: [params, params]}\n", [], "'match.by'"),
    ("match-unreachable", GOOD.replace("[conv, attention]", "[mlp]").replace("[4, 7]", "[1]")
     + "match: {by: params, reference: {mixer: conv, width: 8, patch_size: 7}}\n", [], "match: no width brings mlp"),
    # Two-stage tuning and adaptive seeds (spec._check_stages, AdaptiveSeeds).
    ("tuning-without-nuisance", GOOD + "tuning: {seeds: 1}\n", [],
     "tuning: there is nothing to tune; add 'nuisance'"),
    ("adaptive-nuisance-without-tuning", GOOD.replace("seeds: 1", "seeds: {min: 3, max: 4}")
     + "nuisance: {lr: [0.003, 0.01]}\n", [], "seeds: adaptive seeds with a nuisance grid need a tuning "
     "stage (add tuning: {seeds: 2})"),
    ("adaptive-with-asha", GOOD.replace("seeds: 1", "seeds: {min: 3, max: 4}") + "scheduler: {type: asha}\n",
     [], "seeds: adaptive seeds compare finished trials; remove the 'asha' scheduler or give a fixed seed count"),
    ("seed-is-a-tuning-seed", GOOD.replace("seeds: 1", "seeds: [1, 2]")
     + "nuisance: {lr: [0.003, 0.01]}\ntuning: {seeds: 2}\n", [],
     "seeds: seed 1 is also a tuning seed (tuning seeds are 0..1); give a count, or seeds from 2 on"),
    ("tuning-epochs-with-epochs-grid", GOOD.replace("patch_size: [4, 7]", "epochs: [1, 2]")
     + "nuisance: {lr: [0.003, 0.01]}\ntuning: {seeds: 1, epochs: 1}\n", [],
     "tuning.epochs: the grid varies epochs; tune at each budget (remove tuning.epochs)"),
    ("adaptive-min-above-max", GOOD.replace("seeds: 1", "seeds: {min: 5, max: 3}"), [],
     "'seeds.adaptive': Value error, max (3) is below min (5); give max >= min"),
    ("adaptive-min-below-3", GOOD.replace("seeds: 1", "seeds: {min: 2}"), [],
     "'seeds.adaptive.min': Input should be greater than or equal to 3 (got 2)"),
]

CLI = [
    ("spec-missing", ["sweep", "no/such/spec.yaml"], "no such file"),
    ("spec-is-dir", ["sweep", "{tmp}"], "is a directory"),
    ("bad-max-concurrent", ["sweep", "{spec}", "--max-concurrent", "0"], "--max-concurrent"),
    ("unknown-option", ["sweep", "{spec}", "--frobnicate"], "unrecognized arguments"),
    ("describe-bad-patch", ["describe", "--patch-size", "3"], "patch_size: 3 does not divide"),
    ("train-unknown-dataset", ["train", "--dataset", "imagenet-22k"], "imagenet-22k"),
    ("status-not-a-study", ["status", "{tmp}"], "not a mixerlab study"),
    ("analyze-not-a-study", ["analyze", "{tmp}"], "{tmp}"),
]


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case,text,args,message", SPECS, ids=[c[0] for c in SPECS])
def test_bad_spec(case, text, args, message, tmp_path, run_cli):
    import ray

    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    results = tmp_path / "results"
    before = _snapshot(tmp_path)
    code, out, err = run_cli("sweep", spec, "--results", results, *args)
    assert code == 2, (out, err)
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(tmp_path) == before, "bad input must write nothing"
    assert not ray.is_initialized(), "bad input must not start Ray"


@pytest.mark.parametrize("case,args,message", CLI, ids=[c[0] for c in CLI])
def test_bad_cli_call(case, args, message, tmp_path, run_cli):
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    args = [a.format(tmp=tmp_path, spec=spec) for a in args]
    before = _snapshot(tmp_path)
    code, out, err = run_cli(*args)
    assert code == 2, (out, err)
    assert message.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(tmp_path) == before


def test_missing_fashion_mnist_names_every_place(tmp_path, run_cli, monkeypatch):
    """No data anywhere and no network: one line that lists where it looked and the fix."""
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    import mixerlab.data.idx as idx

    def offline(*args, **kwargs):  # this machine has no route to the mirrors either
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MIXERLAB_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(idx, "DEBIAN_ROOT", tmp_path / "not-installed")
    monkeypatch.setattr(tv_utils, "download_url", offline)
    code, _, err = run_cli("train", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "empty")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for place in (tmp_path / "empty", tmp_path / "nowhere", tmp_path / "not-installed" / "fashion-mnist",
                  tmp_path / "cache" / "mixerlab" / "fashion-mnist"):
        assert str(place) in err
    assert "apt-get install dataset-fashion-mnist" in err and "--data-dir" in err


def test_counts():
    """The reliability table in the README quotes these numbers."""
    assert len(SPECS) + len(CLI) >= 25


# The streamed path (issue 22): bad data gets one line naming it, exit 2, nothing written.
# Every image and shard is synthetic, written in the real format.
def _tree(tmp: Path, fmt: str = "png") -> Path:
    from PIL import Image

    for c in ("ant", "bee"):
        (tmp / "data" / "train" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (40 * i, 90, 10)).save(tmp / "data" / "train" / c / f"{i}.{fmt}")
    return tmp / "data"


def _empty_class(tmp: Path) -> list:
    (_tree(tmp) / "train" / "cat").mkdir()
    return ["train", "--dataset", "imagefolder", "--data-dir", tmp / "data", "--stream"]


def _corrupt_jpeg(tmp: Path) -> list:
    (_tree(tmp, "jpg") / "train" / "bee" / "2.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return ["train", "--dataset", "imagefolder", "--data-dir", tmp / "data", "--stream"]


def _shards(tmp: Path, content: bytes | None) -> list:
    import tarfile

    from mixerlab.data.shards import write_shards

    files = sorted((_tree(tmp) / "train").rglob("*.png"))
    write_shards({"train": [(f, int("bee" in str(f))) for f in files]}, ["ant", "bee"], tmp / "sh", 4)
    shard = tmp / "sh" / "train-000001.tar"
    if content is None:  # a valid tar with no samples in it
        tarfile.open(shard, "w").close()
    else:
        shard.write_bytes(content)
    return ["train", "--dataset", "shards", "--data-dir", tmp / "sh"]


def _spec(tmp: Path, dataset: str, extra: str = "", dry_run: bool = True, grid: str | None = None) -> list:
    spec = tmp / "spec.yaml"
    text = GOOD.replace("{name: synthetic, synthetic_size: 64}", dataset) + extra
    spec.write_text(text if grid is None else text.replace("grid: {mixer: [conv, attention], patch_size: [4, 7]}", grid))
    return ["sweep", spec, "--results", tmp / "results", *(["--dry-run"] if dry_run else [])]


# The budget at study level: 8 images of 8 px are 1.5 kB decoded (0.0000015 GB); every
# configuration over it, or only at the sides the grid asks for, with stream: false.
_OVER = "memory_budget_gb: 0.000001}"
_FITS_BASE = "memory_budget_gb: 0.000002}"


STREAM_CASES = [
    ("class-folder-without-images", _empty_class, "a class folder with no images"),
    ("shards-of-class-folder-without-images", lambda t: ["shards", *_empty_class(t)[4:5], t / "out"],
     "a class folder with no images"),
    ("corrupt-jpeg", _corrupt_jpeg, "2.jpg: not a readable image"),
    ("empty-shard", lambda t: _shards(t, None), "train-000001.tar: an empty shard"),
    ("unreadable-shard", lambda t: _shards(t, b"garbage" * 100), "train-000001.tar: not a readable shard"),
    ("no-shard-index", lambda t: ["train", "--dataset", "shards", "--data-dir", _tree(t)],
     "classes.json not found"),
    ("budget-fits-no-path", lambda t: _spec(t, f"{{name: imagefolder, data_dir: {_tree(t)}, stream: false, "
                                               "memory_budget_gb: 0.000001}"), "no path fits"),
    ("budget-fits-no-path-at-run", lambda t: _spec(t, f"{{name: imagefolder, data_dir: {_tree(t)}, "
                                                      f"stream: false, {_OVER}", dry_run=False), "no path fits"),
    ("budget-fits-no-configuration", lambda t: _spec(
        t, f"{{name: imagefolder, data_dir: {_tree(t)}, stream: false, {_FITS_BASE}", dry_run=False,
        grid="grid: {mixer: [conv, identity], patch_size: [4], image_size: [16, 32]}"),
     "decoded at image_size 32 (a configuration's)"),
    ("workers-over-cpu", lambda t: _spec(t, "{name: synthetic, synthetic_size: 64, workers: 2}",
                                         "resources: {cpu: 2}\n"), "raise resources.cpu to 3"),
]


@pytest.mark.parametrize("case,setup,message", STREAM_CASES, ids=[c[0] for c in STREAM_CASES])
def test_bad_streamed_data(case, setup, message, tmp_path, run_cli):
    args = setup(tmp_path)
    before = _snapshot(tmp_path)
    code, out, err = run_cli(*args)
    assert code == 2, (out, err)
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(tmp_path) == before, "bad input must write nothing"
    if "sweep" in args and "--dry-run" not in args:  # refused at run: before Ray, too
        import ray

        assert not ray.is_initialized()


def test_setup_without_room_for_the_venv_stops_before_installing(tmp_path):
    """scripts/setup.sh on a disk with too little room (asked for more than any disk has): one
    line naming the need, the free space and the fix, exit 2, and no venv made."""
    root = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    env = {**os.environ, "VENV": str(venv), "MIXERLAB_DATA": str(tmp_path),
           "MIXERLAB_SETUP_NEED_MB": str(10**12)}
    done = subprocess.run(["bash", root / "scripts" / "setup.sh"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"needs about {10**12} MB of disk" in done.stderr and "make VENV=" in done.stderr
    assert not venv.exists()
