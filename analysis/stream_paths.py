"""Streamed against in memory: the same trials on the two data paths, paired (issue 22).

    python analysis/stream_paths.py results/stream_memory results/stream

The first study read its images in memory, the second streamed them (its decoded size over
its memory budget); both are one spec otherwise (ablations/stream_memory.yaml and
ablations/stream.yaml). Each trial is paired with its twin (configuration and seed), and the
difference in test accuracy, streamed minus in memory, is given per mixer and over all pairs
with a paired 95% t interval and a verdict against a ROPE of 0.5 points
(``mixerlab.analysis.paths``). Writes ``paths.md`` and ``paths.csv`` (the effects) and
``pairs.csv`` (one row per pair) into the streamed study's folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixerlab.analysis import load_study, markdown_table, study_spec
from mixerlab.analysis.load import load_provenance
from mixerlab.analysis.paths import pair_paths, path_effects
from mixerlab.errors import ConfigError
from mixerlab.results import atomic_write_csv, atomic_write_text

# Points of test accuracy: this check's own region of practical equivalence, half the claims'
# usual 1 point: the two paths are meant to compute the same thing, so a finer ROPE is asked.
ROPE = 0.5


def report(memory: Path, stream: Path) -> tuple[str, object, object]:
    pairs = pair_paths(load_study(memory), load_study(stream))
    effects = path_effects(pairs, rope=ROPE)
    specs = [study_spec(p) for p in (memory, stream)]
    budgets = [s.data_config().memory_budget_gb for s in specs]  # the default where unset
    prov = load_provenance(stream)
    versions, hardware = prov.get("versions", {}), prov.get("hardware", {})
    shown = effects.rename(columns={"memory": "in memory", "stream": "streamed",
                                    "diff": "streamed - memory", "lo": "95% lo", "hi": "95% hi",
                                    "time_ratio": "trial time x", "images_per_s_ratio": "train img/s x"})
    lines = [
        "# Streamed against in memory: the same trials on two data paths",
        "",
        f"Studies: `{memory}` (in memory, budget {budgets[0]:g} GB) and `{stream}` (streamed: its "
        f"decoded set is over its budget of {budgets[1]:g} GB, so the path was chosen by size). "
        f"{len(pairs)} trials paired by configuration and seed.",
        "",
        "Test accuracy (%), streamed minus in memory, paired over seeds; 95% t interval; "
        f"*equivalent* when the interval lies inside +-{ROPE} points, *different* when it "
        "excludes 0. The last two columns are the median ratios streamed / in memory of a "
        "trial's wall time and its training images/s; `sd_*` are standard deviations over seeds "
        "(points).",
        "",
        markdown_table(shown),
        "",
        "What differs between the twins besides the path: the order of samples (each path "
        "draws its own from the seed) and the normalisation statistics (in memory: every "
        "training image; streamed: 256 of them). The pixels are the same: both read the same "
        "JPEG files, with no augmentation and the whole image kept (`crop_pct: 1.0`; "
        "tests/test_stream.py checks the pixels agree).",
        "",
        f"Command: `python analysis/stream_paths.py {memory} {stream}`. Trials: "
        f"`{prov.get('command', '?')}` and its in-memory twin; git "
        f"{str(versions.get('git_commit', '?'))[:10]}, torch {versions.get('torch_version', '?')}, "
        f"{hardware.get('cpu', '?')} ({hardware.get('cpu_count', '?')} cores).",
    ]
    return "\n".join(lines) + "\n", effects, pairs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("memory", help="the in-memory study's folder (results/stream_memory)")
    p.add_argument("stream", help="the streamed study's folder (results/stream)")
    args = p.parse_args(argv)
    try:
        text, effects, pairs = report(Path(args.memory), Path(args.stream))
    except ConfigError as err:
        print(f"stream_paths: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.stream)
    atomic_write_csv(out / "paths.csv", effects)
    atomic_write_csv(out / "pairs.csv", pairs)
    atomic_write_text(out / "paths.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
