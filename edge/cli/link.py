"""``microseis link``: is the digitizer link healthy? A live view for the installer.

Reads the digitizer's serial port, decodes every frame and shows per channel the samples,
nominal and measured rate, time quality and clipping, next to the link's defects: CRC and
header errors, skipped bytes, lost frames, gaps, segments, disconnects. With ``--simulate``
it first starts a virtual digitizer on a pseudo-terminal and reads that.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time

from edge.cli import CommandError
from edge.cli.simulate import add_simulator_arguments, build_digitizer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("link", help="read the digitizer and report what arrives",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", metavar="PATH", help="serial device, e.g. /dev/ttyACM0 or /dev/digitizer")
    p.add_argument("--baud", type=int, default=921600, help="baud rate (921600; ignored by USB-CDC)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="last line of stdout: the summary as JSON")
    p.add_argument("--station", default="XX.S1", help="NET.STA of this digitizer (XX.S1)")
    p.add_argument("--channels", default="HHZ,HHN,HHE",
                   help="channel codes in the digitizer's channel order (HHZ,HHN,HHE)")
    p.add_argument("--location", default="", help="location code ('')")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="refresh interval (1 s)")
    p.add_argument("--simulate", action="store_true",
                   help="start a virtual digitizer on a pty and read it (no hardware needed)")
    add_simulator_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from firmware_bridge.decoder import FrameDecoder
    from firmware_bridge.link_monitor import LinkMonitor
    from firmware_bridge.protocol import StreamConfig
    from firmware_bridge.serial_reader import SerialReader, SerialSettings

    try:
        config = StreamConfig.from_strings(args.station, args.channels, args.location)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.duration is not None and args.duration <= 0:
        raise CommandError("--duration must be > 0 seconds")
    sim = None
    port = args.port
    if args.simulate:
        if port:
            raise CommandError("give either --port or --simulate, not both")
        link = os.path.join(tempfile.mkdtemp(prefix="microseis-sim-"), "digitizer")
        sim = build_digitizer(args, link=link)
        port = sim.path
        print(f"virtual digitizer on {sim.port.path} (link {link})", file=sys.stderr, flush=True)
        sim.start()
    elif not port:
        raise CommandError("--port PATH is required (or --simulate for a virtual digitizer)")

    decoder = FrameDecoder(config)
    reader = SerialReader(SerialSettings(port=port, baudrate=args.baud), decoder)
    monitor = LinkMonitor(config)
    live = sys.stdout.isatty() and not args.json
    signal.signal(signal.SIGTERM, lambda *_: reader.stop())
    next_refresh = time.monotonic() + args.interval
    try:
        for item in reader.items(duration_s=args.duration):
            monitor.add(item)
            now = time.monotonic()
            if now >= next_refresh:
                next_refresh = now + args.interval
                if live:
                    sys.stdout.write("\x1b[H\x1b[J" + monitor.table(decoder.stats, reader.stats, port) + "\n")
                    sys.stdout.flush()
                else:
                    st = decoder.stats
                    print(f"[{time.time() - monitor.started:6.1f} s] frames {st.frames} "
                          f"samples {st.samples} gaps {st.gaps} lost {st.lost_frames} "
                          f"crc {st.crc_errors} skipped {st.skipped_bytes}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if sim is not None:
            sim.stop()
            os.path.lexists(sim.path) and os.unlink(sim.path)
            os.rmdir(os.path.dirname(sim.path))
    summary = monitor.summary(decoder.stats, reader.stats, port)
    if live:
        sys.stdout.write("\x1b[H\x1b[J")
    print(monitor.table(decoder.stats, reader.stats, port))
    if args.json:
        print(json.dumps(summary))
    if decoder.stats.frames == 0:
        print(f"microseis link: error: no frames received from {port}", file=sys.stderr)
        return 1
    return 0
