"""``microseis demo`` as a user runs it: the shipped scenario through the virtual digitizer
(a real pty), the daemon with the shipped bundle, an embedded broker, the printed alerts and
the summary. And the scenario itself: ObsPy's own trigger finds each scripted event once."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from obspy import UTCDateTime

from edge.demo import load_scenario, reference_triggers

REPO = Path(__file__).resolve().parents[1]


def test_scenario_events_are_what_obspy_triggers_on():
    st, meta = load_scenario()
    assert {e["class"] for e in meta["events"]} == {"fracture", "rockfall", "earthquake", "noise"}
    assert any("RJOB" in e["source"] for e in meta["events"])  # the real recording
    trig = reference_triggers(st)
    assert len(trig) == len(meta["events"])
    for t, e in zip(trig, meta["events"]):
        assert abs(t["time"] - UTCDateTime(e["expected_trigger"])) < 1.0


def test_demo_detects_and_classifies_every_scripted_event():
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--speed", "20", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["found"] == out["scripted"] == 5
    assert out["ends"] == out["news"] >= 5 and out["outbox_depth"] == 0
    rows = [r for r in out["rows"] if r["expected"]]
    # the shipped model is synthetic-trained; on the scenario it gets every class right
    assert [r["got"] for r in rows] == [r["expected"] for r in rows]
    assert all(r["latency_ms"] < 1000 for r in rows)
    quake = [r for r in rows if r["expected"] == "earthquake"]
    assert all(r["ml"] is not None for r in quake)  # S-P picked, ML from stations.xml
    assert "SYNTHETIC" in res.stderr
    # the keys the CLI spec promises
    assert [e["id"] for e in out["events"]] == sorted(e["id"] for e in out["events"])
    assert {e["class"] for e in out["events"]} >= {r["expected"] for r in rows}
    assert sum(out["by_class"].values()) == out["ends"]
    assert 0 < out["latency_ms_p50"] <= out["latency_ms_p99"] == max(e["latency_ms"] for e in out["events"])


def test_demo_duration_stops_early_and_summarises_what_was_played():
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--speed", "10", "--duration", "4", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["wall_s"] < 10  # the whole scenario takes 17 s at 10x
    assert 1 <= out["scripted"] < 5 and out["found"] == out["scripted"]
    assert len(out["events"]) == out["ends"] >= out["found"]


def test_demo_prints_alerts_and_a_summary():
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--speed", "20"],
                         capture_output=True, text=True, cwd=REPO, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert out.count(" NEW ") >= 5 and out.count(" END ") >= 5 and "ONLINE" in out and "STOPPED" in out
    assert "5/5 scripted events detected" in out
    table = out[out.index("scripted    source"):]
    for cls in ("fracture", "rockfall", "earthquake", "noise"):
        assert cls in table


def test_demo_bad_options():
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--duration", "0"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 2 and "--duration" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--broker", "nonsense"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 2 and "HOST:PORT" in res.stderr.strip().splitlines()[-1]
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--broker", "127.0.0.1:1"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 2 and "127.0.0.1:1" in res.stderr.strip().splitlines()[-1]
