"""Every ``mld`` command's ``--help`` renders (argparse fails only when asked, e.g. on a bare % in a help text)."""

import argparse

from experiments.cli import build_parser


def _parsers(parser, path=("mld",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_help_renders_with_its_defaults():
    seen = []
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert text.startswith("usage: " + " ".join(path)), path
        seen.append(" ".join(path[1:]))
    assert {"beyond", "cp2k probes", "cp2k label", "contacts", "fit"} <= set(seen)
