"""The ``microseis`` command.

``edge`` owns the command; every subcommand (``edge``'s own, and those that ``trainer`` and
``export`` add) is a plug-in found through the ``microseis.commands`` entry-point group. Each
entry point names a light ``register(subparsers)`` function that adds its parser and sets
``func``; heavy imports (torch, obspy, onnxruntime) happen only when that subcommand runs.
"""
from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

from edge import __version__

ENTRY_POINT_GROUP = "microseis.commands"


class CommandError(Exception):
    """A failure the user can fix: printed as one line, exit status 2."""


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is no option or
    ``--log-level``'s value), or None."""
    args = iter(argv)
    for word in args:
        if word == "--log-level":
            next(args, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``microseis`` parser. With ``argv`` naming a known subcommand, only that plug-in
    is loaded (``microseis run`` does not import the workstation commands' modules: 0.1-0.2 s
    of the station's start, docs/performance.md); otherwise all of them (help, typos)."""
    parser = argparse.ArgumentParser(
        prog="microseis",
        description="microseis-edge: seismic early-warning station for unstable slopes.",
    )
    parser.add_argument("--version", action="version", version=f"microseis-edge {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level on stderr (INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    wanted = _command_of(argv) if argv is not None else None
    if wanted is not None and any(ep.name == wanted for ep in eps):
        eps = [ep for ep in eps if ep.name == wanted]
    for ep in eps:
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in must not take the station's CLI down
            print(f"microseis: warning: subcommand {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"microseis {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
