"""Reliability figures: real faults injected into real sweeps; what was lost or duplicated.

Runs the fault scenarios of ``benchmarks/fault_scenarios.py``, the same functions that
``tests/test_reliability.py`` and ``tests/test_stream_reliability.py`` call and assert on: each
writes a small spec, runs a real sweep on the embedded local Ray, injects its fault (killed
driver, killed worker, stopped node, damaged table, failing trial, ...), recovers as a user
would, and measures the study against its plan: faults injected, trials planned, trials lost
and duplicated in the final ``trials.parquet``, recovery time. Then the bad-input cases of
``tests/test_bad_input.py`` (its tables, run here in-process), and one markdown table is
printed. A scenario that raises is a row marked failed with its one-line error, and the next
one runs; one this machine cannot stage (no Fashion-MNIST, no tmpfs mount) is marked skipped.

    .venv/bin/python benchmarks/reliability.py          # about 10 minutes on 2 CPU cores
    .venv/bin/python benchmarks/reliability.py --list   # the scenarios' names
    .venv/bin/python benchmarks/reliability.py --only disk-full,record-corrupt

Recovery time is the wall time of the re-run after a driver kill or a damaged file, the time
from the fault to the end of the study for a killed worker or node, and the time of
``--retry-failed`` for faults inside trials. It includes Ray's start-up (~5-10 s here).

The notes are measured as well (records kept byte-identical, trials resumed, whether stderr
named the damage); the tests assert the rest of each recovery (statuses, messages word for
word, resumed epochs). Exit code 1 when a scenario failed or its figures show a fault that
was not survived (a trial lost or duplicated, a refusal that was not one clear line).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import fault_scenarios as fs  # scripts beside this one: their folder is on sys.path
import fault_tools as tools

HEADER = ("| fault | injected | trials planned | lost | duplicated | recovery (s) | note |\n"
          "|---|---:|---:|---:|---:|---:|---|")


class Workspace:
    """Scratch folders for the scenarios, and the finished study the damage scenarios copy
    (made once, as the tests' module-scoped fixture makes it)."""

    def __init__(self, root: Path):
        self.root = root
        self._finished: tuple[Path, Path] | BaseException | None = None

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path

    def finished(self) -> tuple[Path, Path]:
        if self._finished is None:
            try:
                self._finished = fs.finished_study(self.folder("finished"))
            except Exception as exc:  # every scenario that needs it fails alike, without retrying
                self._finished = exc
        if isinstance(self._finished, BaseException):
            raise self._finished
        return self._finished


# -- the scenarios, in the table's order: name -> run(workspace, folder) -> outcomes ---------
def _with_tmpfs(scenario):
    def run(ws: Workspace, folder: Path) -> list[fs.Outcome]:
        with fs.tmpfs(folder) as mount:
            return [scenario(folder, mount)]
    return run


def _faults_in_trials(ws: Workspace, folder: Path) -> list[fs.Outcome]:
    retried = fs.retry_failed(fs.failing_trials(folder))
    return [retried, fs.lose_record_of_older_run(retried)]


SCENARIOS = {
    **{f"driver-{point}": (lambda ws, d, point=point: [fs.killed_driver(d, point)])
       for point in fs.KILL_POINTS},
    "driver-mid-round": lambda ws, d: [fs.killed_mid_round(d)],
    "worker-kill": lambda ws, d: [fs.killed_worker(d)],
    "node-stop": lambda ws, d: [fs.worker_node_stopped(d)],
    "faults-in-trials": _faults_in_trials,
    **{f"table-{how}": (lambda ws, d, how=how: [fs.damaged_table(d, how, ws.finished())])
       for how in fs.DAMAGES},
    "record-corrupt": lambda ws, d: [fs.corrupt_record(d, ws.finished())],
    "table-rewrite-kill": lambda ws, d: [fs.killed_while_rewriting(d, ws.finished())],
    "second-sweep": lambda ws, d: [fs.second_sweep(d)],
    "disk-full": _with_tmpfs(fs.full_disk),
    "read-only": _with_tmpfs(fs.read_only),
    "results-under-file": lambda ws, d: [fs.results_under_a_file(d)],
    "foreign-folder": lambda ws, d: [fs.foreign_folder(d)],
    "streamed-driver-kill": lambda ws, d: [fs.streamed_driver_killed(d)],
    "ladder-branch-kill": lambda ws, d: [fs.ladder_killed_in_branch(d)],
}


# -- bad input: tests/test_bad_input.py's cases, each run once here ------------------------
def _clear(code: int, err: str, message: str) -> bool:
    """Exit 2 and one line naming the problem, no traceback: the test's criterion per case."""
    return code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _bad_spec(folder: Path, text: str, args: list, message: str) -> bool:
    import ray

    folder.mkdir()
    spec = folder / "spec.yaml"
    spec.write_text(text)
    before = tools.snapshot(folder)
    code, _, err = tools.run_cli("sweep", spec, "--results", folder / "results", *args)
    return _clear(code, err, message) and tools.snapshot(folder) == before and not ray.is_initialized()


def _bad_cli(folder: Path, good: str, args: list, message: str) -> bool:
    folder.mkdir()
    spec = folder / "spec.yaml"
    spec.write_text(good)
    before = tools.snapshot(folder)
    code, _, err = tools.run_cli(*[a.format(tmp=folder, spec=spec) for a in args])
    return _clear(code, err, message.format(tmp=folder)) and tools.snapshot(folder) == before


def _missing_fashion_mnist(folder: Path) -> bool:
    """No data anywhere and no network: one line listing every place looked in, and the fix."""
    import urllib.error
    from unittest import mock

    import torchvision.datasets.utils as tv_utils

    import mixerlab.data.idx as idx

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    env = {"HOME": str(folder / "home"), "XDG_CACHE_HOME": str(folder / "cache"),
           "MIXERLAB_DATA": str(folder / "nowhere")}
    with mock.patch.dict(os.environ, env), mock.patch.object(idx, "DEBIAN_ROOT", folder / "not-installed"), \
            mock.patch.object(tv_utils, "download_url", offline):
        code, _, err = tools.run_cli("train", "--dataset", "fashion-mnist", "--data-dir", folder / "empty")
    places = (folder / "empty", folder / "nowhere", folder / "not-installed" / "fashion-mnist",
              folder / "cache" / "mixerlab" / "fashion-mnist")
    return (_clear(code, err, "apt-get install dataset-fashion-mnist") and "--data-dir" in err
            and all(str(p) in err for p in places))


def bad_inputs(ws: Workspace, folder: Path) -> list[fs.Outcome]:
    """How many of the malformed specs and CLI calls (and the missing data set) were refused
    with exit 2 and one clear line, starting no Ray and writing nothing."""
    import test_bad_input as bad  # the cases are the test's tables; tests/ is on sys.path

    cases = [_bad_spec(folder / f"spec-{case}", text, args, message)
             for case, text, args, message in bad.SPECS]
    cases += [_bad_cli(folder / f"cli-{case}", bad.GOOD, args, message) for case, args, message in bad.CLI]
    cases.append(_missing_fashion_mnist(folder / "missing-data"))
    tried, clear = len(cases), sum(cases)
    return [fs.Outcome(figures=fs.Figures(
        "bad inputs (tests/test_bad_input.py)", tried, 0, 0, 0, None,
        f"{clear}/{tried} gave one clear line and exit 2", held=clear == tried))]


BELOW_TOTAL = {"bad-inputs": bad_inputs}  # a row of its own: no trials, not a fault in a sweep
ALL = {**SCENARIOS, **BELOW_TOTAL}


# -- run, render ---------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    seconds: float
    figures: list[fs.Figures] = field(default_factory=list)
    error: str = ""  # why the scenario failed, one line
    skipped: str = ""  # why this machine could not stage it


def _one_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}"[:240].replace("|", "\\|")


