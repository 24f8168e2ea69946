"""``microseis replay``: the station's pipeline over real recordings (ObsPy's RJOB local
earthquake and the 3-component BW.UH3 record), end messages checked against the event schema,
the same alerts as the daemon on the same data, the scorecard, and bad input (exit 2, one
line naming the file or catalogue line).

The shipped bundle takes 250 Hz (higher rates are downsampled; lower ones are refused until
the station resamples any rate): the recordings are resampled to 250 Hz here.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime, read

from edge.station.input import replay_chunks

REPO = Path(__file__).resolve().parents[1]
RJOB_START = UTCDateTime("2005-08-01T14:57:19.85")
RJOB_P_S = 30.635        # P arrival in the 60 s loc_RJOB recording (s after its start)
FS = 250.0


def microseis(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *map(str, argv)], capture_output=True,
                          text=True, cwd=REPO, timeout=300, check=False)


def _counts(tr: Trace) -> Trace:
    """Resampled to 250 Hz (the shipped bundle's rate), as int32 counts."""
    tr.data = tr.data.astype(np.float64)
    tr.resample(FS)
    tr.data = np.round(tr.data).astype(np.int32)
    return tr


@pytest.fixture(scope="module")
def rjob(obspy_data, tmp_path_factory) -> dict:
    """ObsPy's RJOB local-earthquake recording (200 Hz, 60 s) three times back to back as
    station XX.RJ: one MiniSEED file with all of it, and the same data as one file per
    channel and minute (9 files)."""
    d = tmp_path_factory.mktemp("rjob")
    st = Stream()
    for c in "zne":
        data = np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}")
        st += _counts(Trace(np.tile(data - data.mean(), 3), header={
            "network": "XX", "station": "RJ", "channel": f"HH{c.upper()}", "sampling_rate": 200.0,
            "starttime": RJOB_START}))
    whole = d / "rjob3.mseed"
    st.write(str(whole), format="MSEED", encoding="STEIM2")
    parts = []
    for tr in st:
        for k in range(3):
            t0 = tr.stats.starttime + 60 * k
            p = d / f"XX.RJ..{tr.stats.channel}.{k}.mseed"
            tr.slice(t0, t0 + 60 - 0.5 / FS, nearest_sample=False).write(str(p), format="MSEED")
            parts.append(p)
    return {"whole": whole, "parts": parts, "dir": d, "p_times": [RJOB_START + RJOB_P_S + 60 * k for k in range(3)]}


@pytest.fixture(scope="module")
def uh3(obspy_data, tmp_path_factory) -> list[Path]:
    """BW.UH3's real 3-component record (50 Hz, 230 s), one file per component."""
    d = tmp_path_factory.mktemp("uh3")
    out = []
    for c in "ZNE":
        tr = _counts(read(str(obspy_data / f"BW.UH3._.SH{c}.D.2010.147.cut.slist.gz"))[0])
        p = d / f"BW.UH3..SH{c}.mseed"
        tr.write(str(p), format="MSEED")
        out.append(p)
    return out


@pytest.fixture(scope="module")
def schema(spec_dir):
    jsonschema = pytest.importorskip("jsonschema")
    s = json.loads((spec_dir / "schemas" / "event.schema.json").read_text())
    return lambda m: jsonschema.validate(m, s)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _last_json(res: subprocess.CompletedProcess) -> dict:
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_replay_of_rjob_finds_the_three_earthquakes_in_schema_valid_end_lines(rjob, schema, tmp_path):
    out = tmp_path / "alerts.jsonl"
    summary = _last_json(microseis("replay", rjob["whole"], "--out", out, "--json"))
    ends = _lines(out)
    assert len(ends) == 3 == summary["alerts"]
    for m, p in zip(ends, rjob["p_times"]):
        schema(m)
        assert m["type"] == "end" and m["station"] == "XX.RJ"
        assert abs(UTCDateTime(m["trigger_on"]) - p) < 1.0
        assert m["class"] == "earthquake"
    assert summary["by_class"] == {"earthquake": 3}
    assert summary["data_hours"] == pytest.approx(180 / 3600, rel=1e-6)
    assert summary["stations"]["XX.RJ"]["samples"] == 3 * 180 * 250
    assert summary["realtime_factor"] > 0 and summary["wall_s"] > 0


def test_file_order_and_cutting_do_not_change_the_alerts(rjob, tmp_path):
    """The 9 per-minute files given in reverse order replay as the single file does."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert microseis("replay", rjob["whole"], "--out", a, "--quiet").returncode == 0
    res = microseis("replay", *sorted(rjob["parts"], reverse=True), "--out", b, "--quiet")
    assert res.returncode == 0, res.stderr
    key = [(m["id"], m["trigger_off"], m["class"]) for m in _lines(a)]
    assert key == [(m["id"], m["trigger_off"], m["class"]) for m in _lines(b)]
    assert "9 files" in res.stdout  # the summary names what it read


def test_replay_gives_the_daemons_alerts(rjob, tmp_path):
    """The same configuration through ``microseis run`` (offline, in-process) and through
    ``microseis replay``: the same events, windows and classes. (``on`` is not the default,
    so the replay must take the file's settings; at 4 the short-STA fracture band fires on
    the noise 19 s before the first P, which merge_s 10 s keeps a fourth event.)"""
    from edge.station.config import load_config
    from edge.station.daemon import Daemon

    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(f"""
