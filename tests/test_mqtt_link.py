"""edge.comms.mqtt_link against a real broker over TCP (tests/broker.py: Mosquitto, else amqtt) with a
real SQLite outbox file: availability and the Last Will, retained health/model, the durable
outbox across broker restarts, lost PUBACKs and ``kill -9``, commands, and configuration errors.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge.comms.messages import dumps  # noqa: E402
from edge.comms.mqtt_link import MqttLink  # noqa: E402
from edge.comms.mqtt_settings import MqttConfig  # noqa: E402
from edge.comms.outbox import Outbox  # noqa: E402
from tests.broker import (  # noqa: E402,F401
    Broker,
    Subscriber,
    TcpGate,
    broker,
    find_mosquitto,
    free_port,
    make_password_file,
    make_test_pki,
)
from tests.util import holds_for, wait_for  # noqa: E402

SHA = "0" * 64


def end_msg(station: str, i: int) -> dict[str, Any]:
    """A schema-valid ``end`` message; ids sort like ``i``."""
    on = f"2026-05-01T12:{i // 60:02d}:{i % 60:02d}.000000Z"
    return {
        "schema": "microseis/event/1", "type": "end", "id": f"{station}-{i:06d}", "station": station,
        "trigger_on": on, "trigger_off": on.replace(".000000Z", ".500000Z"), "duration_s": 0.5,
        "cft_peak": 4.2, "class": "rockfall", "probabilities": {"rockfall": 0.9, "noise": 0.1},
        "uncertainty": 0.2, "magnitude": {"ml": None, "model": 1.1, "reason": "no response"},
        "model": {"name": "m", "version": "1", "sha256": SHA}, "latency_ms": 12.0,
    }


def fast_cfg(port: int, **kw: Any) -> MqttConfig:
    base = dict(host="127.0.0.1", port=port, reconnect_min_s=0.05, reconnect_max_s=0.3, keepalive_s=10)
    base.update(kw)
    return MqttConfig(**base)


@pytest.fixture
def links() -> Iterator[Callable[..., MqttLink]]:
    """``links(port, outbox, station, **cfg)``: a started link, stopped after the test."""
    made: list[MqttLink] = []

    def make(port: int, outbox: Outbox, station: str, connect: bool = True, **kw: Any) -> MqttLink:
        link = MqttLink(fast_cfg(port, **kw), station, outbox, connect_timeout_s=3.0)
        made.append(link)
        if connect:
            link.connect()
        return link

    yield make
    for link in made:
        link.stop(flush_timeout_s=0, timeout_s=3)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.sqlite")
    yield ob
    ob.close()


@pytest.fixture
def sub(broker: Broker) -> Iterator[Subscriber]:
    s = Subscriber.of(broker).start()
    yield s
    s.stop()


def ids(sub: Subscriber, topic: str) -> list[str]:
    return [m.json()["id"] for m in sub.on(topic)]


# --------------------------------------------------------------------------- configuration


def test_config_defaults_and_round_trip() -> None:
    c = MqttConfig()
    assert (c.host, c.port, c.prefix, c.qos, c.keepalive_s) == ("localhost", 1883, "microseis", 1, 30)
    assert (c.reconnect_min_s, c.reconnect_max_s, c.client_id, c.tls_insecure) == (0.5, 30.0, None, False)
    d = {"host": "b.example.org", "port": 8883, "username": "s1", "password": "pw", "reconnect_min_s": 1,
         "qos": 2, "prefix": "net/slopes"}
    c = MqttConfig.from_dict(d)
    assert c.reconnect_min_s == 1.0 and isinstance(c.reconnect_min_s, float)
    assert MqttConfig.from_dict(c.to_dict()) == c
    assert set(c.to_dict()) == set(MqttConfig.__struct_fields__)


@pytest.mark.parametrize("raw, message", [
    ({"port": 0}, "port: must be within [1, 65535], got 0"),
    ({"port": 70000}, "port: must be within [1, 65535], got 70000"),
    ({"port": "1883"}, "port: expected an integer, got string \"1883\""),
    ({"port": True}, "port: expected an integer, got boolean true"),
    ({"host": ""}, "host: must be a host name or address, got \"\""),
    ({"prefix": "a/#"}, "prefix: must not contain the wildcards '+' or '#', got \"a/#\""),
    ({"prefix": "/a"}, "prefix: must be one or more non-empty topic levels"),
    ({"qos": 3}, "qos: must be one of 0, 1, 2, got 3"),
    ({"keepalive_s": 0}, "keepalive_s: must be within [1, 65535], got 0"),
    ({"reconnect_min_s": 0}, "reconnect_min_s: must be > 0, got 0"),
    ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s: must be >= reconnect_min_s = 5.0, got 1.0"),
    ({"tls_key": "k.pem"}, "tls_key: needs tls_cert"),
    ({"tls_insecure": "yes"}, "tls_insecure: expected a boolean (true or false), got string \"yes\""),
    ({"client_id": ""}, "client_id: must be 1..65535 bytes or unset"),
    ({"hots": "x"}, "hots: unknown key (did you mean host?)"),
])
def test_bad_config_names_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        MqttConfig.from_dict(raw)
    assert str(err.value).startswith(message)


def test_link_config_errors_name_the_key(outbox: Outbox, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^tls_ca: no such file .*nope\.pem$"):
        MqttLink(MqttConfig(tls_ca=str(tmp_path / "nope.pem")), "XX.S1", outbox)
    with pytest.raises(ValueError, match="^password: needs a username"):
        MqttLink(MqttConfig(password="x"), "XX.S1", outbox)
    with pytest.raises(ValueError, match="station"):
        MqttLink(MqttConfig(), "XX/S1", outbox)


# --------------------------------------------------------------------------- availability, retained


def test_online_retained_health_model_and_stopped(broker: Broker, sub: Subscriber, outbox: Outbox,
                                                  links: Callable[..., MqttLink]) -> None:
    link = links(broker.port, outbox, "XX.A1")
    avail = "microseis/XX.A1/availability"
    assert link.wait_connected(5) and link.connected and link.connects == 1
    assert sub.wait_text(avail, "online")
    assert link.publish_health({"time": "2026-05-01T12:00:00.000000Z", "outbox_depth": 0})
    assert link.publish_model({"name": "m", "version": "2", "sha256": SHA})
    assert sub.wait_count("microseis/XX.A1/model", 1)
    link.stop()
    assert sub.wait_text(avail, "stopped")
    # a consumer that comes later sees the retained state
    with Subscriber.of(broker, "microseis/XX.A1/#") as late:
        assert late.wait_count("microseis/XX.A1/model", 1) and late.wait_count(avail, 1)
        assert late.wait_count("microseis/XX.A1/health", 1)
        assert {m.text for m in late.on(avail)} == {"stopped"}
        assert all(m.retain for m in late.messages)
        assert late.last("microseis/XX.A1/health").json()["outbox_depth"] == 0
        assert late.last("microseis/XX.A1/model").json()["version"] == "2"
    # a clean stop: no Last Will after "stopped"
    assert holds_for(lambda: sub.texts(avail) == ["online", "stopped"], 0.2), sub.texts(avail)


CHILD = r"""
import sys, time
from edge.comms.mqtt_link import MqttLink
from edge.comms.mqtt_settings import MqttConfig
from edge.comms.outbox import Outbox
port, path, station, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = MqttConfig(host="127.0.0.1", port=port, reconnect_min_s=0.05, reconnect_max_s=0.2, keepalive_s=5)
link = MqttLink(cfg, station, Outbox(path), connect_timeout_s=2)
link.connect()
if n == 0:
    print("connected" if link.wait_connected(10) else "not connected", flush=True)
