"""``mld app``: step the agents in a browser (a Mesa SolaraViz page, :mod:`experiments.app`)."""

from __future__ import annotations


def _app(args) -> int:
    # Imported here, not at the top: the page needs the optional ``app`` extra (solara, plotly), and
    # every other command runs without it.
    from experiments.app import app_command

    return app_command(args)


def register(subparsers, common) -> None:
    p = subparsers.add_parser("app", help="step the agents in a browser (needs: pip install -e '.[app]')")
    p.add_argument("--loss", default=None, help="agent-loss JSON (default: learn the embedded fit, about 2 s)")
    p.add_argument("--data", default=None, help="CP2K run directory or .inp (default: the embedded run)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1, this machine only)")
    p.set_defaults(func=_app)
