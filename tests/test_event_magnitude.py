"""Physical ML of one event window (edge.station.event_magnitude): S-P picks with ObsPy's AR-AIC
picker on a real recording, the distance from S-P, Wood-Anderson ML; ``None`` with a reason
when it cannot be computed."""
from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from edge.signal.magnitude import hypocentral_distance_km, local_magnitude
from edge.station.event_magnitude import event_ml, pick_p_s

RJOB_START = UTCDateTime("2005-08-01T14:57:19.85")
P_S, S_S = 30.635, 31.17  # ObsPy's picks on the whole recording (shared/notes/real-data.md)


@pytest.fixture(scope="module")
def rjob(obspy_data) -> Stream:
    st = Stream()
    for c in "zne":
        st += Trace(np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}"),
                    header={"network": "BW", "station": "RJOB", "channel": f"EH{c.upper()}",
                            "sampling_rate": 200.0, "starttime": RJOB_START})
    return st


@pytest.mark.parametrize("pre,post", [(2.0, 6.0), (5.0, 8.0), (20.0, 15.0)])
def test_picks_on_an_event_window(rjob, pre, post):
    """The station's event window (2 s before the trigger, a few after) still gives P and S."""
    win = rjob.slice(RJOB_START + P_S - pre, RJOB_START + P_S + post)
    p, s = pick_p_s(win)
    assert abs((p - RJOB_START) - P_S) < 0.1
    assert abs((s - RJOB_START) - S_S) < 0.1


def test_ml_from_a_flat_sensitivity(rjob):
    win = rjob.slice(RJOB_START + P_S - 2, RJOB_START + P_S + 6)
    res = event_ml(win, sensitivity=1.0e9)
    assert res.reason is None and res.ml is not None and np.isfinite(res.ml)
    sp = float(res.s_time - res.p_time)
    assert res.distance_km == pytest.approx(hypocentral_distance_km(sp), rel=1e-9)
    assert 2.0 < res.distance_km < 8.0  # S-P about 0.55 s: a very local event
    # ML grows by log10(10) = 1 when the ground moves ten times more (same counts, 10x less sensitive)
    louder = event_ml(win, sensitivity=1.0e8)
    assert louder.ml == pytest.approx(res.ml + 1.0, abs=1e-6)
    d = res.to_dict()
    assert set(d) >= {"ml", "distance_km", "s_minus_p_s"} and "reason" not in d


def test_ml_none_with_a_reason(rjob):
    win = rjob.slice(RJOB_START + P_S - 2, RJOB_START + P_S + 6)
    assert event_ml(win).to_dict() == {
        "ml": None, "reason": "no station response configured ([magnitude] stationxml or sensitivity)"}
    short = rjob.slice(RJOB_START + P_S - 1, RJOB_START + P_S + 1)
    assert event_ml(short, sensitivity=1e9).reason.startswith("no P/S pick pair")
    assert event_ml(win.select(component="Z"), sensitivity=1e9).reason.startswith("no P/S pick pair")


def test_no_s_pick_gives_an_upper_bound_from_the_event_duration(rjob):
    """2 s around P (too short for the S picker): with the event's trigger times, ML at the
    largest distance the event allows, never below the ML at the true (S-P) distance."""
    p = RJOB_START + P_S
    short = rjob.slice(p - 1, p + 1)
    assert event_ml(short, sensitivity=1e9).ml is None  # without trigger times: no bound
    res = event_ml(short, sensitivity=1e9, trigger_on=p, trigger_off=p + 1.0)
    d = res.to_dict()
    assert d["ml_method"] == "distance bound" and d["s_minus_p_max_s"] == 1.0
    assert d["distance_max_km"] == pytest.approx(hypocentral_distance_km(1.0), abs=1e-3)
    assert d["reason"].startswith("no P/S pick pair") and "upper bound" in d["reason"]
    horiz = []
    for tr in short.select(component="[NE]"):
        t = tr.copy()
        t.data = t.data / 1e9
        horiz.append(t)
    at_true = local_magnitude(horiz, None, hypocentral_distance_km(S_S - P_S))
    assert res.ml >= at_true
    # a longer event allows a larger distance: a larger bound; the S-P method is marked too
    longer = event_ml(short, sensitivity=1e9, trigger_on=p, trigger_off=p + 5.0)
    assert longer.ml > res.ml and longer.to_dict()["distance_max_km"] > d["distance_max_km"]
    full = event_ml(rjob.slice(p - 2, p + 6), sensitivity=1e9, trigger_on=p, trigger_off=p + 3)
    assert full.to_dict()["ml_method"] == "S-P"
    # no horizontal: no bound either, and the reason says so
    z = event_ml(short.select(component="Z"), sensitivity=1e9, trigger_on=p, trigger_off=p + 1)
    assert z.ml is None and z.reason.endswith("no horizontal component for a bounded ML")
