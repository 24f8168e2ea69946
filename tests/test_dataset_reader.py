"""Labeled dataset folder reader (edge.signal.dataset) and the offline trigger picker."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime
from obspy.core.util import get_example_file

from edge.signal.dataset import (
    DatasetError,
    LabeledEvent,
    RowError,
    iter_windows,
    load_event,
    read_labels,
    read_stations,
    sensitivity_for,
)
from edge.signal.picking import TriggerPickError, find_trigger, pick_trigger
from edge.signal.preprocess import WindowSpec, preprocess_stream

ONSET = "2009-08-24T00:20:08"
LOC_START = UTCDateTime(2005, 8, 1, 14, 57, 19, 850000)
LOC_P = LOC_START + 30.635


def loc_rjob() -> Stream:
    return Stream(
        [
            Trace(
                np.loadtxt(get_example_file(f"loc_RJOB20050801145719850.{c}")).astype(np.float32),
                header=dict(network="XX", station="RJOB", channel=f"EH{c.upper()}", sampling_rate=200.0,
                            starttime=LOC_START),
            )
            for c in "zne"
        ]
    )


LABELS = f"""path,label,magnitude,trigger_time,station
waveforms/rjob.mseed,earthquake,1.2,{ONSET},
waveforms/rjob_z12.mseed,rockfall,,{ONSET},
waveforms/loc_z.sac,fracture,-0.5,,
waveforms/two_sta.mseed,noise,,{ONSET},BW.RJOB
waveforms/rjob.mseed,earthquake,big,,
waveforms/rjob.mseed,earthquake,,2009-08-24T25:00:00,
,noise,,,
waveforms/missing.mseed,noise,,,
waveforms/garbage.mseed,noise,,,

