"""``mixerlab shards`` decodes every image before packing: a corrupt file stops it (exit 2,
every bad file named, nothing written) instead of failing a trial mid-study.

Every image here is synthetic (seeded noise), written as real PNG and JPEG files by PIL;
the bad files are a text file named ``0.jpg`` and a JPEG cut in half.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from mixerlab.data.imagecheck import check_images

SIDE = 32


def synthetic_image(path: Path, seed: int) -> Path:
    """A seeded-noise RGB image, in the format its suffix names (PNG or JPEG)."""
    from PIL import Image

    px = np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3)).astype(np.uint8)
    Image.fromarray(px).save(path)
    return path


@pytest.fixture
def synthetic_tree(tmp_path) -> dict:
    """root/train/<class>/ and root/test/<class>/ of synthetic PNGs and JPEGs, plus two bad
    files: ``text`` (text bytes named 0.jpg) and ``truncated`` (the first half of a JPEG)."""
    root, seed = tmp_path / "synthetic_tree", 0
    for split, n in (("train", 4), ("test", 2)):
        for c in ("ant", "bee"):
            (root / split / c).mkdir(parents=True)
            for i in range(1, n + 1):
                seed += 1
                synthetic_image(root / split / c / f"{i}.{'png' if i % 2 else 'jpg'}", seed)
    text = root / "train" / "ant" / "0.jpg"
    text.write_text("this is not an image\n")
    truncated = synthetic_image(root / "test" / "bee" / "9.jpg", 99)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return {"root": root, "text": text, "truncated": truncated}


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("workers", ["1", "2"])  # in this process, and in a process pool
def test_corrupt_images_stop_shards_naming_each_and_writing_nothing(synthetic_tree, tmp_path,
                                                                    run_cli, workers):
    out = tmp_path / "shards"
    code, _, err = run_cli("shards", synthetic_tree["root"], out, "--workers", workers)
    assert code == 2, err
    assert f"{synthetic_tree['text']}: not an image PIL can identify" in err
    assert f"{synthetic_tree['truncated']}: OSError:" in err
    assert "2 of 14 images cannot be decoded" in err
    assert "remove or replace these files, or pass --no-check" in err
    assert "Traceback" not in err
    assert not out.exists()  # no shard, no index, not even the folder


def test_a_failed_check_leaves_an_existing_output_folder_untouched(synthetic_tree, tmp_path,
                                                                  run_cli):
    out = tmp_path / "shards"
    out.mkdir()
    (out / "train-000000.tar").write_bytes(b"a shard from an earlier run")
    before = listing(out)
    assert run_cli("shards", synthetic_tree["root"], out, "--shard-size", "2")[0] == 2
    assert listing(out) == before


def test_without_the_bad_files_the_shards_are_written(synthetic_tree, tmp_path, run_cli):
    synthetic_tree["text"].unlink()
    synthetic_tree["truncated"].unlink()
    out = tmp_path / "shards"
    code, _, err = run_cli("shards", synthetic_tree["root"], out, "--shard-size", "4",
                           "--workers", "2")
    assert code == 0, err
    assert "checked 12/12 images" in err
    assert "3/3 shards" in err.splitlines()[-2]  # the check's own line ends before packing
    assert sorted(p.name for p in out.iterdir()) == [
        "classes.json", "test-000000.tar", "train-000000.tar", "train-000001.tar"]


def test_no_check_packs_the_corrupt_tree(synthetic_tree, tmp_path, run_cli):
    out = tmp_path / "shards"
    code, _, err = run_cli("shards", synthetic_tree["root"], out, "--no-check")
    assert code == 0, err
    assert "checked" not in err
    with tarfile.open(out / "train-000000.tar") as tar:
        packed = [tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")]
    assert synthetic_tree["text"].read_bytes() in packed  # packed as it was, unchecked


def test_check_images_names_failures_in_file_order_across_chunks(synthetic_tree, tmp_path):
    """Many small chunks over two processes: every failure found, in the files' order."""
    good = sorted(synthetic_tree["root"].rglob("*.png"))
    files = [*good, synthetic_tree["truncated"], *good, synthetic_tree["text"], *good]
    seen = []
    bad = check_images(files, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert [f for f, _ in bad] == [str(synthetic_tree["truncated"]), str(synthetic_tree["text"])]
    assert seen[-1] == (len(files), len(files)) and len(seen) > 2
    adjacent = [synthetic_tree["text"], synthetic_tree["truncated"], *good]  # one chunk holds both
    assert len(check_images(adjacent, workers=1)) == 2


def test_help_documents_no_check(run_cli):
    code, out, _ = run_cli("shards", "--help")
    assert code == 0 and "--no-check" in out and "trusted data" in out


def test_workers_must_be_positive(synthetic_tree, tmp_path, run_cli):
    code, _, err = run_cli("shards", synthetic_tree["root"], tmp_path / "o", "--workers", "0")
    assert code == 2 and "--workers: 0" in err and not (tmp_path / "o").exists()
