"""``microseis simulate``: a virtual digitizer on a pseudo-terminal.

Streams frames per the digitizer spec, in real time or ``--speed X`` (0 = no pacing: as fast as
the reader takes them), from ObsPy-readable
waveform files (scaled to counts) or synthetic noise, with optional fault injection.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict

from edge.cli import CommandError

_ENCODINGS = {"int24": 1, "int32": 2, "int16": 3}


def add_simulator_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``simulate`` and ``link --simulate``."""
    g = p.add_argument_group("virtual digitizer")
    g.add_argument("--source", nargs="+", metavar="FILE", default=None,
                   help="waveform files (any format ObsPy reads) to stream; default: synthetic noise")
    g.add_argument("--speed", type=float, default=1.0,
                   help="multiple of real time (default 1; 0 = as fast as the reader takes it)")
    g.add_argument("--faults", default="", metavar="SPEC",
                   help="fault injection, e.g. 'garbage=0.05,bitflip=0.01,drop=0.01,truncate=0.005,"
                        "restart=60,wrap,pps-loss=20:30,unplug=40:5,seed=1' or 'all'")
    g.add_argument("--frame-samples", type=int, default=25, help="samples per channel per frame (25)")
    g.add_argument("--encoding", choices=sorted(_ENCODINGS), default="int24")
    g.add_argument("--rate", type=float, default=250.0, help="sampling rate of synthetic noise, Hz (250)")
    g.add_argument("--nch", type=int, default=3, help="channels of synthetic noise (3)")
    g.add_argument("--loop", action="store_true", help="replay the files endlessly")
    g.add_argument("--now", action="store_true", help="stamp file samples with the current time")
    g.add_argument("--sim-duration", type=float, default=None, metavar="S",
                   help="stop the digitizer after S seconds of stream time")
    g.add_argument("--seed", type=int, default=0, help="seed of the synthetic noise (0)")


def build_digitizer(args: argparse.Namespace, link: str | None):
    """A :class:`VirtualDigitizer` from parsed options (raises CommandError on bad ones)."""
    from firmware_bridge.faults import FaultSpec
    from firmware_bridge.simulator import SimulatorConfig, VirtualDigitizer
    from firmware_bridge.sources import NoiseSource, source_from_files

    enc = _ENCODINGS[args.encoding]
    try:
        faults = FaultSpec.parse(args.faults)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.speed < 0:
        raise CommandError("--speed must be ≥ 0")
    if args.source:
        try:
            source = source_from_files(args.source, enc=enc, loop=args.loop)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    else:
        if not 1 <= args.nch <= 8 or args.rate <= 0:
            raise CommandError("--nch must be 1..8 and --rate > 0")
        source = NoiseSource(sampling_rate=args.rate, nch=args.nch, seed=args.seed)
    config = SimulatorConfig(frame_samples=args.frame_samples, enc=enc, speed=args.speed,
                             restamp_now=args.now, duration_s=args.sim_duration, faults=faults)
    try:
        return VirtualDigitizer(source, config, link=link)
    except (ValueError, OSError) as exc:
        raise CommandError(f"cannot start the virtual digitizer: {exc}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="virtual digitizer on a pseudo-terminal",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_simulator_arguments(p)
    p.add_argument("--link", metavar="PATH",
                   help="make PATH a symlink to the pty (stable across simulated unplug/replug)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="run for S seconds of stream time (default: until the files end or Ctrl-C)")
    p.add_argument("--json", action="store_true", help="last line: JSON with what was sent")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.duration is not None:
        args.sim_duration = args.duration
    sim = build_digitizer(args, link=args.link)
    if sim.config.faults.unplug and not args.link:
        print("warning: unplug changes the pty path; give --link PATH for a stable one", file=sys.stderr)
    print(f"virtual digitizer on {sim.port.path}" + (f" (link {args.link})" if args.link else ""),
          flush=True)
    if args.speed == 0:
        print("speed 0: no pacing: frames go as fast as the reader takes them (nothing is sent "
              "while no one reads the pty)", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sim.start()
    while not stop.is_set() and not sim.wait(0.2):
        pass
    sim.stop()
    stats = asdict(sim.stats)
    stats["bytes_unsent"] = sim.port.bytes_unsent
    if args.json:
        print(json.dumps(stats))
    else:
        print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return 0
