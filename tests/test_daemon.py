"""The station daemon end to end, with real parts: ``microseis run`` as its own process, a real
MQTT broker over TCP (tests/broker.py), the shipped signed bundle, a replay of ObsPy's real
RJOB local-earthquake recording, the SQLite outbox and the MiniSEED archive on disk.

* a replay publishes ``new`` then ``end`` for every event, schema-valid, in order, with
  availability ``online`` -> ``stopped``, retained ``health`` and ``model``, the archive and
  one snippet per event;
* the broker stops mid-run and comes back: every ``end`` arrives once per id, in order;
* ``kill -9`` with messages in the outbox: the next start delivers them;
* a bad configuration file: exit 2 with the key and the problem.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from tests.broker import Broker, Subscriber, TcpGate, broker  # noqa: F401
from tests.util import wait_for

REPO = Path(__file__).resolve().parents[1]
RJOB_START = UTCDateTime("2005-08-01T14:57:19.85")
PREFIX = "microseis"
STATION = "XX.RJ"


@pytest.fixture(scope="module")
def scenario(obspy_data, tmp_path_factory) -> Path:
    """Three copies of ObsPy's RJOB recording (200 Hz, 60 s, P at 30.6 s) back to back,
    resampled to 250 Hz as a station's HHZ/HHN/HHE, in counts: 180 s with 3 earthquakes."""
    d = tmp_path_factory.mktemp("scenario")
    st = Stream()
    for c in "zne":
        data = np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}")
        data = data - data.mean()
        tr = Trace(np.tile(data, 3), header={"network": "XX", "station": "RJ", "channel": f"HH{c.upper()}",
                                             "sampling_rate": 200.0, "starttime": RJOB_START})
        tr.resample(250.0)
        tr.data = np.round(tr.data).astype(np.int32)
        st += tr
    path = d / "rjob3.mseed"
    st.write(str(path), format="MSEED", encoding="STEIM2")
    return path


def write_config(path: Path, state: Path, files: list[Path], port: int, speed: float = 0.0,
                 mqtt: bool = True, extra: str = "") -> Path:
    path.write_text(f"""
[station]
id = "{STATION}"
channels = ["HHZ", "HHN", "HHE"]

[source]
kind = "replay"
files = {json.dumps([str(f) for f in files])}
speed = {speed}

[magnitude]
sensitivity = 1.0e9

[mqtt]
enabled = {'true' if mqtt else 'false'}
host = "127.0.0.1"
port = {port}
reconnect_min_s = 0.1
reconnect_max_s = 0.5

[health]
interval_s = 1.0

[state]
dir = "{state}"
{extra}
""")
    return path


def start_daemon(config: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, **kw)


