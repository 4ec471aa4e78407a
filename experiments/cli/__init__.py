"""The ``mld`` command line.

Each command group lives in its own module with ``register(subparsers, common)``, which adds its
parsers and sets ``func`` to a function taking the parsed arguments.  A ``ValueError`` (bad input)
becomes a one-line ``mld: error: ...`` and exit code 2; a warning a one-line ``mld: warning: ...``;
Ctrl-C outside a run that handles it a one-line ``mld: interrupted`` and exit code 130.  Every
``--help`` shows each option's default.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import metadata

from experiments.cli import analyze, app, bench, beyond, dft, fit, run, sweep

#: The command groups, in the order they appear in ``mld --help``.
COMMAND_GROUPS = (run, analyze, beyond, sweep, app, fit, dft, bench)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to every option whose help does not already say its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings
                or isinstance(action, argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    try:
        return metadata.version("molecular-learning-dynamics")
    except metadata.PackageNotFoundError:
        from learning import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mld",
        description="Molecular learning dynamics: every nucleus is a learning agent.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mld {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    for group in COMMAND_GROUPS:
        group.register(subparsers, common)
    for command in subparsers.choices.values():
        command.formatter_class = DefaultsHelpFormatter
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"mld: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        result = args.func(args)
    except ValueError as err:
        print(f"mld: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mld: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
