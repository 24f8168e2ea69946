"""All of ``microseis bench`` as one JSON-able dict, and its table."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge.bench.machine import machine_info, versions

__all__ = ["run_bench", "format_table", "SETTINGS"]

#: work per part: the default run (about 20 s on a 2-vCPU x86 VM) and --quick (tests)
SETTINGS = {
    "default": {"runs": 200, "budget_s": 2.0, "trigger_minutes": 60.0, "trigger_repeat": 2,
                "decoder_frames": 20_000, "decoder_repeat": 3, "replay_s": 30.0, "replay_minutes": 10.0},
    "quick": {"runs": 10, "budget_s": 0.3, "trigger_minutes": 1.0, "trigger_repeat": 1,
              "decoder_frames": 2_000, "decoder_repeat": 1, "replay_s": 5.0, "replay_minutes": 2.0},
}


def run_bench(bundle: str | None = None, trusted_keys: list[str] | None = None, quick: bool = False,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything (see :mod:`edge.bench`). ``bundle``: a ``.msb`` file (default: the
    shipped bundle), verified against ``trusted_keys`` (default: the shipped keys).

    Raises:
        edge.model.format.BundleError: the bundle cannot be used.
    """
    from edge.bench.decoder import decoder_mb_per_s
    from edge.bench.model import model_latency, threads_note
    from edge.bench.replay import replay_rtf
    from edge.bench.startup import cold_start
    from edge.bench.trigger import trigger_cost_per_hour
    from edge.model.inference import EventClassifier

    say = progress or (lambda _msg: None)
    s = SETTINGS["quick" if quick else "default"]
    t_start = time.perf_counter()
    clf = EventClassifier.load(bundle, trusted_keys=trusted_keys or None)
    m = clf.bundle.manifest
    say(f"model latency: {m.name} {m.version} ({len(m.models)} model file(s))")
    rows = model_latency(clf.bundle, runs=s["runs"], budget_s=s["budget_s"])
    say("trigger cost")
    trig = trigger_cost_per_hour(minutes=s["trigger_minutes"], repeat=s["trigger_repeat"])
    say("frame decoder")
    dec = decoder_mb_per_s(frames=s["decoder_frames"], repeat=s["decoder_repeat"])
    say("cold start of microseis run")
    start = cold_start(bundle=str(bundle) if bundle else None, replay_s=s["replay_s"])
    say("microseis replay real-time factor")
    rep = replay_rtf(bundle=str(bundle) if bundle else None, minutes=s["replay_minutes"])
    mach = machine_info()
    return {
        "benchmark": "microseis bench",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "machine": {"cpu_model": mach["cpu_model"], "cpu_count": mach["cpu_count"],
                    "cpus_usable": len(mach["cpu_affinity"] or []) or mach["cpu_count"],
                    "uname": mach["uname"]},
        "versions": versions(),
        "model": {"bundle": clf.bundle.path, "name": m.name, "version": m.version,
                  "mc_passes": int(m.mc_dropout.get("passes", 1) or 1), "threads": threads_note(),
                  "rows": rows},
        "trigger": trig,
        "decoder": dec,
        "cold_start": start,
        "replay_rtf": rep["realtime_factor"],
        "replay": rep,
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def _n(v: Any, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def format_table(r: dict[str, Any]) -> str:
    """The readable report of :func:`run_bench`'s result."""
    mach, v, mod = r["machine"], r["versions"], r["model"]
    lines = [
        f"microseis bench  {r['time']}{'  (quick)' if r.get('quick') else ''}",
        f"machine   {mach['cpu_model']}, {mach['cpu_count']} CPU(s) ({mach['cpus_usable']} usable), {mach['uname']}",
        "versions  " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "",
        f"model {mod['name']} {mod['version']}: MC batch = {mod['mc_passes']} passes; {mod['threads']}",
        f"  {'file':<22}{'runtime':<13}{'precision':<10}{'batch 1 p50/p99 ms':>20}{'MC batch p50/p99 ms':>22}",
    ]
    for row in mod["rows"]:
        name = row["file"] + (" *" if row.get("default") else "")
        if "skipped" in row:
            lines.append(f"  {name:<22}{row['runtime']:<13}{row['precision']:<10}  skipped: {row['skipped']}")
        else:
            b1 = f"{_n(row['batch1_p50_ms'])} / {_n(row['batch1_p99_ms'])}"
            mc = f"{_n(row['mc_p50_ms'])} / {_n(row['mc_p99_ms'])}"
            lines.append(f"  {name:<22}{row['runtime']:<13}{row['precision']:<10}{b1:>20}{mc:>22}")
    t, d, c = r["trigger"], r["decoder"], r["cold_start"]
    lines += [
        "  (* the bundle's default model, the one the station runs)",
        "",
        f"trigger   {_n(t['s_per_hour'], '.3f')} CPU s per hour of 3-channel 250 Hz data "
        f"({_n(t['percent_of_one_core'], '.4f')} % of one core)",
        f"decoder   {_n(d['mb_per_s'])} MB/s ({_n(d['msamples_per_s'], '.3f')} Msamples/s, int24 frames)",
        f"start     {_n(c['ready_s'])} s from process start to READY=1; peak RSS {_n(c['peak_rss_mb'], '.1f')} MB "
        f"(microseis run on a {c['replay_s']:g} s replay)" + (f"; error: {c['error']}" if c.get("error") else ""),
        f"replay    real-time factor: - ({r['replay'].get('error')})"
        if r["replay_rtf"] is None else
        f"replay    real-time factor {r['replay_rtf']:.0f} x (microseis replay, "
        f"{r['replay']['data_hours'] * 60:.0f} min of 3 x 250 Hz, {r['replay']['alerts']} alerts for "
        f"{r['replay']['events']} bursts, model included)",
        f"took {r['seconds']} s",
    ]
    return "\n".join(lines)
