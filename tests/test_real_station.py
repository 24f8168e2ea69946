"""Real recordings through the whole station (the daemon as ``microseis run`` builds it, a
replay source, MQTT off), against ObsPy.

* ObsPy's BW.UH3 (3 components, 50 Hz, 230 s, local earthquakes near 16:24:33, 16:27:01 and
  16:27:30 -- shared/notes/real-data.md): the station's triggers are exactly ObsPy's
  ``recursive_sta_lta`` + ``trigger_onset`` on each component in each of the station's
  bands (their union: an event is on while any channel in any band is), computed here with
  the station's own settings; and each earthquake is one event -- one ``new``, one ``end``
  -- also where ObsPy triggers twice on it (P, then S on the horizontals).
* ObsPy's example BW.RJOB (``obspy.read()``, 100 Hz, 30 s): one earthquake, one ``end``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from obspy import Stream, UTCDateTime, read

from edge.trigger.stream import TriggerConfig
from tests.station_run import as_counts, run_station
from tests.test_stream_trigger import expected_picks, obspy_cft

#: the local earthquakes of the UH recordings that ObsPy's coincidence trigger finds
UH_QUAKES = [UTCDateTime(f"2010-05-27T16:{t}") for t in ("24:33", "27:01", "27:30")]


@pytest.fixture(scope="module")
def uh3(obspy_data: Path) -> Stream:
    st = Stream()
    for c in "ZNE":
        st += read(str(obspy_data / f"BW.UH3._.SH{c}.D.2010.147.cut.slist.gz"))
    return as_counts(st, "BW", "UH3", "SH")


def obspy_triggers(st: Stream, cfg: TriggerConfig, bands, stas) -> list[tuple[UTCDateTime, UTCDateTime]]:
    """ObsPy's triggers on every trace in every band (station thresholds, each band's own STA
    window), as one list of (on, off) with overlapping ones merged."""
    spans = []
    base = {k: v for k, v in cfg.to_dict().items() if k not in ("bands", "freqmin", "freqmax", "sta_s")}
    for tr in st:
        fs, t0 = tr.stats.sampling_rate, tr.stats.starttime
        for (lo, hi), sta in zip(bands, stas):
            one = TriggerConfig(**base, sta_s=sta, freqmin=lo, freqmax=hi)
            spans += [(t0 + a / fs, t0 + b / fs) for a, b in expected_picks(obspy_cft(tr, one), one, fs)]
    merged: list[list[UTCDateTime]] = []
    for on, off in sorted(spans):
        if merged and on <= merged[-1][1] + 0.011:  # overlapping (traces differ by 1 us)
            merged[-1][1] = max(merged[-1][1], off)
        else:
            merged.append([on, off])
    return [(a, b) for a, b in merged]


def test_uh3_every_obspy_trigger_and_one_event_per_quake(uh3: Stream, tmp_path: Path) -> None:
    daemon, col = run_station(tmp_path, uh3, 50.0)
    trig = daemon.pipeline.trigger
    want = obspy_triggers(uh3, trig.cfg, trig.bands, trig.stas)
    subs = [(UTCDateTime(s["trigger_on"]), UTCDateTime(s["trigger_off"]))
            for m in col.end for s in m["sub_triggers"]["triggers"]]
    assert len(subs) == len(want), (subs, want)
    for (a, b), (c, d) in zip(subs, want):  # ObsPy's samples (traces differ by 1 us)
        assert abs(a - c) < 0.011 and abs(b - d) < 0.011, ((a, b), (c, d))
    # association: one new and one end per event, each quake in exactly one event
    assert len(col.new) == len(col.end) and [m["id"] for m in col.new] == [m["id"] for m in col.end]
    spans = [(UTCDateTime(m["trigger_on"]), UTCDateTime(m["trigger_off"])) for m in col.end]
    owner = []
    for q in UH_QUAKES:
        near = [(a, b) for a, b in want if q - 1.0 <= a <= q + 12.0]
        assert near, f"ObsPy finds nothing near {q}"
        holders = {i for a, b in near for i, (s0, s1) in enumerate(spans) if s0 <= a and b <= s1}
        assert len(holders) == 1, (q, near, spans)
        owner.append(holders.pop())
    assert len(set(owner)) == len(UH_QUAKES)
    # ObsPy triggers twice on at least one quake (P on Z, S on the horizontals): the merge
    # is exercised, and the ``end`` lists both with the whole duration
    assert len(col.end) < len(want)
    merged = [m for m in col.end if m["sub_triggers"]["count"] > 1]
    assert merged
    for m in merged:
        t = m["sub_triggers"]["triggers"]
        assert m["trigger_on"] == t[0]["trigger_on"] and m["trigger_off"] == t[-1]["trigger_off"]
        span = UTCDateTime(t[-1]["trigger_off"]) - UTCDateTime(t[0]["trigger_on"])
        assert m["duration_s"] == pytest.approx(span, abs=1e-3)


def test_uh3_without_association_alerts_twice_on_a_quake(uh3: Stream, tmp_path: Path) -> None:
    """The same recording with ``merge_s = 0``: the S arrival of a quake is a second alert
    (what association removes)."""
    _, col = run_station(tmp_path, uh3, 50.0, {"event": {"merge_s": 0.0}})
    per_quake = [sum(1 for m in col.end if q - 1.0 <= UTCDateTime(m["trigger_on"]) <= q + 12.0)
                 for q in UH_QUAKES]
    assert max(per_quake) >= 2 and all(m["sub_triggers"]["count"] == 1 for m in col.end)


def test_rjob_is_one_earthquake_event(tmp_path: Path) -> None:
    # 30 s with the onset 5 s in: a 4 s LTA, so that the trigger is armed before it
    st = as_counts(read(), "BW", "RJOB", "EH")
    _, col = run_station(tmp_path, st, 100.0, {"trigger": {"lta_s": 4.0}})
    assert len(col.new) == 1 and len(col.end) == 1
    end = col.end[0]
    assert abs(UTCDateTime(end["trigger_on"]) - UTCDateTime("2009-08-24T00:20:08")) < 1.0
    assert end["magnitude"]["ml"] is not None
