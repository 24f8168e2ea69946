"""Association through the whole station (the daemon as ``microseis run`` builds it): a
rockfall-like train of impacts is one event (one ``new``, one ``end`` listing its
sub-triggers), an event that follows after ``merge_s`` of quiet is a second one, and
``max_event_s`` cuts a long sequence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from tests.station_run import run_station

FS = 100.0
T0 = UTCDateTime("2024-03-01T00:00:00")
IMPACTS = (40.0, 44.5, 49.0, 53.5)  # s: a rockfall's impacts, 4.5 s apart
LATER = 100.0  # s: another event, long after the last impact


@pytest.fixture(scope="module")
def impacts() -> Stream:
    rng = np.random.default_rng(11)
    n = int(150 * FS)
    t = np.arange(int(1.0 * FS)) / FS
    st = Stream()
    for c in "ZNE":
        x = rng.normal(0, 50, n)
        for k, onset in enumerate(IMPACTS + (LATER,)):
            i0 = int(onset * FS)
            f = 8.0 + 2 * k
            x[i0:i0 + t.size] += 4000 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * np.exp(-t / 0.25)
        st += Trace(np.round(x).astype(np.int32), header={
            "network": "XX", "station": "RF", "channel": f"HH{c}", "sampling_rate": FS, "starttime": T0})
    return st


def spans(col) -> list[tuple[float, float, int]]:
    return [(UTCDateTime(m["trigger_on"]) - T0, UTCDateTime(m["trigger_off"]) - T0,
             m["sub_triggers"]["count"]) for m in col.end]


def test_impacts_are_one_event_and_a_later_one_is_another(impacts: Stream, tmp_path: Path) -> None:
    _, col = run_station(tmp_path, impacts, FS)
    assert len(col.new) == len(col.end) == 2, spans(col)
    first, later = col.end
    assert [m["id"] for m in col.new] == [first["id"], later["id"]]
    subs = first["sub_triggers"]
    assert subs["count"] == len(IMPACTS) == len(subs["triggers"])
    for s, onset in zip(subs["triggers"], IMPACTS):
        assert abs(UTCDateTime(s["trigger_on"]) - (T0 + onset)) < 0.1 and s["bands"]
    assert first["trigger_on"] == subs["triggers"][0]["trigger_on"]
    assert first["trigger_off"] == subs["triggers"][-1]["trigger_off"]
    assert first["duration_s"] > IMPACTS[-1] - IMPACTS[0]
    assert abs(UTCDateTime(later["trigger_on"]) - (T0 + LATER)) < 0.1
    assert later["sub_triggers"]["count"] == 1


def test_without_merge_every_impact_alerts(impacts: Stream, tmp_path: Path) -> None:
    _, col = run_station(tmp_path, impacts, FS, {"event": {"merge_s": 0.0}})
    assert len(col.new) == len(col.end) == len(IMPACTS) + 1, spans(col)


def test_max_event_s_cuts_a_long_sequence(impacts: Stream, tmp_path: Path) -> None:
    # 6 s: the third impact (9 s after the first) starts a new event, which takes the fourth
    _, col = run_station(tmp_path, impacts, FS, {"event": {"max_event_s": 6.0}})
    assert [c for _, _, c in spans(col)] == [2, 2, 1], spans(col)
    assert len(col.new) == len(col.end)


def test_merge_s_shorter_than_the_gaps_splits(impacts: Stream, tmp_path: Path) -> None:
    _, col = run_station(tmp_path, impacts, FS, {"event": {"merge_s": 1.0}})
    assert len(col.end) == len(IMPACTS) + 1, spans(col)


def test_default_merge_keeps_an_event_12_s_after_another_apart(tmp_path: Path) -> None:
    """The default ``merge_s`` (10 s, tuned on the continuous benchmark's train split, where a
    quake came 6-12 s after the end of a rockfall): impacts 8 s apart are one event, an event
    ~12 s after the last trigger-off is a second one (15 s merged it)."""
    rng = np.random.default_rng(5)
    n = int(90 * FS)
    t = np.arange(int(1.0 * FS)) / FS
    onsets = (40.0, 48.0, 61.0)
    st = Stream()
    for c in "ZNE":
        x = rng.normal(0, 50, n)
        for k, onset in enumerate(onsets):
            i0 = int(onset * FS)
            x[i0:i0 + t.size] += 4000 * np.sin(2 * np.pi * (8.0 + 2 * k) * t) * np.exp(-t / 0.25)
        st += Trace(np.round(x).astype(np.int32), header={
            "network": "XX", "station": "RF", "channel": f"HH{c}", "sampling_rate": FS, "starttime": T0})
    _, col = run_station(tmp_path, st, FS)
    got = spans(col)
    assert [c for _, _, c in got] == [2, 1], got
    assert abs(got[1][0] - onsets[2]) < 0.1 and 10.0 < onsets[2] - got[0][1] < 15.0
    _, col15 = run_station(tmp_path / "15", st, FS, {"event": {"merge_s": 15.0}})
    assert [c for _, _, c in spans(col15)] == [3], spans(col15)
