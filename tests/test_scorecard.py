"""The replay scorecard (edge.station.scorecard) on hand-made catalogues and alerts.

Every case is built so that the right answer follows from its construction; the expected
figures are worked out here from the events and alerts listed, not copied from the code's
output. Catalogues are real CSV files, alerts real ``end`` messages (edge.comms.messages).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from edge.comms.messages import EventEnd, Magnitude, ModelRef, event_id, iso_utc
from edge.signal.magnitude import VP_KM_S, VS_KM_S
from edge.station.scorecard import (
    AlertError,
    CatalogError,
    MatchRule,
    alerts_from_dicts,
    parse_time,
    read_alerts,
    read_catalog,
    score,
)

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc).timestamp()
CLS = ("fracture", "rockfall", "earthquake", "noise")


def end_msg(station: str, on: float, off: float, cls: str, ml: float | None = None,
            model: float | None = None, latency_ms: float = 10.0) -> dict:
    """A real ``end`` message; ``on``/``off`` in s after T0."""
    probs = {c: (0.7 if c == cls else 0.1) for c in CLS}
    return EventEnd(
        id=event_id(station, T0 + on), station=station, trigger_on=iso_utc(T0 + on),
        trigger_off=iso_utc(T0 + off), duration_s=round(off - on, 6), cft_peak=4.0,
        event_class=cls, probabilities=probs, uncertainty=0.2,
        magnitude=Magnitude(ml, model, None if ml is not None else "no response"),
        model=ModelRef("tiny", "1", "0" * 64), latency_ms=latency_ms).to_dict()


def write_catalog(tmp_path, header: str, rows: list[str], name: str = "cat.csv"):
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def t(s: float) -> str:
    return iso_utc(T0 + s)


def f1(tp: int, predicted: int, support: int) -> float:
    p, r = tp / predicted, tp / support
    return 2 * p * r / (p + r)


# ------------------------------------------------------------------- the worked case

@pytest.fixture()
def worked(tmp_path):
    """Eleven catalogue events and eleven alerts on one station, 3 h of record.

    event (onset s after T0)                    alerts (trigger on-off, class, ML, model)
    1 fracture 100                              a1 100.1-100.6 fracture
    2 fracture 200                              a2 200.05-200.5 fracture, a3 201.0-201.4 rockfall -> split
    3 rockfall 300, duration_s 20: [298, 322]   a4 300.5-330 rockfall, runs over event 4
    4 fracture 315: [313, 319]                  (inside a4, nearest onset to a4 is event 3) -> merged
    5 earthquake 1000 M1.0, 42 km: S-P 5 s      a5 1001-1020 earthquake, ML 1.3, model 0.5
    6 earthquake 2000 M1.0                      a6 2000.8-2010 fracture, ML 1.5, model 1.1
    7 earthquake 3000 M1.5                      a7 3000.2-3005 earthquake, ML none, model 1.45
    8 earthquake 4000                           -> missed
    9 rockfall 5000                             -> missed
    10 noise 6000                               a8 6000.3-6001 noise (on a noise transient)
    11 noise 7000                               -> no alert
    unmatched: a9 8000-8001, a10 9000-9002, a11 104.5-105 (event 1's window ends at 104)
    latency_ms of the alerts: 10, 20, ..., 110 in the order a1..a11
    """
    cat = write_catalog(tmp_path, "time,label,magnitude,duration_s,distance_km,comment", [
        f"{t(100)},fracture,,,,first",
        f"{t(200)},fracture,,,,",
        f"{t(315)},fracture,,,,merged into the rockfall",  # unsorted on purpose
        f"{t(300)},rockfall,,20,,",
        f"{t(1000)},earthquake,1.0,,42,",
        f"{t(2000)},earthquake,1.0,,,",
        f"{t(3000)},earthquake,1.5,,,",
        f"{t(4000)},earthquake,,,,",
        f"{t(5000)},rockfall,,,,",
        f"{t(6000)},noise,,,,",
        f"{t(7000)},noise,,,,",
    ])
    spec = [(100.1, 100.6, "fracture", None, None), (200.05, 200.5, "fracture", None, None),
            (201.0, 201.4, "rockfall", None, None), (300.5, 330, "rockfall", None, None),
            (1001, 1020, "earthquake", 1.3, 0.5), (2000.8, 2010, "fracture", 1.5, 1.1),
            (3000.2, 3005, "earthquake", None, 1.45), (6000.3, 6001, "noise", None, None),
            (8000, 8001, "rockfall", None, None), (9000, 9002, "fracture", None, None),
            (104.5, 105, "fracture", None, None)]
    msgs = [end_msg("XX.S1", on, off, c, ml, mm, latency_ms=10.0 * (i + 1))
            for i, (on, off, c, ml, mm) in enumerate(spec)]
    return read_catalog(cat), alerts_from_dicts(msgs)


def test_worked_case_counts_and_recall(worked):
    catalog, alerts = worked
    sc = score(catalog, alerts, 3.0)
    d = sc.to_dict()
    assert d["events"] == {"fracture": 3, "rockfall": 2, "earthquake": 4, "noise": 2}
    assert d["detected"] == {"fracture": 2, "rockfall": 1, "earthquake": 3, "noise": 1}
    assert d["recall"] == pytest.approx({"fracture": 2 / 3, "rockfall": 1 / 2, "earthquake": 3 / 4})
    assert d["recall_all"] == pytest.approx(6 / 9)
    assert d["noise_transients"]["detected_fraction"] == pytest.approx(1 / 2)
    assert d["alerts"] == 11 and d["false_alerts"] == 3 and d["alerts_on_noise"] == 1
    # two noise transients, each window 2 s + 5 s (default) + 2 s, do not count as record time
    noise_h = 2 * (2 + 5 + 2) / 3600
    assert d["noise_hours"] == pytest.approx(noise_h)
    assert d["false_alerts_per_hour"] == pytest.approx(3 / (3.0 - noise_h))
    assert d["split_events"] == 1 and d["split_fraction"] == pytest.approx(1 / 6)
    assert d["split_extra_alerts"] == 1 and d["split_by_class"]["fracture"] == 1
    assert d["merged_events"] == 1
    merged = [m for m in sc.overall.result.events if m.merged]
    assert [round(m.event.time - T0, 3) for m in merged] == [315.0]


def test_worked_case_class_f1(worked):
    d = score(*worked, 3.0).to_dict()
    # first alert of each matched event: (true, predicted)
    # e1 fr/fr, e2 fr/fr, e3 rf/rf, e5 eq/eq, e6 eq/fr, e7 eq/eq, noise transient noise/noise
    want = {"fracture": f1(2, 3, 2), "rockfall": f1(1, 1, 1), "earthquake": f1(2, 2, 3),
            "noise": f1(1, 1, 1)}
    assert d["f1"] == pytest.approx(want)
    assert d["macro_f1"] == pytest.approx(np.mean(list(want.values())))
    assert d["classified"] == 7
    m = d["confusion"]["matrix"]
    assert m[2][0] == 1 and m[2][2] == 2  # two quakes right, one called fracture


def test_worked_case_magnitudes(worked):
    d = score(*worked, 3.0).to_dict()
    # matched quakes with a catalogue magnitude: e5 (1.0), e6 (1.0), e7 (1.5)
    assert d["quakes_with_magnitude"] == 3
    ml_err = [abs(1.3 - 1.0), abs(1.5 - 1.0)]  # e7 has no ML; 1.3 - 1.0 > 0.3 in binary
    assert d["ml_given"] == pytest.approx(2 / 3)
    assert d["ml_hit_0_3"] == pytest.approx(1 / 2)  # 0.3 exactly is a hit
    assert d["ml_median_abs_error"] == pytest.approx(np.median(ml_err))
    assert d["ml_mae"] == pytest.approx(np.mean(ml_err))
    mm_err = [abs(0.5 - 1.0), abs(1.1 - 1.0), abs(1.45 - 1.5)]
    assert d["model_mag_given"] == pytest.approx(1.0)
    assert d["model_mag_hit_0_3"] == pytest.approx(2 / 3)
    assert d["model_mag_median_abs_error"] == pytest.approx(0.1)
    assert d["model_mag_mae"] == pytest.approx(sum(mm_err) / 3)


def test_worked_case_times(worked):
    d = score(*worked, 3.0).to_dict()
    tta = sorted([0.1, 0.05, 0.5, 1.0, 0.8, 0.2])  # first alert - onset of detected events
    assert d["time_to_alert_s_median"] == pytest.approx((tta[2] + tta[3]) / 2, abs=1e-5)
    pos = 0.95 * (len(tta) - 1)  # linear interpolation between order statistics
    lo = int(pos)
    assert d["time_to_alert_s_p95"] == pytest.approx(tta[lo] + (pos - lo) * (tta[lo + 1] - tta[lo]), abs=1e-5)
    lat = [10.0 * (i + 1) for i in range(11)]
    assert d["latency_ms_p50"] == pytest.approx(lat[5])
    assert d["latency_ms_p99"] == pytest.approx(lat[9] + 0.9 * (lat[10] - lat[9]))


def test_worked_case_json_and_table(worked):
    sc = score(*worked, 3.0)
    d = json.loads(json.dumps(sc.to_dict(), allow_nan=False))
    for key in ("recall", "false_alerts_per_hour", "split_events", "macro_f1", "ml_hit_0_3"):
        assert key in d
    assert d["matching"]["tol_s"] == 2.0
    table = sc.format_table()
    rows = {ln.split()[0]: ln.split() for ln in table.splitlines() if ln.split()}
    assert rows["fracture"][1:4] == ["3", "2", f"{2 / 3:.2f}"]
    assert rows["earthquake"][1:4] == ["4", "3", f"{3 / 4:.2f}"]
    assert "merged events 1" in table


# ------------------------------------------------------------------ matching rules

def test_window_edges_and_quake_duration(tmp_path):
    """Windows are closed intervals [onset - tol, onset + duration + tol]."""
    cat = read_catalog(write_catalog(tmp_path, "time,label,distance_km", [
        f"{t(0)},fracture,", f"{t(100)},earthquake,", f"{t(200)},earthquake,70"]))
    rule = MatchRule(tol_s=1.0, quake_sp_s=4.0, quake_coda_s=10.0)
    sp70 = 70 * (1 / VS_KM_S - 1 / VP_KM_S)
    assert rule.window(cat[1]) == pytest.approx((T0 + 99, T0 + 100 + 4 + 10 + 1))
    assert rule.window(cat[2]) == pytest.approx((T0 + 199, T0 + 200 + sp70 + 10 + 1))
    alerts = alerts_from_dicts([
        end_msg("XX.S1", -3, -1, "fracture"),       # ends at the window start: matches
        end_msg("XX.S1", 3.5, 4, "fracture"),       # fracture window ends at 0 + 2 + 1 = 3
        end_msg("XX.S1", 115, 120, "earthquake"),  # starts at the quake window's end: matches
        end_msg("XX.S1", 200 + sp70 + 11.5, 260, "earthquake"),  # just after the 70 km window
    ])
    res = score(cat, alerts, 1.0, rule=rule)
    assert res["detected"] == {"fracture": 1, "rockfall": 0, "earthquake": 1, "noise": 0}
    assert res["false_alerts"] == 2


def test_alert_over_two_events_goes_to_the_nearest_onset(tmp_path):
    """One long alert over a fracture and a rockfall: it counts for the event it started on;
    the other is merged. A later alert of the merged event makes it detected instead."""
    cat = read_catalog(write_catalog(tmp_path, "time,label", [f"{t(10)},fracture", f"{t(12)},rockfall"]))
    one = alerts_from_dicts([end_msg("XX.S1", 12.2, 40, "rockfall")])
    d = score(cat, one, 1.0).to_dict()
    assert d["detected"]["rockfall"] == 1 and d["detected"]["fracture"] == 0
    assert d["merged_events"] == 1 and d["split_events"] == 0 and d["false_alerts"] == 0
    two = alerts_from_dicts([end_msg("XX.S1", 10.1, 10.5, "fracture"), end_msg("XX.S1", 12.2, 40, "rockfall")])
    d = score(cat, two, 1.0).to_dict()
    assert d["recall"]["fracture"] == 1 and d["recall"]["rockfall"] == 1
    assert d["merged_events"] == 0 and d["split_events"] == 0


def test_alert_on_event_and_noise_transient_counts_for_the_event(tmp_path):
    cat = read_catalog(write_catalog(tmp_path, "time,label", [f"{t(10)},noise", f"{t(11)},fracture"]))
    d = score(cat, alerts_from_dicts([end_msg("XX.S1", 10.0, 12, "fracture")]), 1.0).to_dict()
    assert d["detected"] == {"fracture": 1, "rockfall": 0, "earthquake": 0, "noise": 0}
    assert d["alerts_on_noise"] == 0 and d["false_alerts"] == 0 and d["merged_events"] == 0


def test_empty_alerts(tmp_path):
    cat = read_catalog(write_catalog(tmp_path, "time,label,magnitude",
                                     [f"{t(10)},fracture,", f"{t(50)},earthquake,1.2", f"{t(90)},noise,"]))
    sc = score(cat, [], 2.0)
    d = json.loads(json.dumps(sc.to_dict(), allow_nan=False))
    assert d["recall"] == {"fracture": 0.0, "rockfall": None, "earthquake": 0.0}
    assert d["false_alerts_per_hour"] == 0.0 and d["split_events"] == 0 and d["merged_events"] == 0
    assert d["macro_f1"] is None and d["ml_hit_0_3"] is None and d["ml_given"] is None
    assert d["time_to_alert_s_median"] is None and d["latency_ms_p99"] is None
    rows = {ln.split()[0]: ln.split() for ln in sc.format_table().splitlines() if ln.split()}
    assert rows["fracture"][1:4] == ["1", "0", "0.00"] and rows["rockfall"][1:4] == ["0", "0", "-"]


def test_empty_catalogue_all_alerts_false(tmp_path):
    cat = read_catalog(write_catalog(tmp_path, "time,label", []))
    alerts = alerts_from_dicts([end_msg("XX.S1", s, s + 1, "fracture") for s in (0, 100, 200)])
    d = score(cat, alerts, 0.5).to_dict()
    assert cat == [] and d["false_alerts"] == 3 and d["false_alerts_per_hour"] == pytest.approx(3 / 0.5)
    assert d["recall"] == {"fracture": None, "rockfall": None, "earthquake": None}


# ------------------------------------------------------------------------ per site

def test_per_site_scores(tmp_path):
    cat = read_catalog(write_catalog(tmp_path, "time,label,site", [
        f"{t(100)},fracture,S1", f"{t(100)},fracture,S2", f"{t(500)},rockfall,S2",
        f"{t(100)},earthquake,S3"]))
    alerts = alerts_from_dicts([
        end_msg("XX.S1", 100.2, 101, "fracture"),
        end_msg("XX.S1", 2000, 2001, "fracture"), end_msg("XX.S1", 3000, 3001, "rockfall"),
        end_msg("XX.S2", 500.5, 510, "rockfall"), end_msg("XX.S2", 1000, 1001, "noise"),
        end_msg("XX.S3", 100.5, 120, "earthquake"),  # S3 not replayed: not scored
    ])
    sc = score(cat, alerts, {"XX.S1": 4.0, "XX.S2": 1.0})
    d = sc.to_dict()
    assert set(d["sites"]) == {"S1", "S2"}
    s1, s2 = d["sites"]["S1"], d["sites"]["S2"]
    assert s1["recall"]["fracture"] == 1.0 and s1["false_alerts_per_hour"] == pytest.approx(2 / 4)
    # S2's fracture at 100 s is missed although S1 alerted at that time
    assert s2["recall"]["fracture"] == 0.0 and s2["recall"]["rockfall"] == 1.0
    assert s2["false_alerts_per_hour"] == pytest.approx(1 / 1)
    assert s1["f1"]["rockfall"] is None and s1["precision"]["rockfall"] is None  # none there
    assert d["recall"]["fracture"] == pytest.approx(1 / 2) and d["recall"]["earthquake"] is None
    assert d["false_alerts_per_hour"] == pytest.approx(3 / 5)
    assert d["worst_site"]["recall"]["fracture"] == 0.0
    assert d["worst_site"]["false_alerts_per_hour"] == pytest.approx(1.0)
    assert d["alerts_outside_sites"] == 1 and d["events_outside_sites"] == 1
    table = sc.format_table()
    assert "site S1" in table and "site S2" in table and "all sites" in table


def test_multi_site_catalogue_needs_hours_per_site(tmp_path):
    cat = read_catalog(write_catalog(tmp_path, "time,label,station", [f"{t(1)},fracture,S1", f"{t(1)},fracture,S2"]))
    with pytest.raises(ValueError, match="per site"):
        score(cat, [], 1.0)
    with pytest.raises(ValueError, match="> 0"):
        score(cat, [], {"S1": 0.0})


# ------------------------------------------------------------------ input checking

def test_parse_time_forms():
    ref = parse_time("2026-05-01T12:00:00Z")
    assert ref == datetime(2026, 5, 1, 12, tzinfo=timezone.utc).timestamp()
    assert parse_time("2026-05-01 12:00:00") == ref
    assert parse_time("2026-05-01T13:30:00+01:30") == ref
    assert parse_time("2026-05-01T11:00:00.25-0100") == ref + 0.25
    assert parse_time("2026-05-01T12:00:00.123456789Z") == pytest.approx(ref + 0.123456789)
    for bad in ("xyz", "2026-02-30T00:00:00", "2026-05-01", "2026-05-01T25:00:00", "1777636800"):
        with pytest.raises(ValueError, match="is not an ISO time"):
            parse_time(bad)


@pytest.mark.parametrize("row, message", [
    ("xyz,fracture,", "cat.csv line 4: time: 'xyz' is not an ISO time"),
    ("2026-02-30T00:00:00,fracture,", "cat.csv line 4: time: '2026-02-30T00:00:00' is not an ISO time"),
    ("2026-05-01T00:00:09Z,quake,", "cat.csv line 4: label: 'quake' is not a class"),
    ("2026-05-01T00:00:09Z,earthquake,big", "cat.csv line 4: magnitude: 'big' is not a number"),
    ("2026-05-01T00:00:09Z,earthquake,12", "cat.csv line 4: magnitude: '12' is out of range"),
    ("2026-05-01T00:00:09Z,earthquake,nan", "cat.csv line 4: magnitude: 'nan' is out of range"),
    ("2026-05-01T00:00:09Z,earthquake", "cat.csv line 4: 2 fields, the header has 3"),
    ("2026-05-01T00:00:09Z,earthquake,1,2", "cat.csv line 4: 4 fields, the header has 3"),
    ("2026-05-01T00:00:01Z,fracture,", "cat.csv line 4: duplicate of line 2"),
])
def test_catalogue_errors_name_file_line_and_field(tmp_path, row, message):
    p = write_catalog(tmp_path, "time,label,magnitude", ["2026-05-01T00:00:01Z,fracture,", "# a comment", row])
    with pytest.raises(CatalogError) as exc:
        read_catalog(p)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("header, rows, message", [
    ("when,label", [], "cat.csv line 1: header: no 'time' column"),
    ("time,class", [], "cat.csv line 1: header: no 'label' column"),
    ("time,label,site,station", [], "cat.csv line 1: header: give one of 'site' and 'station'"),
    ("time,label,label", [], "cat.csv line 1: header: column 'label' appears twice"),
    ("time,label,site", ["2026-05-01T00:00:01Z,fracture,S1", "2026-05-01T00:00:02Z,fracture, "],
     "cat.csv line 3: site: empty"),
    ("time,label,duration_s", ["2026-05-01T00:00:01Z,fracture,-1"], "cat.csv line 2: duration_s: '-1' is out of range"),
])
def test_catalogue_header_errors(tmp_path, header, rows, message):
    with pytest.raises(CatalogError) as exc:
        read_catalog(write_catalog(tmp_path, header, rows))
    assert str(exc.value).startswith(message)


def test_catalogue_empty_file_and_missing_file(tmp_path):
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(CatalogError, match="empty.csv: empty catalogue"):
        read_catalog(tmp_path / "empty.csv")
    with pytest.raises(CatalogError, match="cannot read the catalogue"):
        read_catalog(tmp_path / "missing.csv")


def test_catalogue_sorted_with_optional_columns(tmp_path):
    cat = read_catalog(write_catalog(tmp_path, "Time, Label ,magnitude,site,extra", [
        f"{t(20)},earthquake,1.5,S1,x", f"{t(10)},fracture,,S1,y"]))
    assert [(e.label, e.magnitude, e.site, e.line) for e in cat] == [
        ("fracture", None, "S1", 3), ("earthquake", 1.5, "S1", 2)]
    assert cat[0].time == pytest.approx(T0 + 10)


def test_read_alerts_jsonl(tmp_path):
    good = end_msg("XX.S1", 10, 11, "fracture", ml=1.0)
    new = {"schema": "microseis/event/1", "type": "new", "id": good["id"], "station": "XX.S1",
           "trigger_on": good["trigger_on"], "cft_peak": 4.0}
    p = tmp_path / "alerts.jsonl"
    p.write_text(json.dumps(new) + "\n" + json.dumps(good) + "\n\n")
    [a] = read_alerts(p)
    assert a.ml == 1.0 and a.event_class == "fracture" and a.trigger_off - a.trigger_on == pytest.approx(1.0)
    bad = dict(good, trigger_off=good["trigger_on"].replace("00:00:10", "00:00:09"))
    p.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(AlertError, match="alerts.jsonl line 2: trigger_off"):
        read_alerts(p)
    p.write_text("{not json\n")
    with pytest.raises(AlertError, match="alerts.jsonl line 1"):
        read_alerts(p)
    with pytest.raises(AlertError, match=r"alert XX.S1-\S+: trigger_on: 'noon' is not an ISO time"):
        alerts_from_dicts([dict(good, trigger_on="noon")])
    with pytest.raises(AlertError, match="trigger_off: missing"):
        alerts_from_dicts([{k: v for k, v in good.items() if k != "trigger_off"}])
    with pytest.raises(AlertError, match="magnitude.ml"):
        alerts_from_dicts([dict(good, magnitude={"ml": "2", "model": None})])
