#!/usr/bin/env python3
"""Build the demo scenario shipped in ``edge/demo/`` (what ``microseis demo`` replays):

    python bench/make_demo_scenario.py            # writes edge/demo/scenario.{mseed,json}, stations.xml
    python bench/make_demo_scenario.py --explore  # trigger check of every candidate event, no output

1. ``microseis synth`` (:data:`SYNTH_ARGS`: 80 events, seed 11, equal classes, earthquakes
   at 2-8 km with ML 0.5-1.5) into a temporary folder;
2. one event of each class from it (:data:`PICKS`, all recorded at station ``XX.S3``, so one
   response serves them all), each with a clear onset in the 1-20 Hz trigger band. The
   earthquakes are local (S-P under 1 s): P and S then make one trigger; at larger distances
   the P trigger ends before the S arrives and the reference trigger counts the S as a
   second event. The earthquakes come last: their energy holds the 10 s LTA up for about a
   minute, and a weak event in that time would not trigger;
3. one continuous 3-component recording ``XX.DEMO..HH{Z,N,E}`` at 250 Hz, int32 counts:
   15 s of synthetic background noise (``trainer.synth.noise.background_noise`` through the
   S3 response), the four synthetic events, the real earthquake of ObsPy's test file
   ``loc_RJOB20050801145719850.{z,n,e}`` (200 Hz ASCII, resampled 5/4 to 250 Hz, mean
   removed, scaled to the synthetic earthquake's peak), then 15 s of noise. Every segment is
   spliced into the continuous background with 0.5 s equal-power (sine/cosine) cross-fades
   after its mean is removed, so no join makes a step or a spike; segments other than the
   earthquake are scaled so that their pre-event noise in the trigger band (1-20 Hz) matches
   the background's (the earthquake keeps its amplitude, hence its magnitude; the background
   is scaled to the earthquake's pre-event noise);
4. the check: ObsPy's ``coincidence_trigger("recstalta", 5, 1.5, st, 2, sta=0.2, lta=10)``
   after a causal 1-20 Hz band-pass per component (and Z alone with ``trigger_onset``) must
   trigger exactly once per event, within 1 s of its expected time, and nowhere else. The
   table is printed; the script fails (exit 1) without writing when the check fails. The
   trigger that ObsPy finds for each event is recorded in ``scenario.json``
   (``obspy_trigger``, ``obspy_trigger_s``, ``obspy_duration_s``).
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.demo import REFERENCE_TRIGGER, reference_triggers  # noqa: E402

OUT_DIR = ROOT / "edge" / "demo"
SEED = 11
N_EVENTS = 80
#: ``microseis synth`` options besides --out/--events/--seed: close, small earthquakes (S-P
#: 0.2-1 s) so that P and S make one trigger.
SYNTH_ARGS = ("--sites", "fixed", "--balance", "equal", "--distance-km", "2", "8", "--magnitude-range", "0.5", "1.5")
FS = 250.0  # Hz
NETWORK, STATION, LOCATION = "XX", "DEMO", ""
CHANNELS = ("HHZ", "HHN", "HHE")
SOURCE_STATION = "S3"  # synthetic station whose response the scenario uses
STARTTIME = "2025-06-01T12:00:00.000000Z"
LEAD_S = 15.0  # background noise before the first and after the last event (s)
GAP_S = 20.0  # background between the end of one event's signal and the next onset (s)
PRE_S = 8.0  # event-file seconds kept before the onset (s)
POST_S = 6.0  # event-file seconds kept after the signal's end (s), at most to the file's end
FADE_S = 0.5  # cross-fade length (s)
MAX_TRIGGER_ERROR_S = 1.0

#: The events, in the order they appear: class -> event file of ``microseis synth`` with
#: :data:`SYNTH_ARGS` (all at station XX.S3; ``--explore`` checks every candidate):
#: fracture 67 Hz, SNR 28 dB; rockfall 7.3 s long, SNR 27 dB; a spike (noise transient),
#: SNR 42 dB; earthquake ML 0.82 at 5.2 km (S-P 0.61 s). The real RJOB earthquake follows.
PICKS: dict[str, str] = {
    "fracture": "ev00041",
    "rockfall": "ev00027",
    "noise": "ev00019",
    "earthquake": "ev00051",
}

RJOB_FILES = "signal/tests/data/loc_RJOB20050801145719850.{}"  # relative to the obspy package
RJOB_FS = 200.0  # Hz
RJOB_P_S = 30.635  # P onset after the file start (s), ObsPy's ar_pick test value
RJOB_SOURCE = ("real: ObsPy test data signal/tests/data/loc_RJOB20050801145719850.{z,n,e}, "
               "station RJOB (BayernNetz, network BW; Jochberg, Bavarian Alps), a very local "
               "earthquake recorded 2005-08-01 from 14:57:19.85 (time from the file name); "
               "plain ASCII columns, 200 Hz, 60 s, units not stated (scaled here); "
               "P at 30.635 s, S ~31.17 s (ObsPy's ar_pick test)")


# ---------------------------------------------------------------------------------------
def make_dataset(out: Path) -> Path:
    """Run ``microseis synth`` (:data:`SYNTH_ARGS`, seed 11, 80 events) into ``out``; returns ``out``."""
    cmd = [sys.executable, "-m", "edge", "synth", "--out", str(out), "--events", str(N_EVENTS),
           "--seed", str(SEED), *SYNTH_ARGS, "--force"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def read_truth(root: Path) -> dict[str, dict[str, str]]:
    """``truth.csv`` rows keyed by event name (``ev00019``)."""
    with open(root / "truth.csv", newline="") as f:
        return {Path(r["path"]).stem: r for r in csv.DictReader(f)}


def band_rms(x: np.ndarray, fs: float = FS) -> float:
    """Mean rms (counts) of the rows of ``x`` after the trigger's causal band-pass."""
    from obspy.signal.filter import bandpass

    p = REFERENCE_TRIGGER
    y = [bandpass(r - r.mean(), p["freqmin"], p["freqmax"], fs, corners=int(p["corners"]))
         for r in np.atleast_2d(x)]
    # skip the filter's start-up (first second)
    return float(np.sqrt(np.mean([np.mean(v[int(fs):] ** 2) for v in y])))


