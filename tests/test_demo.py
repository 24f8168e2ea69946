"""``microseis demo`` as a user runs it, once for the module: the shipped scenario through the
virtual digitizer (a real pty), the daemon with the shipped bundle, a real MQTT broker
(tests/broker.py, given with ``--broker``, so the test sees every message), the summary. And
the scenario itself: ObsPy's own trigger finds each scripted event once.

What is checked is the station's behaviour (every scripted event gives a ``new`` and an
``end``, schema-valid; the summary keys of docs/spec/cli.md; latencies; an empty outbox), not
how well the shipped, retrainable model classifies the scripted events."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from obspy import UTCDateTime

from edge.cli.demo import PREFIX, STATION, format_summary
from edge.demo import load_scenario, reference_triggers
from tests.broker import Broker, Subscriber

REPO = Path(__file__).resolve().parents[1]
EVENTS = f"{PREFIX}/{STATION}/events"


def test_scenario_events_are_what_obspy_triggers_on():
    st, meta = load_scenario()
    assert {e["class"] for e in meta["events"]} == {"fracture", "rockfall", "earthquake", "noise"}
    assert any("RJOB" in e["source"] for e in meta["events"])  # the real recording
    trig = reference_triggers(st)
    assert len(trig) == len(meta["events"])
    for t, e in zip(trig, meta["events"]):
        assert abs(t["time"] - UTCDateTime(e["expected_trigger"])) < 1.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One ``microseis demo --json`` run against a test broker: (process result, summary
    object, every message the broker carried on the station's topics)."""
    with Broker(workdir=tmp_path_factory.mktemp("broker")) as broker, \
            Subscriber.of(broker, f"{PREFIX}/{STATION}/#") as sub:
        res = subprocess.run([sys.executable, "-m", "edge", "demo", "--speed", "20", "--json",
                              "--broker", f"{broker.host}:{broker.port}"],
                             capture_output=True, text=True, cwd=REPO, timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert sub.wait_count(EVENTS, out["news"] + out["ends"], timeout=10)
        messages = list(sub.messages)
    return res, out, messages


def test_demo_duration_stops_early_and_summarises_what_was_played():
    res = subprocess.run([sys.executable, "-m", "edge", "demo", "--speed", "10", "--duration", "4", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["wall_s"] < 10  # the whole scenario takes 17 s at 10x
    assert 1 <= out["scripted"] < 5 and out["found"] == out["scripted"]
    assert len(out["events"]) == out["ends"] >= out["found"]


def test_every_scripted_event_gives_new_and_end(demo):
    _, out, messages = demo
    events = [m.json() for m in messages if m.topic == EVENTS]
    news = {m["id"] for m in events if m["type"] == "new"}
    ends = [m for m in events if m["type"] == "end"]
    assert out["found"] == out["scripted"] == len(load_scenario()[1]["events"])
    assert all(r["found"] for r in out["rows"] if r["expected"])
    assert out["ends"] == out["news"] == len(ends) == len(news) >= out["scripted"]
    assert {m["id"] for m in ends} == news  # every end closes an event that was announced
    assert len({m["id"] for m in ends}) == len(ends)


def test_messages_are_schema_valid(demo, spec_dir):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((spec_dir / "schemas" / "event.schema.json").read_text())
    _, _, messages = demo
    events = [m for m in messages if m.topic == EVENTS]
    assert events
    for m in events:
        jsonschema.validate(m.json(), schema)
    avail = [m.text for m in messages if m.topic.endswith("/availability")]
    assert avail[0] == "online" and avail[-1] == "stopped"


def test_summary_keys_latencies_and_outbox(demo):
    res, out, _ = demo
    # docs/spec/cli.md: events (id, class, latency_ms), by_class, latency_ms_p50, latency_ms_p99
    assert len(out["events"]) == out["ends"]
    for e in out["events"]:
        assert set(e) >= {"id", "class", "latency_ms"}
        assert isinstance(e["latency_ms"], (int, float)) and e["latency_ms"] >= 0
    assert sum(out["by_class"].values()) == out["ends"]
    assert set(out["by_class"]) == {e["class"] for e in out["events"]}
    lat = sorted(e["latency_ms"] for e in out["events"])
    assert lat[0] <= out["latency_ms_p50"] <= out["latency_ms_p99"] <= lat[-1]
    assert out["outbox_depth"] == 0
    # ML (S-P picked, response from stations.xml) for every event the station did not call
    # noise; none for noise (what the model calls each event is model quality: evaluate's job)
    for r in out["rows"]:
        if r.get("found"):
            assert (r["ml"] is None) == (r["got"] in ("noise", "unknown")), r
    assert "SYNTHETIC" in res.stderr  # the shipped model says what it was trained on


def test_summary_table(demo):
    _, out, _ = demo
    table = format_summary(out["rows"])
    assert table.splitlines()[0].startswith("scripted    source")
    for r in out["rows"]:
        if r["expected"]:
            assert any(line.startswith(r["expected"]) for line in table.splitlines()[2:])


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