def finish(proc: subprocess.Popen, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def events(sub: Subscriber) -> list[dict]:
    return [m.json() for m in sub.on(f"{PREFIX}/{STATION}/events")]


def outbox_ids(state: Path) -> list[str]:
    db = sqlite3.connect(state / "outbox.sqlite")
    try:
        return [r[0] for r in db.execute("SELECT msg_id FROM outbox ORDER BY id")]
    except sqlite3.OperationalError as exc:  # the daemon created the file, not yet the table
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def pending_ids(state: Path) -> list[str]:
    """:func:`outbox_ids` of a running daemon's outbox: [] while it does not exist yet or is
    busy being written."""
    if not (state / "outbox.sqlite").exists():
        return []
    try:
        return outbox_ids(state)
    except sqlite3.OperationalError:
        return []


def test_replay_publishes_new_and_end_per_event(broker, scenario, tmp_path, spec_dir):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((spec_dir / "schemas" / "event.schema.json").read_text())
    state = tmp_path / "state"
    # the 2005 recording is older than any retention: keep it forever for this check
    cfg = write_config(tmp_path / "c.toml", state, [scenario], broker.port,
                       extra="[archive]\nretention_days = 0\nmax_disk_fraction = 1.0\n")
    with Subscriber.of(broker, f"{PREFIX}/{STATION}/#") as sub:
        rc, out, err = finish(start_daemon(cfg))
        assert rc == 0, err[-3000:]
        assert sub.wait_for(lambda s: s.texts(f"{PREFIX}/{STATION}/availability")[-1:] == ["stopped"], 5)
    msgs = events(sub)
    new = [m for m in msgs if m["type"] == "new"]
    end = [m for m in msgs if m["type"] == "end"]
    # three real earthquakes, 60 s apart (P at 30.6 s in each copy), each announced first
    assert len(end) == 3, [(m["type"], m["trigger_on"]) for m in msgs]
    for i, m in enumerate(end):
        jsonschema.validate(m, schema)
        p_time = RJOB_START + 30.635 + 60 * i
        assert abs(UTCDateTime(m["trigger_on"]) - p_time) < 1.0
        assert msgs.index(m) > msgs.index(next(n for n in new if n["id"] == m["id"]))
        assert abs(sum(m["probabilities"].values()) - 1) < 1e-4
        assert m["model"]["name"] == "microseis-resnet18-cbam-synthetic"
        assert m["latency_ms"] >= 0 and "magnitude" in m
        assert Path(m["snippet"]).is_file()
    assert len({m["id"] for m in end}) == 3
    avail = sub.texts(f"{PREFIX}/{STATION}/availability")
    assert avail[0] == "online" and avail[-1] == "stopped"
    health = sub.last(f"{PREFIX}/{STATION}/health")
    assert health is not None
    h = health.json()
    for k in ("time", "uptime_s", "samples_per_s", "gaps", "crc_errors", "outbox_depth",
              "model_version", "cpu_percent", "rss_mb", "last_event_time"):
        assert k in h, k
    assert h["samples"] == 3 * 180 * 250
    # the last health may have gone out while the last end awaited its PUBACK; after the clean
    # stop every end is delivered: the outbox is empty
    assert outbox_ids(state) == []
    model = sub.last(f"{PREFIX}/{STATION}/model").json()
    assert model["synthetic"] is True and model["precision"] == "int8"
    # retained for whoever subscribes later
    with Subscriber.of(broker, f"{PREFIX}/{STATION}/#") as late:
        assert late.wait_for(lambda s: s.last(f"{PREFIX}/{STATION}/model") is not None
                             and s.last(f"{PREFIX}/{STATION}/health") is not None, 5)
        assert late.on(f"{PREFIX}/{STATION}/events") == []  # events are never retained
    assert outbox_ids(state) == []
    from obspy import read

    day = state / "archive" / "2005" / "XX" / "RJ"
    for ch in ("HHZ", "HHN", "HHE"):
        tr = read(str(day / f"{ch}.D" / f"XX.RJ..{ch}.D.2005.213")).merge()[0]
        assert tr.stats.npts == 180 * 250 and tr.data.dtype == np.int32  # every raw count
    assert "SYNTHETIC" in err  # the shipped model says what it was trained on


def test_broker_restart_mid_run_delivers_every_end_once_in_order(broker, scenario, tmp_path):
    """Replayed at 30x real time (6 s); the broker dies after the first event and comes back
    with the test's subscriber in before the station."""
    state = tmp_path / "state"
    with TcpGate.to(broker) as gate, Subscriber.of(broker, f"{PREFIX}/{STATION}/events") as sub:
        cfg = write_config(tmp_path / "c.toml", state, [scenario], gate.port, speed=30.0)
        proc = start_daemon(cfg)
        try:
            assert sub.wait_for(lambda s: any(m["type"] == "end" for m in events(s)), 60)
            first = next(m["id"] for m in events(sub) if m["type"] == "end")
            # QoS 1 is at least once: stop the broker only once the station has the first end's
            # PUBACK (an end in flight at the stop is re-sent, by design: consumers dedupe on id)
            assert wait_for(lambda: first not in pending_ids(state), 10)
            subscribed = sub.subscriptions
            broker.stop()
            gate.set("refuse")
            # the second event ends while the broker is away: its end waits in the outbox
            assert wait_for(lambda: set(pending_ids(state)) - {first}, 60)
            broker.start()
            assert sub.wait_subscribed(5, more_than=subscribed)
            gate.set("open")
            rc, _, err = finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert rc == 0, err[-3000:]
        assert sub.wait_for(lambda s: sum(m["type"] == "end" for m in events(s)) >= 3, 10)
    ends = [m for m in events(sub) if m["type"] == "end"]
    ids = [m["id"] for m in ends]
    assert len(ids) == 3 and len(set(ids)) == 3, ids
    assert ids == sorted(ids)  # in trigger order
    assert outbox_ids(state) == []


def test_kill_9_with_messages_in_the_outbox_then_restart_delivers(broker, scenario, tmp_path):
    state = tmp_path / "state"
    with TcpGate.to(broker, "refuse") as gate:
        # 10x real time: the replay lasts 18 s; events end at about 4, 10 and 16 s
        cfg = write_config(tmp_path / "c.toml", state, [scenario], gate.port, speed=10.0)
        proc = start_daemon(cfg)
        assert wait_for(lambda: proc.poll() is not None or len(pending_ids(state)) >= 2, 60)
        assert proc.poll() is None, "the daemon ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        pending = outbox_ids(state)
        assert len(pending) >= 2, pending
        # a restart (no new data: an empty replay) with the broker reachable delivers them
        quiet = tmp_path / "quiet.mseed"
        Stream([Trace(np.zeros(2500, np.int32), header={"network": "XX", "station": "RJ", "channel": ch,
                                                        "sampling_rate": 250.0})
                for ch in ("HHZ", "HHN", "HHE")]).write(str(quiet), format="MSEED")
        gate.set("open")
        with Subscriber.of(broker, f"{PREFIX}/{STATION}/events") as sub:
            cfg2 = write_config(tmp_path / "c2.toml", state, [quiet], gate.port)
            rc, _, err = finish(start_daemon(cfg2))
            assert rc == 0, err[-3000:]
            assert sub.wait_count(f"{PREFIX}/{STATION}/events", len(pending), timeout=10)
        assert [m["id"] for m in events(sub)] == pending
    assert outbox_ids(state) == []


def test_bad_config_exits_2_naming_the_key(tmp_path, scenario):
    cfg = write_config(tmp_path / "c.toml", tmp_path / "s", [scenario], 1, extra="[trigger]\nsta_s = -1\n")
    rc, out, err = finish(start_daemon(cfg))
    assert rc == 2
    assert "[trigger] sta_s: must be > 0, got -1" in err
    (tmp_path / "typo.toml").write_text('[mqtt]\nhots = "x"\n')
    rc, _, err = finish(start_daemon(tmp_path / "typo.toml"))
    assert rc == 2 and "hots" in err and "host" in err
    rc, _, err = finish(start_daemon(tmp_path / "missing.toml"))
    assert rc == 2 and "missing.toml" in err


def test_check_writes_nothing(tmp_path, scenario):
    """``run --check`` validates the configuration and the shipped model and exits 0, creating
    none of the state folder, the outbox's folder or the archive, and opening no connection."""
    root = tmp_path / "not-yet"
    cfg = write_config(tmp_path / "c.toml", root / "state", [scenario], 1, extra=f"""
outbox = "{root / 'spool' / 'outbox.sqlite'}"

[archive]
enabled = true
path = "{root / 'archive'}"
""")
    before = sorted(tmp_path.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(cfg), "--check"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"configuration {cfg}: ok" in r.stdout
    assert not root.exists()
    assert sorted(tmp_path.rglob("*")) == before
    # the same check still fails, naming the key, where the station could not create a folder
    (tmp_path / "blocker").write_text("a file, not a folder")
    bad = write_config(tmp_path / "bad.toml", tmp_path / "blocker" / "state", [scenario], 1)
    r = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(bad), "--check"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "state.dir" in r.stderr and "Traceback" not in r.stderr


def test_offline_station_keeps_messages(tmp_path, scenario):
    """``[mqtt] enabled = false``: the replay is classified and the ends wait in the outbox."""
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.toml", state, [scenario], 1, mqtt=False)
    rc, _, err = finish(start_daemon(cfg))
    assert rc == 0, err[-3000:]
    assert len(outbox_ids(state)) == 3


def test_serial_unplug_and_replug_through_the_daemon(broker, tmp_path):
    """The virtual digitizer on a real pty (synthetic noise, real time) is unplugged 3 s in for
    2 s: the daemon keeps running, reconnects, counts the disconnect and the gap, goes on
    receiving samples, and stops cleanly on SIGTERM."""
    state = tmp_path / "state"
    cfg = tmp_path / "c.toml"
    write_config(cfg, state, [], broker.port)
    text = cfg.read_text().replace('kind = "replay"', 'kind = "simulate"').replace(
        "speed = 0.0", 'speed = 1.0\nfaults = "unplug=3:2"')
    cfg.write_text(text)
    with Subscriber.of(broker, f"{PREFIX}/{STATION}/#") as sub:
        proc = start_daemon(cfg)
        try:
            health = f"{PREFIX}/{STATION}/health"
            ok = sub.wait_for(lambda s: any(m.json().get("disconnects", 0) >= 1 and m.json()["gaps"] >= 1
                                            for m in s.on(health)), 20)
            assert ok, [m.json() for m in sub.on(health)]
            after = sub.on(health)[-1].json()["samples"]
            assert sub.wait_for(lambda s: s.on(health)[-1].json()["samples"] > after, 15)
            proc.send_signal(signal.SIGTERM)
            rc, _, err = finish(proc, timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert rc == 0, err[-3000:]
        assert sub.wait_text(f"{PREFIX}/{STATION}/availability", "stopped", 5)
    assert "disconnected" in err or "unplug" in err.lower() or "lost" in err.lower()


def test_model_push_rejects_tampered_and_answers_signed_commands(broker, tmp_path):
    """Over MQTT, with an operator key: a tampered bundle is rejected with the reason and the
    model stays; the shipped bundle the station already runs is "already installed";
    ``rollback`` with no previous model answers an error; ``health`` answers ok with the
    figures; an unknown command is refused. (More: tests/test_daemon_security.py.)"""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.comms.auth import sign_command, sign_push
    from edge.model.format import DEFAULT_BUNDLE

    op = Ed25519PrivateKey.generate()
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "op.pub").write_bytes(op.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    state = tmp_path / "state"
    cfg = tmp_path / "c.toml"
    write_config(cfg, state, [], broker.port, extra=f'[auth]\nkeys_dir = "{tmp_path / "ops"}"\n')
    cfg.write_text(cfg.read_text().replace('kind = "replay"', 'kind = "simulate"').replace(
        "speed = 0.0", "speed = 1.0"))
    base = f"{PREFIX}/{STATION}"
    good = DEFAULT_BUNDLE.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 3] ^= 0x01

    def update(s):
        return s.last(f"{base}/model").json()["last_update"]

    with Subscriber.of(broker, f"{base}/#") as sub:
        proc = start_daemon(cfg)
        try:
            assert sub.wait_text(f"{base}/availability", "online", 20)
            assert sub.wait_for(lambda s: s.last(f"{base}/model") is not None, 10)
            sub.publish(f"{base}/model/push", sign_push(op, STATION, bytes(bad), nonce="01" * 16))
            assert sub.wait_for(lambda s: update(s).get("push") == "01" * 16, 20)
            m = sub.last(f"{base}/model").json()
            assert m["last_update"]["status"] == "error" and "rejected" in m["last_update"]["message"]
            assert m["name"] == "microseis-resnet18-cbam-synthetic"
            sub.publish(f"{base}/model/push", sign_push(op, STATION, good, nonce="02" * 16))
            assert sub.wait_for(lambda s: update(s).get("push") == "02" * 16, 30)
            assert update(sub)["status"] == "ok" and update(sub)["result"] == "already installed"
            sub.publish(f"{base}/cmd/rollback", sign_command(op, STATION, "rollback", transaction="t1"))
            sub.publish(f"{base}/cmd/health", sign_command(op, STATION, "health", transaction="t2"))
            sub.publish(f"{base}/cmd/nonsense", sign_command(op, STATION, "nonsense", transaction="t3"))
            assert sub.wait_for(lambda s: len(s.on(f"{base}/cmd/health/response")) >= 1
                                and len(s.on(f"{base}/cmd/rollback/response")) >= 1
                                and len(s.on(f"{base}/cmd/nonsense/response")) >= 1, 15)
            rb = sub.on(f"{base}/cmd/rollback/response")[0].json()
            assert rb["transaction"] == "t1" and rb["status"] == "error" and "no previous model" in rb["error"]
            h = sub.on(f"{base}/cmd/health/response")[0].json()
            assert h["transaction"] == "t2" and h["status"] == "ok" and "uptime_s" in h["data"]
            ns = sub.on(f"{base}/cmd/nonsense/response")[0].json()
            assert ns["status"] == "error" and "unknown command" in ns["error"]
            proc.send_signal(signal.SIGTERM)
            assert finish(proc, timeout=30)[0] == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_silent_digitizer_still_feeds_the_watchdog(tmp_path):
    """A digitizer that is plugged in but sends nothing (a real pty nobody writes to): the main
    loop keeps turning on the reader's idle events, so systemd's watchdog keeps getting
    WATCHDOG=1 (here about every 1 s: WATCHDOG_USEC = 2 s) and the daemon does not get killed."""
    import socket

    from firmware_bridge.pty_port import PtyPort

    pty = PtyPort()
    pty.open()
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.toml", state, [], 1, mqtt=False)
    cfg.write_text(cfg.read_text().replace('kind = "replay"', f'kind = "serial"\nport = "{pty.device_path}"'))
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    got: list[tuple[float, str]] = []
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            try:
                got.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                pass
            pings = [t for t, m in got if "WATCHDOG=1" in m]
            if len(pings) >= 6:
                break
        proc.send_signal(signal.SIGTERM)
        rc, _, err = finish(proc, timeout=30)
        while True:  # what it said while stopping is queued on the socket
            try:
                got.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        pty.close()
    ready = [t for t, m in got if "READY=1" in m]
    pings = [t for t, m in got if "WATCHDOG=1" in m]
    assert ready, got
    assert len(pings) >= 6, (got, err[-2000:])
    assert max(b - a for a, b in zip(pings, pings[1:])) < 1.6  # well inside the 2 s limit
    assert rc == 0 and any("STOPPING=1" in m for _, m in got)


def test_unusable_outbox_exits_2_naming_it(tmp_path, scenario):
    """An outbox path that is a folder: one line naming it, exit 2 (systemd does not retry)."""
    state = tmp_path / "state"
    (state / "outbox.sqlite").mkdir(parents=True)
    cfg = write_config(tmp_path / "c.toml", state, [scenario], 1, mqtt=False)
    rc, _, err = finish(start_daemon(cfg))
    assert rc == 2 and "outbox" in err.strip().splitlines()[-1] and "Traceback" not in err
