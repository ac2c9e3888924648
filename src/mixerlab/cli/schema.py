"""``mixerlab schema``: the spec's JSON Schema, for editors that check YAML as you type."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("schema", help="the JSON Schema of a spec (editor completion and checks)")
    p.add_argument("--out", type=Path, default=None,
                   help="write the schema to this file (default: print the path of the package's copy)")
    p.add_argument("--print", action="store_true", dest="show", help="print the schema itself")
    p.set_defaults(func=run)


def run(args) -> int:
    from mixerlab.results import atomic_write_text
    from mixerlab.spec_schema import render, shipped_path

    if args.out is not None:
        atomic_write_text(args.out, render())
        print(f"wrote {args.out}", file=sys.stderr)
    elif args.show:
        sys.stdout.write(render())
    else:
        print(shipped_path())
    return 0
