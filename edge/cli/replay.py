"""``microseis replay [--config FILE] PATH... [--catalog CSV] [--out JSONL] [--json]``: the
station's own pipeline (trigger, event window, model, ML) run offline over continuous waveform
files at full speed, without a broker -- to tune the trigger on a day of your own archive
before going live. With ``--catalog`` the alerts are scored against a catalogue of the events
in the data (docs/replay.md, "The scorecard").

PATHs: waveform files in any format ObsPy reads (e.g. the day files of an SDS archive), of one
or several stations (NET.STA; one pipeline each, with the channels the files hold). The order
of the files does not matter (each channel's data are sorted by time; gaps are fine); data of
one channel that overlap are an error naming both files.

The configuration is the TOML file of ``microseis run``: [trigger], [event], [model] and
[magnitude] are used as the daemon uses them; [station] id/channels/rate come from the data,
[source] is replaced by the PATHs, and nothing is sent (no MQTT) or archived (unless
--archive). Without --config the built-in defaults are used.

Output: every ``end`` message as one JSON line -- to --out FILE, else on stdout (then the
readable summary goes to stderr, so that ``> alerts.jsonl`` keeps only the messages). With
--json stdout has one line, the summary as a JSON object (``alerts``, ``by_class``,
``data_hours``, ``wall_s``, ``realtime_factor``, ``stations``, and with --catalog the
scorecard's keys: ``recall``, ``false_alerts_per_hour``, ``split_events``, ``macro_f1``,
``ml_hit_0_3``, ...); the messages then go only to --out. Progress lines go to stderr at each
tenth of the data for replays of an hour or more (--quiet: none). Exit 2 with one line for
bad input (a missing or unreadable file, overlapping data, a bad catalogue row).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from edge.cli import CommandError

#: Replays of at least this many station-hours print progress lines.
PROGRESS_MIN_HOURS = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="the station's pipeline over continuous waveform files, "
                       "at full speed, optionally scored against a catalogue",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="waveform files (any ObsPy format)")
    p.add_argument("--config", metavar="FILE", help="station configuration (TOML) of microseis run "
                   "(default: the built-in defaults)")
    p.add_argument("--catalog", metavar="CSV", help="catalogue time,label[,magnitude,...] to score against")
    p.add_argument("--out", metavar="JSONL", help="write the end messages here, one per line")
    p.add_argument("--json", action="store_true", help="stdout: one JSON object with the summary")
    p.add_argument("--inventory", metavar="STATIONXML",
                   help="instrument responses (overrides [magnitude] stationxml)")
    p.add_argument("--model", metavar="BUNDLE",
                   help="model bundle (overrides [model] bundle; default: what the station runs)")
    p.add_argument("--archive", metavar="DIR",
                   help="also write the data (SDS MiniSEED) and event snippets here")
    p.add_argument("--chunk-s", type=float, default=None, metavar="S",
                   help="seconds of data per chunk fed to the pipeline (5)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--verbose", action="store_true", help="log every trigger and event on stderr")
    p.set_defaults(func=run)


def _config(path: str | None):
    from edge.station.config import ConfigError, StationConfig, load_config

    try:
        return load_config(path) if path else StationConfig.from_dict({})
    except ConfigError as exc:
        raise CommandError(str(exc).replace("\n", "; ")) from None


def _out(path: str | None) -> TextIO | None:
    if not path:
        return None
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--out {path}: {exc.strerror or exc}") from None


def _catalog(args: argparse.Namespace, classes: tuple[str, ...]):
    from edge.station.scorecard import ScorecardError, read_catalog

    try:
        return read_catalog(args.catalog, classes=classes)
    except ScorecardError as exc:
        raise CommandError(str(exc)) from None


def _score(catalog: str, events: list, result) -> tuple[Any, int]:
    """The scorecard of ``result`` against the catalogue ``events``; catalogue events outside
    the data replayed are left out (their count is returned with it)."""
    from edge.station.scorecard import (
        ScorecardError,
        alerts_from_dicts,
        score,
        site_matches,
    )

    plan = result.plan
    stations = list(plan.stations)

    def station_of(site: str) -> str | None:
        return next((s for s in stations if site_matches(site, s) or site_matches(s, site)), None)

    sites = sorted({e.site for e in events if e.site is not None})
    if sites and not any(station_of(s) for s in sites):
        raise CommandError(f"--catalog {catalog}: its sites ({', '.join(sites[:5])}) name none of "
                           f"the stations replayed ({', '.join(stations)})")
    kept = []
    for e in events:
        if e.site is None:
            if plan.covers(e.time):
                kept.append(e)
        else:
            sid = station_of(e.site)
            if sid is None or plan.covers(e.time, sid):
                kept.append(e)  # other sites' events are counted apart by score()
    if sites:
        # the stations the catalogue names are scored; others' alerts are counted apart
        named = {station_of(site) for site in sites} - {None}
        hours: Any = {sid: s.hours for sid, s in plan.stations.items() if sid in named}
    elif len(stations) == 1:
        hours = plan.stations[stations[0]].hours
    else:
        raise CommandError(f"--catalog {catalog}: the catalogue has no site column but the data "
                           f"hold {len(stations)} stations ({', '.join(stations)}): add a site column "
                           "or replay one station")
    try:
        return score(kept, alerts_from_dicts(result.ends), hours), len(events) - len(kept)
    except (ScorecardError, ValueError) as exc:
        raise CommandError(f"scorecard: {exc}") from None


def _progress(hours: float):
    def show(frac: float, wall_s: float) -> None:
        rtf = frac * hours * 3600.0 / wall_s if wall_s > 0 else float("inf")
        print(f"replay: {frac:4.0%} of {hours:.2f} h of data, {wall_s:.1f} s, {rtf:.0f}x real time",
              file=sys.stderr, flush=True)
    return show


def _table(summary: dict[str, Any]) -> str:
    rtf = summary["realtime_factor"]
    lines = [f"replayed {summary['data_hours']:.3f} h of data ({summary['files']} files, "
             f"{len(summary['stations'])} stations) in {summary['wall_s']:.1f} s"
             f" = {rtf:.0f}x real time" if rtf else "",
             f"alerts {summary['alerts']}" + (" (" + ", ".join(f"{k} {v}" for k, v in summary["by_class"].items())
                                              + ")" if summary["by_class"] else "")]
    for sid, s in summary["stations"].items():
        lines.append(f"  {sid}: {s['hours']:.3f} h, {','.join(c.split('.')[-1] for c in s['channels'])} "
                     f"at {s['sampling_rate']:g} Hz, {s['alerts']} alerts")
    if summary.get("window_errors"):
        lines.append(f"  {summary['window_errors']} event windows unusable (class unknown)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from edge.comms.messages import dumps
    from edge.model.manifest import StationCompat
    from edge.station.assemble import (
        SetupError,
        load_classifier,
        read_station_inventory,
    )
    from edge.station.replay import (
        DEFAULT_CHUNK_S,
        Publisher,
        ReplayError,
        check_model,
        replay,
        scan,
    )

    chunk_s = DEFAULT_CHUNK_S if args.chunk_s is None else args.chunk_s
    if not 0.01 <= chunk_s <= 9.0:
        raise CommandError(f"--chunk-s must be within [0.01, 9] s, got {chunk_s:g}")
    if not args.verbose:  # one line per trigger is too much for a day of data
        logging.getLogger("edge.station.pipeline").setLevel(logging.WARNING)
    cfg = _config(args.config)
    try:
        plan = scan(args.paths)
        models_dir = Path(cfg.models_dir)
        # the data decide the station's channels and rate: checked per station below
        classifier = load_classifier(cfg, models_dir, bundle=args.model,
                                     compat=StationCompat(channels=None, sampling_rate=None))
        check_model(plan, classifier, cfg)
        inventory = read_station_inventory(cfg, args.inventory)
    except (ReplayError, SetupError) as exc:
        raise CommandError(str(exc)) from None
    events = _catalog(args, classifier.classes) if args.catalog else None
    archive = None
    if args.archive:
        from edge.station.archive import SdsArchive

        archive = SdsArchive(args.archive, retention_days=0, max_disk_fraction=1.0)
    out = _out(args.out)
    sink = out if out is not None else (None if args.json else sys.stdout)

    def on_end(msg: dict[str, Any]) -> None:
        if sink is not None:
            sink.write(dumps(msg) + "\n")

    hours = plan.data_hours
    show = _progress(hours) if hours >= PROGRESS_MIN_HOURS and not args.quiet else None
    try:
        result = replay(plan, cfg, classifier, Publisher(on_end), inventory=inventory, archive=archive,
                        chunk_s=chunk_s, progress=show)
    except (ReplayError, SetupError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        if out is not None:
            out.close()
        if archive is not None:
            archive.close()
    summary = result.summary()
    card = None
    if events is not None:
        card, outside = _score(args.catalog, events, result)
        summary = {**card.to_dict(), **summary, "catalog_outside_data": outside}
    if args.json:
        print(json.dumps(summary, allow_nan=False))
        return 0
    text = _table(summary)
    if card is not None:
        text += "\n\n" + card.format_table()
        if summary["catalog_outside_data"]:
            text += f"\n({summary['catalog_outside_data']} catalogue events outside the data replayed: not scored)"
    print(text, file=sys.stdout if sink is not sys.stdout else sys.stderr)
    return 0