def event_segment(root: Path, name: str, row: dict[str, str]) -> tuple[np.ndarray, int, float]:
    """``(counts (3, n) float, onset index, signal duration s)`` of one synthetic event:
    from :data:`PRE_S` before the labelled onset to :data:`POST_S` after the signal (or the
    file's end), mean of its pre-event part removed per component."""
    import obspy

    st = obspy.read(str(root / "waveforms" / f"{name}.mseed"))
    st.sort(keys=["channel"], reverse=True)  # DPZ, DPN, DPE
    assert [tr.stats.channel[-1] for tr in st] == ["Z", "N", "E"], st
    t0 = st[0].stats.starttime
    onset_t = obspy.UTCDateTime(row["trigger_time"])
    onset = int(round((onset_t - t0) * FS))
    x = np.vstack([tr.data.astype(np.float64) for tr in st])
    dur = float(row["duration_s"] or 0.0)
    a = max(0, onset - int(round(PRE_S * FS)))
    b = min(x.shape[1], onset + int(round((dur + POST_S) * FS)))
    seg = x[:, a:b]
    seg -= seg[:, : onset - a].mean(axis=1, keepdims=True)
    return seg, onset - a, dur


def rjob_segment() -> tuple[np.ndarray, int]:
    """``(data (3, n) float at 250 Hz, P index)`` of ObsPy's RJOB test recording, mean removed."""
    import obspy
    from scipy.signal import resample_poly

    base = Path(obspy.__file__).parent
    x = np.vstack([np.loadtxt(base / RJOB_FILES.format(c)) for c in "zne"])
    y = resample_poly(x, 5, 4, axis=1)
    y -= y.mean(axis=1, keepdims=True)
    return y, int(round(RJOB_P_S * FS))


def background(n: int, rms_counts: float, gain: float, seed: int = SEED) -> np.ndarray:
    """``(3, n)`` counts of the generator's background noise (``background_noise`` through the
    station response with pre-amp ``gain``), scaled to band rms ``rms_counts`` (counts)."""
    from trainer.synth.noise import background_noise
    from trainer.synth.response import apply_response

    rng = np.random.default_rng([seed, 0xDE30])
    lead = int(5 * FS)
    vel, _info = background_noise(rng, n + lead, FS, 1e-8)
    x = apply_response(vel, gain, FS)[:, lead:]
    x -= x.mean(axis=1, keepdims=True)
    return x * (rms_counts / band_rms(x))


