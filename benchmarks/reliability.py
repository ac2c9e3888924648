"""Reliability figures: real faults injected into real sweeps; what was lost or duplicated.

Runs ``tests/test_reliability.py`` and ``tests/test_stream_reliability.py`` (the driver killed
in a study on streamed data) with ``MIXERLAB_RELIABILITY_FIGURES`` set, so that each
fault scenario appends one JSON line (faults injected, trials planned, trials lost and
duplicated in the final ``trials.parquet``, recovery time), then ``tests/test_bad_input.py``
for the bad-input line, and prints one markdown table. A scenario whose test failed has no
line of its own: the table says so under it.

    .venv/bin/python benchmarks/reliability.py          # about 10 minutes on 2 CPU cores

Recovery time is the wall time of the re-run after a driver kill or a damaged file, the
time from the fault to the end of the study for a killed worker or node, and the time of
``--retry-failed`` for faults inside trials. It includes Ray's start-up (~5-10 s here).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest(args: list[str], env: dict | None = None, timeout: float = 1800) -> tuple[str, float]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return summary, time.monotonic() - t0


def bad_inputs() -> tuple[int, int, str]:
    """(cases tried, cases with a clear exit-2 error) from tests/test_bad_input.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_bad_input as bad

    tried = len(bad.SPECS) + len(bad.CLI) + 1  # + the missing-data case
    with tempfile.TemporaryDirectory() as d:
        xml = Path(d) / "bad.xml"
        summary, _ = pytest(["tests/test_bad_input.py", f"--junitxml={xml}"], timeout=600)
        cases = ET.parse(xml).getroot().iter("testcase")
        clear = sum(1 for c in cases
                    if re.match(r"test_(bad_spec|bad_cli_call|missing_fashion_mnist)", c.get("name"))
                    and not any(x.tag in ("failure", "error", "skipped") for x in c))
    return tried, clear, summary


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        figures = Path(d) / "figures.jsonl"
        summary, seconds = pytest(["tests/test_reliability.py", "tests/test_stream_reliability.py"],
                                  env={"MIXERLAB_RELIABILITY_FIGURES": str(figures)})
        rows = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    tried, clear, bad_summary = bad_inputs()

    print("| fault | injected | trials planned | lost | duplicated | recovery (s) | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        rec = "–" if r["recovery_s"] is None else f"{r['recovery_s']:.1f}"
        planned = r["planned"] if r["planned"] else "–"
        lost = r["lost"] if r["planned"] else "–"
        dup = r["duplicated"] if r["planned"] else "–"
        print(f"| {r['kind']} | {r['faults']} | {planned} | {lost} | {dup} | {rec} | "
              f"{r.get('note', '')} |")
    total = sum(r["faults"] for r in rows)
    print(f"| **all faults above** | **{total}** | **{sum(r['planned'] for r in rows)}** | "
          f"**{sum(r['lost'] for r in rows)}** | **{sum(r['duplicated'] for r in rows)}** | | |")
    print(f"| bad inputs (tests/test_bad_input.py) | {tried} | – | – | – | – | "
          f"{clear}/{tried} gave one clear line and exit 2 |")
    print()
    print(f"tests/test_reliability.py + test_stream_reliability.py: {summary} (wall {seconds:.0f} s); "
          f"tests/test_bad_input.py: {bad_summary}")
    ok = "failed" not in summary and "error" not in summary and clear == tried
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