def run_scenario(name: str, ws: Workspace) -> Result:
    """One scenario; whatever it raises becomes its row, and its processes are ended."""
    started = time.monotonic()
    try:
        outcomes = ALL[name](ws, ws.folder(name))
        return Result(name, time.monotonic() - started, [o.figures for o in outcomes if o.figures])
    except fs.NotStaged as exc:
        return Result(name, time.monotonic() - started, skipped=str(exc))
    except Exception as exc:  # a failed scenario is a row of the table; the next one runs
        return Result(name, time.monotonic() - started, error=_one_line(exc))
    finally:
        tools.end_sessions()


def _row(f: fs.Figures) -> str:
    rec = "–" if f.recovery_s is None else f"{f.recovery_s:.1f}"
    planned, lost, dup = (f.planned, f.lost, f.duplicated) if f.planned else ("–", "–", "–")
    return f"| {f.kind} | {f.faults} | {planned} | {lost} | {dup} | {rec} | {f.note} |"


def _rows(r: Result) -> list[str]:
    if r.error or r.skipped:
        what = f"**failed**: {r.error}" if r.error else f"skipped: {r.skipped}"
        return [f"| {r.name} | – | – | – | – | – | {what} |"]
    return [_row(f) for f in r.figures]


def render(results: list[Result], wall: float) -> str:
    """The markdown table (faults, their total, then the rows below it) and a summary line."""
    faults = [r for r in results if r.name not in BELOW_TOTAL]
    counted = [f for r in faults for f in r.figures]
    lines = [HEADER, *(line for r in faults for line in _rows(r))]
    if counted:
        lines.append(f"| **all faults above** | **{sum(f.faults for f in counted)}** | "
                     f"**{sum(f.planned for f in counted)}** | **{sum(f.lost for f in counted)}** | "
                     f"**{sum(f.duplicated for f in counted)}** | | |")
    lines += [line for r in results if r.name in BELOW_TOTAL for line in _rows(r)]
    failed = [r.name for r in results if r.error]
    not_held = [r.name for r in results if any(not f.held for f in r.figures)]
    lines += ["", f"{len(results)} scenario(s) in {wall:.0f} s: {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else "")
              + f", {sum(bool(r.skipped) for r in results)} skipped, {len(not_held)} not survived"
              + (f" ({', '.join(not_held)})" if not_held else "")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", metavar="NAME[,NAME]", help="run these scenarios only (see --list)")
    ap.add_argument("--list", action="store_true", help="print the scenarios' names and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(ALL))
        return 0
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(ALL)
    unknown = [n for n in wanted if n not in ALL]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; --list names them")
    started, results = time.monotonic(), []
    with tempfile.TemporaryDirectory(prefix="mixerlab-reliability-") as d:
        ws = Workspace(Path(d))
        for name in (n for n in ALL if n in wanted):  # the table's order, whatever --only's
            results.append(run_scenario(name, ws))
            r = results[-1]
            state = "failed" if r.error else "skipped" if r.skipped else "done"
            print(f"{name}: {state} in {r.seconds:.0f} s", file=sys.stderr, flush=True)
    print(render(results, time.monotonic() - started))
    ok = not any(r.error for r in results) and all(f.held for r in results for f in r.figures)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