def splice(base: np.ndarray, seg: np.ndarray, at: int, fade: int) -> None:
    """Put ``seg`` into ``base`` at sample ``at`` (in place) with equal-power sine/cosine
    cross-fades of ``fade`` samples at both ends (weights a**2 + b**2 = 1: no level dip for
    uncorrelated noise, no step since both sides are zero-mean)."""
    n = seg.shape[1]
    w = np.ones(n)
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)
    w[:fade] = ramp
    w[n - fade:] = ramp[::-1]
    cw = np.sqrt(np.clip(1.0 - w**2, 0.0, 1.0))
    base[:, at:at + n] = base[:, at:at + n] * cw + seg * w


# ---------------------------------------------------------------------------------------
def build(root: Path, picks: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """The scenario stream and its metadata dict from the synthetic dataset in ``root``."""
    import obspy
    from obspy import Stream, Trace, UTCDateTime

    from trainer.synth.response import ADC_FULL_SCALE_COUNTS

    truth = read_truth(root)
    segs: list[dict[str, Any]] = []
    for label, name in picks.items():
        row = truth[name]
        assert row["label"] == label, (name, row["label"], label)
        assert row["station"] == f"XX.{SOURCE_STATION}", (name, row["station"])
        seg, onset, dur = event_segment(root, name, row)
        segs.append({"label": label, "name": name, "row": row, "x": seg, "onset": onset, "dur": dur})
    eq = next(s for s in segs if s["label"] == "earthquake")
    noise_ref = band_rms(eq["x"][:, : eq["onset"]])
    eq_peak = float(np.max(np.abs(eq["x"])))
    for s in segs:
        s["scale"] = 1.0 if s is eq else noise_ref / band_rms(s["x"][:, : s["onset"]])
        s["x"] = s["x"] * s["scale"]

    rj, rj_p = rjob_segment()
    rj_scale = eq_peak / float(np.max(np.abs(rj)))
    segs.append({"label": "earthquake", "name": "RJOB", "row": None, "x": rj * rj_scale,
                 "onset": rj_p, "dur": rj.shape[1] / FS - RJOB_P_S, "scale": rj_scale})

    # layout (samples)
    cursor = int(LEAD_S * FS) - int(round(PRE_S * FS))
    prev_end = None
    for s in segs:
        pre = s["onset"]
        if prev_end is not None:
            cursor = max(cursor, prev_end + int(GAP_S * FS) - pre)
        s["at"] = cursor
        prev_end = cursor + pre + int(round(s["dur"] * FS))
        cursor += s["x"].shape[1]
    n_total = max(cursor, prev_end) + int(LEAD_S * FS)

    gain = float(eq["row"]["preamp_gain"])
    x = background(n_total, noise_ref, gain)
    fade = int(round(FADE_S * FS))
    for s in segs:
        splice(x, s["x"], s["at"], fade)
    data = np.clip(np.rint(x), -ADC_FULL_SCALE_COUNTS, ADC_FULL_SCALE_COUNTS - 1).astype(np.int32)

    t0 = UTCDateTime(STARTTIME)
    st = Stream([Trace(data=np.ascontiguousarray(data[c]), header={
        "network": NETWORK, "station": STATION, "location": LOCATION, "channel": ch,
        "sampling_rate": FS, "starttime": t0}) for c, ch in enumerate(CHANNELS)])

    inv = obspy.read_inventory(str(root / "stations.xml"))
    sens = inv.select(station=SOURCE_STATION, channel="*Z")[0][0][0].response.instrument_sensitivity
    events = []
    for s in segs:
        t_on = t0 + (s["at"] + s["onset"]) / FS
        if s["row"] is not None:
            row = s["row"]
            ev = {
                "class": s["label"],
                "subtype": row["subtype"],
                "expected_trigger": str(t_on),
                "expected_trigger_s": round((s["at"] + s["onset"]) / FS, 3),
                "magnitude": float(row["magnitude"]) if row["magnitude"] else None,
                "source": f"synthetic: microseis synth --events {N_EVENTS} --seed {SEED} "
                          f"{' '.join(SYNTH_ARGS)}, {s['name']} at XX.{SOURCE_STATION}",
                "amplitude_scale": round(s["scale"], 6),
                "snr_db": float(row["snr_db"]),
                "duration_s": round(s["dur"], 3),
            }
            for k in ("distance_km", "s_minus_p_s", "peak_freq_hz"):
                if row[k]:
                    ev[k] = float(row[k])
        else:
            ev = {
                "class": "earthquake",
                "subtype": "real",
                "expected_trigger": str(t_on),
                "expected_trigger_s": round((s["at"] + s["onset"]) / FS, 3),
                "magnitude": None,
                "source": RJOB_SOURCE,
                "amplitude_scale": round(s["scale"], 6),
                "record_start_s": round(s["at"] / FS, 3),
                "note": "resampled 200 -> 250 Hz (scipy resample_poly 5/4), mean removed, scaled so "
                        "its peak equals the synthetic earthquake's peak (counts); magnitude unknown",
            }
        events.append(ev)

    meta = {
        "schema": "microseis/demo-scenario/1",
        "file": "scenario.mseed",
        "station": f"{NETWORK}.{STATION}",
        "location": LOCATION,
        "channels": list(CHANNELS),
        "sampling_rate": FS,
        "starttime": str(t0),
        "duration_s": round(n_total / FS, 3),
        "units": "counts (int32)",
        "sensitivity_counts_per_m_s": float(sens.value),
        "sensitivity_frequency_hz": float(sens.frequency),
        "response": "stations.xml (synthetic 4.5 Hz geophone, pre-amp gain "
                    f"{gain:g}, 24-bit ADC: station XX.{SOURCE_STATION} of the synthetic dataset, "
                    "renamed XX.DEMO..HH?)",
        "background": "trainer.synth.noise.background_noise through the station response, "
                      f"rng default_rng([{SEED}, 0xDE30]); band (1-20 Hz) rms matched to the "
                      "synthetic earthquake's pre-event noise",
        "splice": f"{PRE_S:g} s before each onset; {FADE_S:g} s equal-power sine/cosine cross-fades; "
                  "segment means removed; non-earthquake synthetic segments scaled "
                  "(amplitude_scale) so their 1-20 Hz pre-event noise matches the background",
        "reference_trigger": dict(REFERENCE_TRIGGER),
        "generator": "bench/make_demo_scenario.py",
        "events": events,
    }
    return st, {"meta": meta, "inventory": inv}


def demo_inventory(inv: Any) -> Any:
    """The synthetic station :data:`SOURCE_STATION` of ``inv`` renamed ``XX.DEMO``, location
    ``""``, channels ``HHZ/HHN/HHE`` (same response)."""
    out = inv.select(station=SOURCE_STATION).copy()
    sta = out[0][0]
    sta.code = STATION
    sta.site.name = "Demo station (synthetic response of XX.S3)"
    for ch in sta.channels:
        ch.location_code = LOCATION
        ch.code = "HH" + ch.code[-1]
    return out


# ---------------------------------------------------------------------------------------
def check(st: Any, events: list[dict[str, Any]], verbose: bool = True) -> list[str]:
    """Compare the reference triggers with the expected events; returns the problems."""
    from obspy import UTCDateTime

    problems: list[str] = []
    for mode, trig in (("coincidence", reference_triggers(st)),
                       ("Z only", reference_triggers(st, coincidence=False))):
        exp = [UTCDateTime(e["expected_trigger"]) for e in events]
        used = [0] * len(exp)
        rows = []
        for t in trig:
            dt = [abs(t["time"] - e) for e in exp]
            k = int(np.argmin(dt))
            match = dt[k] <= MAX_TRIGGER_ERROR_S
            if match:
                used[k] += 1
            rows.append((t, k if match else None, t["time"] - exp[k]))
        if verbose:
            print(f"\n{mode}: {len(trig)} trigger(s), {len(events)} expected")
            print(f"{'trigger (s)':>11} {'dur (s)':>7} {'sum':>4}  {'expected':<28} {'error (s)':>9}")
            for t, k, err in rows:
                rel = t["time"] - st[0].stats.starttime
                name = (f"{events[k]['class']} ({events[k]['subtype']})" if k is not None
                        else "-- UNEXPECTED --")
                print(f"{rel:11.3f} {t['duration']:7.2f} {t.get('coincidence_sum', 1):>4}  "
                      f"{name:<28} {err:+9.3f}")
        for k, u in enumerate(used):
            if u != 1:
                problems.append(f"{mode}: event {k} ({events[k]['class']}) triggered {u} times")
        for t, k, _err in rows:
            if k is None:
                problems.append(f"{mode}: unexpected trigger at {t['time']}")
    return problems


def attach_reference(st: Any, events: list[dict[str, Any]]) -> None:
    """Add to each event the coincidence trigger ObsPy finds for it (``obspy_trigger`` ISO
    time, ``obspy_trigger_s`` after the file start, ``obspy_duration_s``); call after
    :func:`check` passed (exactly one trigger per event)."""
    from obspy import UTCDateTime

    t0 = st[0].stats.starttime
    for t in reference_triggers(st):
        k = int(np.argmin([abs(t["time"] - UTCDateTime(e["expected_trigger"])) for e in events]))
        events[k]["obspy_trigger"] = str(t["time"])
        events[k]["obspy_trigger_s"] = round(t["time"] - t0, 3)
        events[k]["obspy_duration_s"] = round(float(t["duration"]), 3)


def explore(root: Path) -> None:
    """Trigger check of every candidate event at station S3 spliced alone into background."""
    truth = read_truth(root)
    base = dict(PICKS)
    for name, row in truth.items():
        if row["station"] != f"XX.{SOURCE_STATION}" or row["label"] == "earthquake" and name != PICKS["earthquake"]:
            continue
        picks = {"earthquake": base["earthquake"]}
        if row["label"] != "earthquake":
            picks = {row["label"]: name, "earthquake": base["earthquake"]}
        st, info = build(root, picks)
        probs = check(st, info["meta"]["events"], verbose=False)
        print(f"{name} {row['label']:<10} {row['subtype']:<9} snr {row['snr_db']:>6} "
              f"{'OK' if not probs else '; '.join(probs)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--explore", action="store_true", help="check every S3 candidate, write nothing")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (edge/demo)")
    ap.add_argument("--keep", type=Path, default=None, help="synthetic dataset folder to reuse/keep")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="demo-synth-") as tmp:
        root = args.keep if args.keep else Path(tmp) / "synth"
        if not (root / "truth.csv").exists():
            make_dataset(root)
        if args.explore:
            explore(root)
            return 0
        st, info = build(root, PICKS)
        meta = info["meta"]
        problems = check(st, meta["events"])
        if problems:
            print("\nFAILED:\n  " + "\n  ".join(problems))
            return 1
        attach_reference(st, meta["events"])
        args.out.mkdir(parents=True, exist_ok=True)
        st.write(str(args.out / "scenario.mseed"), format="MSEED", encoding="STEIM2", reclen=4096)
        (args.out / "scenario.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        demo_inventory(info["inventory"]).write(str(args.out / "stations.xml"), format="STATIONXML")
    print(f"\n{'#':>2} {'class':<11} {'subtype':<10} {'onset (s)':>9} {'onset (UTC)':<28} "
          f"{'trigger (s)':>11} {'dur (s)':>7} {'ML':>5}")
    for i, e in enumerate(meta["events"]):
        ml = f"{e['magnitude']:.2f}" if e.get("magnitude") is not None else "-"
        print(f"{i:>2} {e['class']:<11} {e['subtype']:<10} {e['expected_trigger_s']:9.3f} "
              f"{e['expected_trigger']:<28} {e['obspy_trigger_s']:11.3f} {e['obspy_duration_s']:7.2f} {ml:>5}")
    size = (args.out / "scenario.mseed").stat().st_size
    print(f"\nwrote {args.out}/scenario.mseed ({size} bytes, {meta['duration_s']} s), scenario.json, "
          f"stations.xml; sensitivity {meta['sensitivity_counts_per_m_s']:.6g} counts/(m/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
