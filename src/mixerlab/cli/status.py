"""``mixerlab status results/<name>``: what is done, running, failed, and why."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("status", help="what a study has done, what failed and why")
    p.add_argument("study", help="a study folder, e.g. results/quick")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab.sweep.status import status_json, summary, trial_statuses

    if args.json:
        print(status_json(args.study))
        return 0
    rows = trial_statuses(args.study)
    print(f"{args.study}: {summary(args.study)}")
    for r in rows:
        if r["status"] == "ok":
            continue
        who = f"{r['variant']} p{r['patch_size']} seed {r['seed']}" if r["trial_id"] else ""
        print(f"  {r['status']:<9} {who} {r['error'] or ''}".rstrip())
    return 0
