"""``mixerlab analyze STUDY [STUDY ...]``: figures, statistics and a report with a verdict."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("analyze", help="report on one or several studies (figures, stats, verdict)")
    p.add_argument("studies", nargs="+", help="study folders, e.g. results/quick")
    p.add_argument("--out", default=None, help="report folder (default: <first study>/report)")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab.analysis import write_report

    path, verdict = write_report(args.studies, args.out)
    print("Verdict:")
    for line in verdict.splitlines():
        print(f"  - {line}")
    print(f"report: {path}")
    return 0