for i in range(n):
    link.publish_event_end({"schema": "microseis/event/1", "type": "end", "id": f"{station}-{i:06d}",
                            "station": station, "trigger_on": "2026-05-01T12:00:00.000000Z"})
print("ready", link.outbox_depth, flush=True)
time.sleep(120)
"""


def _child(port: int, path: Path, station: str, n: int) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(port), str(path), station, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("ready"):
            break
    return proc, "\n".join(lines)


def _kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def test_last_will_offline_when_the_process_is_killed(broker: Broker, sub: Subscriber, tmp_path: Path) -> None:
    avail = "microseis/XX.K1/availability"
    proc, out = _child(broker.port, tmp_path / "ob.sqlite", "XX.K1", 0)
    try:
        assert "connected" in out.splitlines()[0], out
        assert sub.wait_text(avail, "online")
    finally:
        _kill9(proc)
    assert sub.wait_text(avail, "offline", timeout=5)
    assert sub.last(avail).retain is False  # live delivery; the retained copy:
    with Subscriber.of(broker, avail) as late:
        assert late.wait_count(avail, 1) and late.on(avail)[0].text == "offline" and late.on(avail)[0].retain


def test_online_and_model_again_after_broker_restart(broker: Broker, outbox: Outbox,
                                                     links: Callable[..., MqttLink]) -> None:
    link = links(broker.port, outbox, "XX.R1")
    assert link.wait_connected(5)
    link.publish_model({"name": "m", "version": "3", "sha256": SHA})
    link.publish_health({"uptime_s": 1.0})
    assert link.flush(5)
    broker.restart()  # no persistence: every retained message is gone
    with Subscriber.of(broker, "microseis/XX.R1/#") as s:
        assert s.wait_text("microseis/XX.R1/availability", "online", timeout=5)
        assert s.wait_count("microseis/XX.R1/model", 1) and s.wait_count("microseis/XX.R1/health", 1)
        assert s.last("microseis/XX.R1/model").json()["version"] == "3"
    assert link.wait_connected(5) and link.reconnects == 1 and link.connected


# --------------------------------------------------------------------------- the durable outbox


def test_ends_in_order_exactly_once_across_a_broker_restart(broker: Broker, sub: Subscriber, outbox: Outbox,
                                                            links: Callable[..., MqttLink],
                                                            spec_dir: Path) -> None:
    """30 ends: 10 while up, 10 while the broker is down, 10 while it comes back."""
    events = "microseis/XX.B1/events"
    with TcpGate.to(broker) as gate:
        link = links(gate.port, outbox, "XX.B1")
        assert link.wait_connected(5)
        msgs = [end_msg("XX.B1", i) for i in range(30)]
        for m in msgs[:10]:
            link.publish_event_end(m)
        assert link.flush(5) and link.acked == 10
        # the broker acknowledged them; let it hand them on before it is killed
        assert sub.wait_count(events, 10, timeout=5)

        subscribed = sub.subscriptions
        broker.stop()
        for m in msgs[10:20]:
            link.publish_event_end(m)
        # reconnect attempts fail meanwhile
        assert wait_for(lambda: not link.connected and link.stats()["connect_failures"] >= 1, 5)
        assert outbox.depth() == 10 and link.acked == 10  # nothing removed without a PUBACK
        assert [it.msg_id for it in outbox.pending()] == [m["id"] for m in msgs[10:20]]

        # the broker is back; the test's subscriber is in before the station
        gate.set("refuse")
        broker.start()
        assert sub.wait_subscribed(5, more_than=subscribed)
        gate.set("open")
        for m in msgs[20:]:  # racing with the reconnect
            link.publish_event_end(m)
        assert link.flush(10), link.stats()
        assert sub.wait_count(events, 30, timeout=5)
    assert holds_for(lambda: len(sub.on(events)) == 30, 0.2)  # and no duplicate after them
    got = sub.on(events)
    assert [m.json()["id"] for m in got] == [m["id"] for m in msgs]  # in order, each once
    assert [m.payload for m in got] == [dumps(m).encode() for m in msgs]  # byte for byte
    assert not any(m.retain for m in got) and all(m.qos == 1 for m in got)
    assert outbox.depth() == 0 and link.acked == 30 and link.reconnects >= 1
    assert len(link.ack_latencies_ms) == 30
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((spec_dir / "schemas" / "event.schema.json").read_text())
    jsonschema.validate(got[-1].json(), schema)


def test_outbox_empties_only_on_puback(broker: Broker, sub: Subscriber, outbox: Outbox,
                                       links: Callable[..., MqttLink]) -> None:
    events = "microseis/XX.P1/events"
    with TcpGate.to(broker) as gate:
        link = links(gate.port, outbox, "XX.P1")
        assert link.wait_connected(5)
        gate.set("no_acks")  # the broker gets the message, its PUBACK never comes back
        link.publish_event_end(end_msg("XX.P1", 1))
        assert sub.wait_count(events, 1)
        assert wait_for(lambda: link.in_flight == 1, 5)
        assert not link.flush(0.3)  # no PUBACK comes: nothing leaves the outbox
        assert outbox.depth() == 1 and link.acked == 0 and link.in_flight == 1
        gate.set("open", cut=True)  # the connection drops; the next one re-sends it
        assert link.flush(5), link.stats()
        assert sub.wait_count(events, 2)
    assert ids(sub, events) == ["XX.P1-000001"] * 2  # at least once; the consumer dedups on id
    assert outbox.depth() == 0 and link.acked == 1 and link.reconnects == 1


def test_killed_process_leaves_messages_the_next_link_delivers(broker: Broker, sub: Subscriber,
                                                               tmp_path: Path,
                                                               links: Callable[..., MqttLink]) -> None:
    path = tmp_path / "ob.sqlite"
    nowhere = free_port()  # nothing listens there: the child cannot deliver
    proc, out = _child(nowhere, path, "XX.D1", 5)
    _kill9(proc)
    assert out.endswith("ready 5"), out
    ob = Outbox(path)
    try:
        assert [it.msg_id for it in ob.pending()] == [f"XX.D1-{i:06d}" for i in range(5)]
        link = links(broker.port, ob, "XX.D1", connect=False)
        link.publish_event_end(end_msg("XX.D1", 5))  # newer than the backlog
        link.connect()
        assert link.flush(5), link.stats()
        events = "microseis/XX.D1/events"
        assert sub.wait_count(events, 6)
        assert holds_for(lambda: len(sub.on(events)) == 6, 0.1)  # and no duplicate after them
        assert ids(sub, events) == [f"XX.D1-{i:06d}" for i in range(6)]
        assert ob.depth() == 0
    finally:
        ob.close()


def test_unreachable_broker_neither_blocks_nor_loses(broker: Broker, sub: Subscriber, outbox: Outbox,
                                                     links: Callable[..., MqttLink]) -> None:
    events = "microseis/XX.U1/events"
    with TcpGate.to(broker, "stall") as gate:  # accepts TCP, never answers (no CONNACK)
        t0 = time.monotonic()
        link = links(gate.port, outbox, "XX.U1")
        for i in range(5):
            link.publish_event_end(end_msg("XX.U1", i))
        assert link.publish_event_new({"type": "new", "id": "XX.U1-x"}) is False
        assert link.publish_health({"uptime_s": 1}) is False
        assert link.respond("health", "t1", "ok") is False
        assert time.monotonic() - t0 < 1.0
        assert not link.connected and outbox.depth() == 5 and link.new_dropped == 1
        assert not link.flush(0.2)
        # a broker that refuses connections
        gate.set("refuse", cut=True)
        assert wait_for(lambda: not link.connected and link.stats()["connect_failures"] >= 1, 5)
        assert outbox.depth() == 5
        t0 = time.monotonic()
        link.stop(timeout_s=3)
        assert time.monotonic() - t0 < 1.5
        assert outbox.depth() == 5  # kept for the next start
        # the network is back: the next link delivers everything
        gate.set("open")
        link2 = links(gate.port, outbox, "XX.U1")
        assert link2.flush(5)
    assert sub.wait_count(events, 5)
    assert ids(sub, events) == [f"XX.U1-{i:06d}" for i in range(5)]


def test_new_goes_straight_to_the_broker(broker: Broker, sub: Subscriber, outbox: Outbox,
                                         links: Callable[..., MqttLink]) -> None:
    link = links(broker.port, outbox, "XX.N1")
    assert link.wait_connected(5)
    new = {"schema": "microseis/event/1", "type": "new", "id": "XX.N1-000001", "station": "XX.N1",
           "trigger_on": "2026-05-01T12:00:00.000000Z", "cft_peak": 3.5}
    assert link.publish_event_new(new)
    assert outbox.depth() == 0  # not through the outbox
    link.publish_event_end(end_msg("XX.N1", 1))  # the end of the same event
    assert sub.wait_count("microseis/XX.N1/events", 2)
    assert [m["type"] for m in sub.json("microseis/XX.N1/events")] == ["new", "end"]
    assert link.sent == 2 and link.flush(5)


# --------------------------------------------------------------------------- commands, model push


def test_commands_responses_and_model_push(broker: Broker, sub: Subscriber, outbox: Outbox,
                                           links: Callable[..., MqttLink]) -> None:
    got: list[tuple[str, bytes]] = []
    pushed: list[tuple[bytes, bool]] = []
    link = links(broker.port, outbox, "XX.C1", connect=False)
    link.on_command = lambda name, payload: got.append((name, payload))
    link.on_model_push = lambda payload, retained: pushed.append((payload, retained))
    base = "microseis/XX.C1"
    # a retained request (a sender's mistake) reaches the station as retained when it subscribes:
    # ignored, so it does not run again on every reconnect
    sub.publish(f"{base}/cmd/rollback", b"stale", retain=True)
    link.connect()
    assert link.wait_connected(5)
    sub.publish(f"{base}/cmd/health", json.dumps({"transaction": "t-1"}))
    sub.publish(f"{base}/model/push", b"\x00bundle\xff")
    assert wait_for(lambda: got and pushed, 5)
    assert got == [("health", b'{"transaction": "t-1"}')]
    assert pushed == [(b"\x00bundle\xff", False)]
    assert link.respond("health", "t-1", "ok", data={"uptime_s": 3.0})
    assert link.respond("nope", None, "error", error="unknown command 'nope'")
    assert sub.wait_count(f"{base}/cmd/nope/response", 1)
    assert sub.json(f"{base}/cmd/health/response") == [
        {"transaction": "t-1", "status": "ok", "data": {"uptime_s": 3.0}, "error": None}]
    assert sub.json(f"{base}/cmd/nope/response") == [
        {"transaction": None, "status": "error", "data": None, "error": "unknown command 'nope'"}]
    assert not sub.on(f"{base}/cmd/health/response")[0].retain
    with pytest.raises(ValueError):
        link.respond("a/b", "t", "ok")
    sub.publish(f"{base}/cmd/rollback", b"", retain=True)  # clear the retained request


# --------------------------------------------------------------------------- TLS and credentials


@pytest.mark.skipif(find_mosquitto() is None or os.environ.get("MICROSEIS_TEST_BROKER") == "amqtt",
                    reason="needs mosquitto (TLS listener, password file)")
def test_mutual_tls_and_password(tmp_path: Path, outbox: Outbox, links: Callable[..., MqttLink]) -> None:
    pytest.importorskip("cryptography")
    pki = make_test_pki(tmp_path / "pki")
    pw = make_password_file(tmp_path / "passwd", {"s1": "hunter2"})
    conf = (f"cafile {pki['ca']}\ncertfile {pki['server_cert']}\nkeyfile {pki['server_key']}\n"
            f"require_certificate true\nallow_anonymous false\npassword_file {pw}\n")
    tls = dict(host="localhost", tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"])
    with Broker(workdir=tmp_path / "b", conf_extra=conf) as b:
        link = links(b.port, outbox, "XX.T1", username="s1", password="hunter2", **tls)
        link.publish_event_end(end_msg("XX.T1", 1))
        assert link.wait_connected(5), link.last_error
        assert link.flush(5) and link.acked == 1  # PUBACK over TLS
        link.stop()
        # a wrong password: refused, the message stays in the outbox
        bad = links(b.port, outbox, "XX.T1", username="s1", password="wrong", **tls)
        bad.publish_event_end(end_msg("XX.T1", 2))
        assert wait_for(lambda: "refused" in (bad.last_error or ""), 5), bad.last_error
        assert not bad.connected
        assert outbox.depth() == 1
        # without a client certificate the TLS handshake fails
        nocert = links(b.port, outbox, "XX.T1", username="s1", password="hunter2", host="localhost",
                       tls_ca=pki["ca"])
        assert wait_for(lambda: nocert.stats()["connect_failures"] >= 1, 5), nocert.last_error
        assert not nocert.connected
