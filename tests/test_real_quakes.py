"""The shipped model on real local earthquakes, cut as the station cuts them, and the
learned magnitude only in physical units.

* BW.UH3 (ObsPy's test data, 50 Hz, three components, three local quakes the STA/LTA of
  ObsPy's own test finds): replayed chunk by chunk through the station's pipeline as the
  daemon assembles it (:func:`edge.station.assemble.build_pipeline`, default settings);
* BW.RJOB (``obspy.read()``, 100 Hz, 30 s, a local quake 5 s in: too early for the streaming
  trigger's 10 s LTA warm-up): trigger-on from :func:`edge.signal.picking.pick_trigger` (the
  station's STA/LTA settings, as ``predict`` does), then the station's preprocessing with the
  StationXML of ``obspy.read_inventory()``;
* RJOB 2005-08-01 (``signal/tests/data/loc_RJOB20050801145719850.{z,n,e}``, 200 Hz, 60 s, a
  very local quake 30.6 s in; the one ``microseis demo`` plays): replayed through the
  station's pipeline like UH3.
"""
from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime

from edge.model.inference import EventClassifier
from edge.signal.dataset import response_for
from edge.signal.picking import pick_trigger
from edge.signal.preprocess import preprocess_stream
from edge.station.assemble import build_pipeline
from edge.station.config import StationConfig
from edge.station.input import stream_chunks

UH_QUAKES = ("16:24:33", "16:27:01", "16:27:30")


class Collect:
    def __init__(self) -> None:
        self.new: list[dict[str, Any]] = []
        self.end: list[dict[str, Any]] = []

    def event_new(self, msg: dict[str, Any]) -> None:
        self.new.append(msg)

    def event_end(self, msg: dict[str, Any]) -> None:
        self.end.append(msg)


@pytest.fixture(scope="module")
def shipped() -> EventClassifier:
    return EventClassifier.load()


@pytest.fixture(scope="module")
def uh3(obspy_data) -> Stream:
    return obspy.read(str(obspy_data / "BW.UH3._.SH?.D.2010.147.cut.slist.gz"))


def _replay(st: Stream, clf: EventClassifier) -> list[dict[str, Any]]:
    """``end`` messages of the station assembled as the daemon does (default settings, the
    recording's digitizer rate: the trigger bands come from the bundle), fed 1 s chunks."""
    out = Collect()
    fs = float(st[0].stats.sampling_rate)
    cfg = msgspec.convert({"station": {"sampling_rate": fs}}, StationConfig)
    pipe = build_pipeline(cfg, f"{st[0].stats.network}.{st[0].stats.station}", clf, out, sampling_rate=fs)
    for chunk in stream_chunks(st, 1.0):
        pipe.process(chunk)
    pipe.flush()
    return out.end


def _uh3_quakes(uh3, shipped) -> dict[str, dict[str, Any]]:
    """The ``end`` message of each of the three UH3 quakes (its trigger-on or one of its
    associated sub-triggers within 2 s of the quake)."""
    ends = _replay(uh3, shipped)
    found = {}
    for e in ends:
        ons = [e["trigger_on"]] + [t["trigger_on"] for t in (e.get("sub_triggers") or {}).get("triggers", [])]
        for q in UH_QUAKES:
            if any(abs(obspy.UTCDateTime(t) - obspy.UTCDateTime(f"2010-05-27T{q}")) <= 2 for t in ons):
                found[q] = e
    assert set(found) == set(UH_QUAKES), [(e["trigger_on"], e["class"]) for e in ends]
    return found


def test_uh3_without_a_response_the_model_magnitude_is_null_with_a_reason(uh3, shipped):
    for q, e in _uh3_quakes(uh3, shipped).items():
        # no StationXML, no sensitivity: never a magnitude from counts, a reason instead
        assert e["magnitude"]["model"] is None, q
        assert e["magnitude"]["ml"] is None, q
        if e["class"] != "noise":
            assert "needs m/s" in e["magnitude"]["reason"], q


def test_uh3_quakes_through_the_station_pipeline_are_earthquakes(uh3, shipped):
    for q, e in _uh3_quakes(uh3, shipped).items():
        assert e["class"] == "earthquake", (q, e["probabilities"])


def test_rjob_cut_as_the_station_cuts_it_is_an_earthquake(shipped):
    st, inv = obspy.read(), obspy.read_inventory()
    pick = pick_trigger(st)
    assert abs(pick.time - obspy.UTCDateTime("2009-08-24T00:20:07.7")) < 1.0
    resp = {tr.id: response_for(inv, tr.id, pick.time) for tr in st}
    window = preprocess_stream(st, pick.time, shipped.window_spec, response=resp)
    row = shipped.row(shipped.predict_window(window))
    assert window.units == "m/s"
    assert row["class"] == "earthquake", row["probabilities"]
    assert row["magnitude"] is not None


def test_local_rjob_of_the_demo_through_the_station_pipeline_is_an_earthquake(obspy_data, shipped):
    st = Stream([Trace(np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}"), header={
        "network": "BW", "station": "RJOB", "channel": f"EH{c.upper()}", "sampling_rate": 200.0,
        "starttime": UTCDateTime("2005-08-01T14:57:19.85")}) for c in "zne"])
    ends = _replay(st, shipped)
    p_onset = UTCDateTime("2005-08-01T14:57:19.85") + 30.635  # ObsPy's ar_pick test value
    quake = [e for e in ends if abs(UTCDateTime(e["trigger_on"]) - p_onset) <= 2.0]
    assert len(quake) == 1, [(e["trigger_on"], e["class"]) for e in ends]
    assert quake[0]["class"] == "earthquake", quake[0]["probabilities"]
