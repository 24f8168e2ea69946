#!/usr/bin/env python3
"""What the station said about each catalogue event of a continuous benchmark, and what each
unmatched alert was: the tool for tuning the station on the ``train`` split.

Reads a benchmark data folder (``microseis synth-continuous`` layout, see
``bench/continuous.py``) and the alerts ``bench/continuous.py --work W`` left in
``W/alerts/<site>.jsonl``; matches them with the scorecard's own rule
(:func:`edge.station.scorecard.match`) and prints, per site:

* each catalogue event (noise transients with ``--noise``): class, onset, the generator's
  SNR (dB), band and peak frequency (Hz), magnitude/distance/S-P of a quake; then the
  station's alerts on it (class, delay of trigger-on after the onset, trigger bands, peak
  STA/LTA, ML with its method and S-P) or ``MISSED`` (``merged`` when inside another event's
  alert);
* each unmatched alert (a false alert): time, duration, bands, channels, peak, class, and
  the nearest catalogue event.

    python bench/diagnose_continuous.py --data /tmp/cb/train/data --alerts /tmp/tune/train/alerts
    python bench/diagnose_continuous.py ... --only missed,false,ml    # only the problems
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.station.scorecard import NOISE, alerts_from_dicts, match, parse_time, read_catalog  # noqa: E402


def _rows(catalog: Path, site: str) -> dict[float, dict[str, str]]:
    with catalog.open(newline="", encoding="utf-8") as f:
        return {parse_time(r["time"]): r for r in csv.DictReader(f)
                if r.get("site", site) in (site, site.split(".")[-1])}


def _bands(msg: dict) -> str:
    seen = []
    for sub in msg.get("sub_triggers", {}).get("triggers", []):
        for b in sub["bands"]:
            s = f"{b[0]:g}-{b[1]:g}"
            if s not in seen:
                seen.append(s)
    return ",".join(seen)


def _alert_line(msg: dict, onset: float | None) -> str:
    on = parse_time(msg["trigger_on"])
    mag = msg.get("magnitude") or {}
    subs = msg.get("sub_triggers", {}).get("count", 1)
    delay = f"{on - onset:+6.2f}s" if onset is not None else msg["trigger_on"][11:22]
    ml = ""
    if mag.get("ml") is not None:
        ml = (f" ML {mag['ml']:.2f} ({mag.get('ml_method', '?')}, S-P "
              f"{mag.get('s_minus_p_s', mag.get('s_minus_p_max_s', float('nan'))):.2f}s)")
    return (f"{delay} {msg['class']:<10} dur {msg['duration_s']:6.2f}s subs {subs} peak "
            f"{msg['cft_peak']:6.1f} bands {_bands(msg)} ch {len(msg.get('channels', []))}{ml}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="benchmark data folder")
    ap.add_argument("--alerts", type=Path, required=True, help="folder of <site>.jsonl alert files")
    ap.add_argument("--only", default="", help="comma list of missed,false,ml,split (default: everything)")
    ap.add_argument("--noise", action="store_true", help="list noise transients too")
    args = ap.parse_args()
    only = {w for w in args.only.split(",") if w}
    sites = json.loads((args.data / "sites.json").read_text())["sites"]
    for s in sites:
        sid = f"{s['network']}.{s['station']}"
        path = args.alerts / f"{s['station']}.jsonl"
        if not path.is_file():
            continue
        msgs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        msgs = [m for m in msgs if m.get("type") != "new"]
        by_id = {m["id"]: m for m in msgs}
        rows = _rows(args.data / "catalog.csv", sid)
        events = [e for e in read_catalog(args.data / "catalog.csv") if e.site in (sid, s["station"])]
        res = match(events, alerts_from_dicts(msgs))
        print(f"== {sid} {s['sampling_rate']:g} Hz {s['instrument']} tone {s['tone']} "
              f"fracture band {s['fracture_band_hz']} rockfall band {s['rockfall_band_hz']}")
        for m in res.events:
            e, r = m.event, rows.get(m.event.time, {})
            if e.label == NOISE and not args.noise:
                continue
            alerts = [by_id[a.id] for a in m.alerts]
            ml_bad = (e.label == "earthquake" and e.magnitude is not None and alerts
                      and (alerts[0]["magnitude"].get("ml") is None
                           or abs(alerts[0]["magnitude"]["ml"] - e.magnitude) > 0.3))
            flags = {"missed": not alerts, "split": len(alerts) > 1, "ml": bool(ml_bad)}
            if only and not any(flags[k] for k in only if k in flags):
                continue
            quake = (f" M {e.magnitude:.2f} r {r.get('distance_km')} km S-P {r.get('sp_s')}s"
                     if e.label == "earthquake" else "")
            head = (f"  {r.get('time', '')[11:23]} {e.label:<10} {r.get('subtype', ''):<10} snr "
                    f"{r.get('snr_db', ''):>6} dB band {r.get('band_hz', ''):<14} peak "
                    f"{r.get('peak_freq_hz', ''):>8} dur {r.get('duration_s', '')}{quake}")
            print(head)
            if not alerts:
                print("      MISSED" + (" (merged into another event's alert)" if m.merged else ""))
            for a in alerts:
                print("      " + _alert_line(a, e.time))
        if not only or "false" in only:
            for a in res.unmatched:
                near = min(events, key=lambda e: abs(e.time - a.trigger_on), default=None)
                where = (f"; nearest {near.label} at {a.trigger_on - near.time:+.1f}s" if near else "")
                print("  FALSE " + _alert_line(by_id[a.id], None) + where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
