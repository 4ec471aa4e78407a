"""The ``mld`` command line.

Each command lives in its own module, which provides ``register(subparsers)``; the module adds its
parser and sets ``func`` to a function taking the parsed arguments.  A ``ValueError`` (bad input)
becomes a one-line ``mld: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that register subcommands, in the order they appear in ``mld --help``.
COMMAND_MODULES = [
    "experiments.commands_run",
    "experiments.commands_learning",
    "experiments.commands_cp2k",
    "experiments.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mld",
        description="Molecular learning dynamics: every nucleus is a learning agent.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue  # a command module not written yet
        module.register(subparsers)
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
