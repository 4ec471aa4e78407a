"""The ``mld`` command line.

Each command group lives in its own module with ``register(subparsers, common)``, which adds its
parsers and sets ``func`` to a function taking the parsed arguments.  A ``ValueError`` (bad input)
becomes a one-line ``mld: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from experiments.cli import analyze, bench, dft, fit, run, sweep

#: The command groups, in the order they appear in ``mld --help``.
COMMAND_GROUPS = (run, analyze, sweep, fit, dft, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mld",
        description="Molecular learning dynamics: every nucleus is a learning agent.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    for group in COMMAND_GROUPS:
        group.register(subparsers, common)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except ValueError as err:
        print(f"mld: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
