"""The ``mixerlab`` command: one module per subcommand, each with ``register`` and ``run``.

A :class:`~mixerlab.errors.ConfigError` anywhere becomes one line on stderr and exit code
2, with no traceback: those are mistakes the user can fix, and the message says how.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mixerlab import __version__
from mixerlab.errors import ConfigError

# Subcommand modules, in the order ``mixerlab --help`` lists them.
SUBCOMMANDS = ("models", "describe", "train", "sweep", "plan", "slurm", "status", "analyze", "shards",
               "schema")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mixerlab", description="Are patches all you need? Isotropic models, "
                     "ablation sweeps on Ray Tune, and analysis with evidence. "
                     "Start with: mixerlab sweep ablations/quick.yaml --dry-run")
    parser.add_argument("--version", action="version", version=f"mixerlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"mixerlab.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"mixerlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mixerlab {args.command}: interrupted", file=sys.stderr)
        return 130