waveforms/empty.mseed,noise,,,
waveforms/horizontals.mseed,noise,,,
waveforms/two_sta.mseed,noise,,,
waveforms/rjob.mseed,noise,,,XX.NOPE
waveforms/rjob.mseed,noise,,,RJOB
waveforms/rjob.mseed,noise,,2030-01-01T00:00:00,
waveforms/rjob.mseed,"two
lines",,2009-08-24 00:20:08,
waveforms/rjob.mseed,noise,1,,,extra
"""

EXPECTED_READ_ERRORS = [
    (6, "waveforms/rjob.mseed", "bad magnitude 'big': not a number"),
    (7, "waveforms/rjob.mseed", "bad trigger_time '2009-08-24T25:00:00': not an ISO 8601 time"),
    (8, "", "empty path"),
    (9, "waveforms/missing.mseed", "file not found"),
    (10, "waveforms/garbage.mseed", "unreadable: TypeError: Unknown format for file"),  # startswith
    (12, "waveforms/empty.mseed", "empty file (0 bytes)"),
    (13, "waveforms/horizontals.mseed", "no Z component (channels: BW.RJOB..EHE, BW.RJOB..EHN)"),
    (14, "waveforms/two_sta.mseed", "several stations in file (BW.ABC, BW.RJOB); fill the station column"),
    (15, "waveforms/rjob.mseed", "station XX.NOPE not in file (has BW.RJOB)"),
    (16, "waveforms/rjob.mseed", "bad station 'RJOB': expected NET.STA"),
    (20, "waveforms/rjob.mseed", "row has 6 fields, header has 5"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    wf = root / "waveforms"
    wf.mkdir()
    st = obspy.read()
    st.write(str(wf / "rjob.mseed"), format="MSEED")
    z12 = st.copy()
    z12.select(channel="EHN")[0].stats.channel = "EH1"
    z12.select(channel="EHE")[0].stats.channel = "EH2"
    z12.write(str(wf / "rjob_z12.mseed"), format="MSEED")
    loc_rjob().select(channel="EHZ").write(str(wf / "loc_z.sac"), format="SAC")
    other = st.copy()
    for tr in other:
        tr.stats.station = "ABC"
    (st + other).write(str(wf / "two_sta.mseed"), format="MSEED")
    st.select(component="[NE]").write(str(wf / "horizontals.mseed"), format="MSEED")
    (wf / "empty.mseed").write_bytes(b"")
    (wf / "garbage.mseed").write_text("this is not a seismogram\n")
    (root / "labels.csv").write_text(LABELS, encoding="utf-8")
    return root


def _assert_errors(errors: list[RowError], expected) -> None:
    assert [(e.line, e.path) for e in errors] == [(line, path) for line, path, _ in expected]
    for e, (line, _, message) in zip(errors, expected):
        if line == 10:
            assert e.message.startswith(message)
        else:
            assert e.message == message


def test_read_labels_rows_and_errors(folder):
    rows, errors = read_labels(folder)
    _assert_errors(errors, EXPECTED_READ_ERRORS)
    assert [r.line for r in rows] == [2, 3, 4, 5, 17, 18]
    first = rows[0]
    assert first == LabeledEvent(2, "waveforms/rjob.mseed", "earthquake", 1.2, UTCDateTime(ONSET), None)
    assert rows[2].trigger_time is None and rows[2].magnitude == -0.5 and rows[2].label == "fracture"
    assert rows[3].station == "BW.RJOB"
    assert rows[5].label == "two\nlines" and rows[5].trigger_time == UTCDateTime(ONSET)
    assert str(errors[0]) == "labels.csv line 6 (waveforms/rjob.mseed): bad magnitude 'big': not a number"


def test_iter_windows_reports_and_continues(folder):
    errors: list[RowError] = []
    got = list(iter_windows(folder, WindowSpec(), errors=errors))
    # the row whose trigger lies years after the file fails only when loaded (line 17)
    expected = sorted(
        EXPECTED_READ_ERRORS + [(17, "waveforms/rjob.mseed", "BW.RJOB..EHZ: no samples inside the cut")]
    )
    _assert_errors(errors, expected)
    assert [row.line for row, _ in got] == [2, 3, 4, 5, 18]
    windows = {row.line: w for row, w in got}
    for w in windows.values():
        assert w.data.shape == (3, 3000) and w.data.dtype == np.float32 and w.units == "counts"
    assert windows[2].present == (True, True, True)
    assert windows[3].data.tobytes() == windows[2].data.tobytes()  # Z12 == ZNE
    assert windows[5].data.tobytes() == windows[2].data.tobytes()  # station selected
    assert windows[18].data.tobytes() == windows[2].data.tobytes()
    sac = windows[4]  # single-component SAC, trigger picked by STA/LTA
    assert sac.present == (True, False, False)
    assert abs((sac.starttime + 2.0) - LOC_P) < 0.05


def test_load_event_custom_trigger_finder(folder):
    rows, _ = read_labels(folder)
    row = rows[2]
    calls = []

    def finder(st):
        calls.append(len(st))
        return LOC_P

    w = load_event(folder, row, WindowSpec(), trigger_finder=finder)
    assert calls == [1]
    assert abs((w.starttime + 2.0) - LOC_P) <= 0.5 / 250


def test_folder_level_errors(tmp_path):
    with pytest.raises(DatasetError, match="no labels.csv"):
        read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\nx.mseed,noise\n")
    with pytest.raises(DatasetError, match="no 'path' column"):
        read_labels(tmp_path)
    assert read_stations(tmp_path) is None
    (tmp_path / "stations.xml").write_text("<not stationxml/>")
    with pytest.raises(DatasetError, match="unreadable StationXML"):
        read_stations(tmp_path)


def test_stations_xml_gives_velocity(folder, tmp_path):
    root = tmp_path / "ds"
    (root / "waveforms").mkdir(parents=True)
    for name in ("rjob.mseed", "rjob_z12.mseed"):
        (root / "waveforms" / name).write_bytes((folder / "waveforms" / name).read_bytes())
    (root / "labels.csv").write_text(
        f"path,label,trigger_time\nwaveforms/rjob.mseed,earthquake,{ONSET}\nwaveforms/rjob_z12.mseed,earthquake,{ONSET}\n"
    )
    obspy.read_inventory().write(str(root / "stations.xml"), format="STATIONXML")
    errors: list[RowError] = []
    got = list(iter_windows(root, errors=errors))
    assert len(got) == 1 and got[0][1].units == "m/s"
    # the full response is removed, as ObsPy's remove_response with the same pre-filter and
    # water level does it (edge/signal/instrument.py)
    vel = obspy.read()
    vel.remove_response(obspy.read_inventory(), output="VEL", pre_filt=(0.25, 0.5, 45.0, 49.0), water_level=60)
    ref = preprocess_stream(vel, UTCDateTime(ONSET))
    np.testing.assert_allclose(got[0][1].data, ref.data, rtol=1e-3, atol=1e-3 * float(np.max(np.abs(ref.data))))
    assert len(errors) == 1 and errors[0].line == 3
    assert errors[0].message.startswith("no instrument response for BW.RJOB..EH1 at 2009-08-24T00:20:08")


def test_sensitivity_units():
    inv = obspy.read_inventory()
    t = UTCDateTime(ONSET)
    assert sensitivity_for(inv, "BW.RJOB..EHZ", t) == pytest.approx(2.5168e9)
    sens = inv.get_response("BW.RJOB..EHZ", t).instrument_sensitivity
    f0 = sens.frequency
    sens.input_units = "M"
    assert sensitivity_for(inv, "BW.RJOB..EHZ", t) == pytest.approx(2.5168e9 / (2 * math.pi * f0))
    sens.input_units = "M/S**2"
    assert sensitivity_for(inv, "BW.RJOB..EHZ", t) == pytest.approx(2.5168e9 * 2 * math.pi * f0)
    sens.input_units = "V"
    with pytest.raises(DatasetError, match="are not ground motion"):
        sensitivity_for(inv, "BW.RJOB..EHZ", t)
    with pytest.raises(DatasetError, match="no instrument response for XX.NONE..HHZ"):
        sensitivity_for(inv, "XX.NONE..HHZ", t)


# --------------------------------------------------------------------------- trigger picking


def test_pick_trigger_real_data():
    pick = pick_trigger(loc_rjob())
    assert pick.method == "threshold" and pick.lta_s == 10.0
    assert abs(pick.time - LOC_P) < 0.05
    # obspy.read(): onset 5 s after the file start, before a 10 s LTA has filled
    pick = pick_trigger(obspy.read())
    assert pick.method == "threshold-short-lta"
    assert abs(pick.time - UTCDateTime(ONSET)) < 0.1
    assert find_trigger(obspy.read()) == pick.time


def test_pick_trigger_short_file_falls_back_to_peak():
    st = loc_rjob().slice(LOC_START + 30.0, LOC_START + 31.5)
    pick = pick_trigger(st)
    assert pick.method == "peak"
    assert 0 <= pick.time - LOC_P < 0.3
    with pytest.raises(TriggerPickError, match="too short"):
        pick_trigger(loc_rjob().slice(LOC_START + 30.0, LOC_START + 30.5))
    with pytest.raises(TriggerPickError, match="no Z component"):
        pick_trigger(loc_rjob().select(channel="EHN"))


def test_trailing_commas_and_bom_are_accepted(folder, tmp_path):
    (tmp_path / "rjob.mseed").write_bytes((folder / "waveforms" / "rjob.mseed").read_bytes())
    (tmp_path / "labels.csv").write_text("\ufeffPath , Label\nrjob.mseed,noise,,\nrjob.mseed,noise,x\n",
                                         encoding="utf-8")
    rows, errors = read_labels(tmp_path)
    assert [(r.line, r.path, r.label) for r in rows] == [(2, "rjob.mseed", "noise")]
    assert errors == [RowError(3, "rjob.mseed", "row has 3 fields, header has 2")]