[station]
id = "XX.RJ"
channels = ["HHZ", "HHN", "HHE"]
[magnitude]
sensitivity = 1.0e9
[trigger]
on = 6.0
[mqtt]
enabled = false
[archive]
enabled = false
[state]
dir = "{tmp_path / 'state'}"
""")
    got: list[dict] = []
    daemon = Daemon(load_config(cfg_path), source=replay_chunks([str(rjob["whole"])], 0.0, threading.Event()),
                    on_end=got.append, install_signals=False)
    assert daemon.run() == 0
    out = tmp_path / "r.jsonl"
    res = microseis("replay", "--config", cfg_path, rjob["whole"], "--out", out)
    assert res.returncode == 0, res.stderr
    replayed = _lines(out)
    assert len(got) == 3
    fields = ("id", "trigger_on", "trigger_off", "class", "channels")
    assert [{k: m[k] for k in fields} for m in replayed] == [{k: m[k] for k in fields} for m in got]
    for a, b in zip(replayed, got):
        assert a["magnitude"]["ml"] == pytest.approx(b["magnitude"]["ml"], abs=1e-6)
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_uh3_three_components_and_two_stations_scored_per_site(rjob, uh3, schema, tmp_path):
    """Two stations in one replay (XX.RJ and BW.UH3, each its own pipeline); a catalogue with
    a site column is scored per site with each station's own hours of record."""
    cat = tmp_path / "cat.csv"
    p = rjob["p_times"]
    cat.write_text("time,label,magnitude,site\n"
                   + "".join(f"{(t - 0.3).isoformat()}Z,earthquake,,RJ\n" for t in p)
                   + "2005-08-01T14:57:30Z,rockfall,,RJ\n"      # nothing there: missed
                   + "1999-01-01T00:00:00Z,fracture,,RJ\n")     # outside the data: not scored
    out = tmp_path / "a.jsonl"
    d = _last_json(microseis("replay", rjob["whole"], *uh3, "--catalog", cat, "--out", out, "--json"))
    ends = _lines(out)
    for m in ends:
        schema(m)
    assert {m["station"] for m in ends} == {"XX.RJ", "BW.UH3"}
    uh3_n = sum(m["station"] == "BW.UH3" for m in ends)
    assert d["stations"]["BW.UH3"]["alerts"] == uh3_n >= 1
    uh = read(str(uh3[0]))[0].stats
    assert d["stations"]["BW.UH3"]["hours"] == pytest.approx(uh.npts / FS / 3600, rel=1e-4)
    for k in ("recall", "false_alerts_per_hour", "split_events", "macro_f1", "ml_hit_0_3"):
        assert k in d, k
    rj = d["sites"]["RJ"]
    assert rj["recall"]["earthquake"] == 1.0 and rj["recall"]["rockfall"] == 0.0
    assert rj["record_hours"] == pytest.approx(180 / 3600, rel=1e-6)
    assert d["catalog_outside_data"] == 1
    assert d["alerts_outside_sites"] == uh3_n    # UH3 is in the data, not in the catalogue


def test_table_output_and_end_lines_on_stdout(rjob, tmp_path):
    cat = tmp_path / "cat.csv"
    cat.write_text("time,label\n" + "".join(f"{t.isoformat()}Z,earthquake\n" for t in rjob["p_times"]))
    res = microseis("replay", rjob["whole"], "--catalog", cat)
    assert res.returncode == 0, res.stderr
    ends = [json.loads(x) for x in res.stdout.splitlines()]
    assert [m["type"] for m in ends] == ["end"] * 3
    assert "real time" in res.stderr and "macro F1" in res.stderr and "earthquake" in res.stderr


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("microseis replay: error: ")
    return lines[0]


def test_missing_file_exits_2_naming_it(rjob, tmp_path):
    line = _one_line_error(microseis("replay", rjob["whole"], tmp_path / "nope.mseed"))
    assert line.endswith(f"{tmp_path / 'nope.mseed'}: no such file")


def test_unreadable_file_exits_2_naming_it(tmp_path):
    bad = tmp_path / "junk.mseed"
    bad.write_bytes(b"not a waveform file\n" * 10)
    assert str(bad) in _one_line_error(microseis("replay", bad))


def test_overlapping_files_exit_2_naming_both(rjob, tmp_path):
    """RJOB (100 Hz, obspy.read()) cut into two files that share 5 s of one channel."""
    tr = read().select(channel="EHZ")[0]
    t0 = tr.stats.starttime
    a, b = tmp_path / "a.mseed", tmp_path / "b.mseed"
    tr.slice(t0, t0 + 20).write(str(a), format="MSEED")
    tr.slice(t0 + 15, t0 + 30).write(str(b), format="MSEED")
    line = _one_line_error(microseis("replay", b, a))
    assert f"{a} and {b} overlap on BW.RJOB..EHZ" in line
    line = _one_line_error(microseis("replay", rjob["whole"], rjob["parts"][0]))
    assert str(rjob["whole"]) in line and str(rjob["parts"][0]) in line


def test_bad_catalogue_row_exits_2_naming_the_line(rjob, tmp_path):
    cat = tmp_path / "cat.csv"
    cat.write_text("time,label,magnitude\n2005-08-01T14:57:50Z,earthquake,1.0\n"
                   "2005-08-01T14:58:50Z,earthquake,big\n")
    line = _one_line_error(microseis("replay", rjob["whole"], "--catalog", cat))
    assert "cat.csv line 3: magnitude" in line


def test_station_without_the_models_components_exits_2(uh3):
    line = _one_line_error(microseis("replay", uh3[0]))
    assert "station BW.UH3" in line and "missing N,E" in line
