"""``microseis run --config FILE``: the station daemon (what the systemd unit starts).

Reads the digitizer (or the virtual digitizer, or a replay), triggers, classifies with the
model bundle, and publishes alerts over MQTT with a durable outbox. Configuration:
docs/configuration.md (``microseis run --print-example-config`` prints a commented file).
Stops cleanly on SIGTERM/SIGINT (publishes ``stopped``); exit 2 with a one-line reason when
the configuration or the model is unusable.
"""
from __future__ import annotations

import argparse

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the station daemon", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="station configuration (TOML)")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration and the model bundle, then exit "
                        "(writes nothing: no state folder, archive or outbox is created)")
    p.add_argument("--print-example-config", action="store_true",
                   help="print a commented configuration with every key and its default")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.station.config import ConfigError, example_config, load_config

    if args.print_example_config:
        print(example_config(), end="")
        return 0
    if not args.config:
        raise CommandError("--config FILE is required (see --print-example-config)")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    from edge.comms.outbox import OutboxError
    from edge.station.daemon import Daemon, DaemonError

    try:
        # --check writes nothing: no state folder, archive, outbox or broker connection
        daemon = Daemon(config, check_only=args.check)
    except (DaemonError, OutboxError, OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if args.check:
        info = daemon.classifier.info
        print(f"configuration {args.config}: ok; model {info.name} {info.version} ({info.file}, "
              f"{info.precision}{', synthetic training data' if info.synthetic else ''})")
        return 0
    try:
        return daemon.run()
    except DaemonError as exc:  # e.g. an unreadable replay file
        daemon.outbox.close()
        raise CommandError(str(exc)) from None
