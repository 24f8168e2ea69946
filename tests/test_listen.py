"""``microseis listen``: the formatting and validation helpers, and the command itself in a
subprocess against a real broker (``tests/broker.py``) fed by a paho publisher."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge.cli.listen_format import EVENT_SCHEMA, format_message, json_line, message_problems, parse_topic
from edge.comms.messages import EventEnd, EventNew, Health, Magnitude, ModelRef, ModelState
from tests.broker import (  # noqa: F401
    Broker,
    Subscriber,
    TcpGate,
    broker,
    find_mosquitto,
    free_port,
    make_password_file,
    make_test_pki,
)
from tests.util import wait_for

REPO = Path(__file__).resolve().parents[1]
SHA = "ab" * 32
T_ON = 1275000273.21  # 2010-05-27T22:44:33.210000Z


def new_msg(station: str = "XX.S1", t: float = T_ON, cft: float = 7.12) -> EventNew:
    return EventNew.create(station, t, cft)


def end_msg(station: str = "XX.S1", t: float = T_ON, **over: Any) -> dict[str, Any]:
    new = new_msg(station, t)
    d = EventEnd(id=new.id, station=station, trigger_on=new.trigger_on,
                 trigger_off="2010-05-27T22:44:45.610000Z", duration_s=12.4, cft_peak=7.12,
                 event_class="earthquake",
                 probabilities={"earthquake": 0.97, "rockfall": 0.01, "fracture": 0.01, "noise": 0.01},
                 uncertainty=0.05, magnitude=Magnitude(1.23, 1.1, distance_km=12.0),
                 model=ModelRef("resnet18-cbam", "1.0.0", SHA), latency_ms=85.4,
                 channels=["HHZ", "HHN", "HHE"]).to_dict()
    d.update(over)
    return d


def health_msg(station: str = "XX.S1") -> Health:
    return Health(time="2010-05-27T22:45:00.000000Z", station=station, uptime_s=3725.0, samples_per_s=750.0,
                  gaps=0, crc_errors=2, outbox_depth=0, model_version="1.0.0", cpu_percent=12.3, rss_mb=85.2,
                  last_event_time="2010-05-27T22:44:33.210000Z")


def model_msg() -> ModelState:
    return ModelState("resnet18-cbam", "1.0.0", SHA, ["earthquake", "rockfall", "fracture", "noise"],
                      last_update={"status": "ok", "message": "installed 1.0.0", "time": "2010-05-27T22:00:00Z"})


def enc(obj: Any) -> bytes:
    if hasattr(obj, "to_json"):
        return obj.to_json().encode()
    return json.dumps(obj).encode()


# --------------------------------------------------------------------------- helpers, no broker


def test_parse_topic() -> None:
    assert parse_topic("microseis/XX.S1/events") == ("XX.S1", "events", None)
    assert parse_topic("site/a/microseis/XX.S1/availability") == ("XX.S1", "availability", None)
    assert parse_topic("microseis/XX.S1/cmd/rollback/response") == ("XX.S1", "response", "rollback")
    assert parse_topic("microseis/XX.S1/model") == ("XX.S1", "model", None)
    assert parse_topic("elsewhere") == ("?", "other", None)


def test_format_lines() -> None:
    topic = "microseis/XX.S1/events"
    line = format_message(topic, enc(new_msg()))
    assert line == "22:44:33.210  XX.S1  NEW      ev XX.S1-20100527T224433.210000Z  cft 7.1"
    line = format_message(topic, enc(end_msg()))
    assert line.startswith("22:44:33.210  XX.S1  END      ev XX.S1-20100527T224433.210000Z  ")
    for part in ("earthquake 0.97 (unc 0.05)", "ML 1.2", "model M 1.1", "dur 12.4 s", "latency 85 ms"):
        assert part in line, (part, line)
    no_ml = format_message(topic, enc(end_msg(magnitude={"ml": None, "model": 0.8, "reason": "no response"})))
    assert "ML - (no response)  model M 0.8  dur" in no_ml
    no_m = format_message(topic, enc(end_msg(magnitude={"ml": 1.0, "model": None, "reason": "untrained"})))
    assert "ML 1.0  model M - (untrained)  dur" in no_m

    avail = "microseis/XX.S1/availability"
    assert "ONLINE" in format_message(avail, b"online", retained=True)
    assert format_message(avail, b"online", retained=True).endswith("(retained)")
    assert "OFFLINE" in format_message(avail, b"offline") and "Last Will" in format_message(avail, b"offline")
    assert "STOPPED" in format_message(avail, b"stopped")
    assert format_message(avail, b"online", received=0.5).startswith("00:00:00.500  XX.S1  ONLINE")

    h = format_message("microseis/XX.S1/health", enc(health_msg()))
    assert h.startswith("22:45:00.000  XX.S1  HEALTH   up 1h02m  750.0 sps  gaps 0  crc 2  outbox 0  cpu 12%")
    assert "rss 85 MB" in h and "model 1.0.0" in h and "last event 22:44:33.210" in h
    m = format_message("microseis/XX.S1/model", enc(model_msg()))
    assert "MODEL    resnet18-cbam 1.0.0  sha256 abababababab" in m
    assert "classes earthquake,rockfall,fracture,noise" in m and "last update ok: installed 1.0.0" in m
    r = format_message("microseis/XX.S1/cmd/rollback/response",
                       enc({"transaction": "t1", "status": "error", "data": None, "error": "no previous model"}))
    assert "RESP" in r and "cmd rollback" in r and "tx t1" in r and "error: no previous model" in r


@pytest.mark.parametrize("payload", [
    b"not json {", b"\xff\xfe\x00", b"", b"NaN", b"[1, 2]", b"42", b"null", b'"text"',
    b'{"type": "end"}', b'{"type": "new", "cft_peak": "high", "id": 5}',
    json.dumps(end_msg(probabilities=[0.5, 0.5], magnitude="big", uncertainty=None, latency_ms={})).encode(),
    json.dumps(end_msg(**{"class": ["x"]})).encode(),
])
def test_bad_payloads_never_crash(payload: bytes) -> None:
    for topic in ("microseis/XX.S1/events", "microseis/XX.S1/health", "microseis/XX.S1/model",
                  "microseis/XX.S1/availability", "microseis/XX.S1/cmd/x/response", "x"):
        line = format_message(topic, payload)
        assert isinstance(line, str) and "\n" not in line
        probs = message_problems(topic, payload)
        json.loads(json_line(topic, payload, problems=probs))
        if topic.endswith("/events"):
            assert probs, payload


def test_problems_name_the_field() -> None:
    topic = "microseis/XX.S1/events"
    assert message_problems(topic, enc(new_msg())) == []
    assert message_problems(topic, enc(end_msg())) == []
    bad = end_msg(latency_ms="fast", magnitude={"ml": "big", "model": None})
    del bad["uncertainty"]
    probs = message_problems(topic, json.dumps(bad))
    text = "\n".join(probs)
    assert "field 'latency_ms'" in text and "field 'magnitude.ml'" in text
    assert "field 'uncertainty': missing (required)" in text
    assert any("sha256" in p for p in message_problems(topic, enc(end_msg(model={"name": "m", "version": "1",
                                                                                   "sha256": "XYZ"}))))
    sums = message_problems(topic, enc(end_msg(probabilities={"earthquake": 0.5, "noise": 0.2})))
    assert sums == ["field 'probabilities': sum to 0.700, not 1"]
    assert "not JSON" in message_problems(topic, b"{oops")[0]
    assert "availability" in message_problems("microseis/XX.S1/availability", b"maybe")[0]


def test_problems_without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema -> ImportError
    topic = "microseis/XX.S1/events"
    assert message_problems(topic, enc(end_msg())) == []
    bad = end_msg()
    del bad["latency_ms"]
    assert message_problems(topic, json.dumps(bad)) == ["field 'latency_ms': missing (required)"]
    assert "field 'type'" in message_problems(topic, b'{"type": "maybe"}')[-1]


def test_builtin_schema_is_the_spec(spec_dir: Path) -> None:
    spec = json.loads((spec_dir / "schemas" / "event.schema.json").read_text())
    assert EVENT_SCHEMA == spec


# --------------------------------------------------------------------------- the command


class Listen:
    """``python -m edge listen ARGS`` in a subprocess; :meth:`wait_listening` waits for the
    subscription (its ``listening on`` line on stderr)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "listen", *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._listening = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, pipe: Any, lines: list[str]) -> None:
        for line in pipe:
            lines.append(line)
            if line.startswith("listening on "):
                self._listening.set()

    def wait_listening(self, timeout: float = 10.0) -> None:
        if not self._listening.wait(timeout):
            self.proc.kill()
            raise AssertionError("listen did not subscribe:\n" + "".join(self.err))

    def finish(self, timeout: float = 15.0) -> tuple[int, list[str], str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("listen did not exit:\n" + "".join(self.out + self.err)) from None
        for t in self._threads:
            t.join(5)
        return self.proc.returncode, [line.rstrip("\n") for line in self.out], "".join(self.err)


@pytest.fixture
def pub(broker: Broker):
    with Subscriber.of(broker, topic="unused/#") as s:
        yield s


def test_listen_prints_each_message(broker: Broker, pub: Subscriber) -> None:
    pub.publish("microseis/XX.S1/availability", b"online", retain=True)
    pub.publish("microseis/XX.S1/health", enc(health_msg()), retain=True)
    pub.publish("microseis/XX.S1/model", enc(model_msg()), retain=True)
    pub.publish("microseis/XX.S2/availability", b"online", retain=True)  # another station
    ls = Listen("--host", broker.host, "--port", str(broker.port), "--station", "XX.S1", "--count", "6",
                "--duration", "15")
    ls.wait_listening()
    pub.publish("microseis/XX.S2/events", enc(new_msg("XX.S2")))
    pub.publish("microseis/XX.S1/events", enc(new_msg()))
    pub.publish("microseis/XX.S1/events", enc(end_msg()))
    pub.publish("microseis/XX.S1/availability", b"stopped", retain=True)
    rc, out, err = ls.finish()
    assert rc == 0, err
    assert len(out) == 6, out
    # (amqtt may deliver the retained copies after live messages: compare without the order)
    retained = [line for line in out if line.endswith("(retained)")]
    live = [line for line in out if not line.endswith("(retained)")]
    assert sorted(line.split()[2] for line in retained) == ["HEALTH", "MODEL", "ONLINE"], out
    assert all(" XX.S1 " in line for line in out)
    assert live[0] == "22:44:33.210  XX.S1  NEW      ev XX.S1-20100527T224433.210000Z  cft 7.1"
    assert " END " in live[1] and "earthquake 0.97 (unc 0.05)  ML 1.2  model M 1.1" in live[1]
    assert " STOPPED " in live[2]
    assert "microseis listen: warning" not in err
    assert "6 message(s)" in err


def test_listen_json_and_count(broker: Broker, pub: Subscriber) -> None:
    ls = Listen("--host", broker.host, "--port", str(broker.port), "--json", "--count", "3")
    ls.wait_listening()
    sent = [("microseis/XX.S1/events", new_msg().to_dict()), ("microseis/XX.S2/events", end_msg("XX.S2")),
            ("microseis/XX.S1/availability", "offline"), ("microseis/XX.S1/availability", "online")]
    for topic, payload in sent:
        pub.publish(topic, payload if isinstance(payload, str) else json.dumps(payload))
    rc, out, err = ls.finish()
    assert rc == 0, err
    assert len(out) == 4, out  # 3 messages (the 4th is past --count), then the summary
    got = [json.loads(line) for line in out]
    assert [(g["topic"], g["payload"]) for g in got[:3]] == sent[:3]
    assert all(g["retained"] is False and g["received"].endswith("Z") and "problems" not in g for g in got[:3])
    summary = got[-1]["summary"]
    assert summary["messages"] == 3 and summary["count_reached"] is True and summary["invalid"] == 0
    assert summary["by_kind"] == {"new": 1, "end": 1, "availability": 1}


def test_listen_survives_bad_payloads(broker: Broker, pub: Subscriber) -> None:
    ls = Listen("--host", broker.host, "--port", str(broker.port), "--count", "5", "--duration", "15")
    ls.wait_listening()
    bad_end = end_msg(latency_ms="fast", magnitude={"ml": "big", "model": None})
    pub.publish("microseis/XX.S1/events", b"\x00\xffnot json")
    pub.publish("microseis/XX.S1/events", json.dumps(bad_end))
    pub.publish("microseis/XX.S1/health", b"[1, 2, 3]")
    pub.publish("microseis/XX.S1/events", b'{"type": "end", "id": 7}')
    pub.publish("microseis/XX.S1/events", enc(end_msg()))  # still alive and well
    rc, out, err = ls.finish()
    assert rc == 0, err
    assert len(out) == 5, out
    assert " EVENT " in out[0] and " END " in out[1] and "latency ?fast ms" in out[1]
    assert " HEALTH " in out[2] and " END " in out[4]
    assert "not UTF-8" in err
    assert "field 'latency_ms'" in err and "field 'magnitude.ml'" in err
    assert "ev XX.S1-20100527T224433.210000Z" in err  # the warning names the event
    assert "field 'id'" in err and "field 'trigger_off': missing (required)" in err
    assert "not an object" in err
    assert "4 invalid" in err


def test_listen_duration_without_messages(broker: Broker) -> None:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "edge", "listen", "--port", str(broker.port), "--host",
                          broker.host, "--duration", "0.5", "--json"], capture_output=True, text=True,
                         timeout=20, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t0 < 10
    assert json.loads(res.stdout.splitlines()[-1])["summary"]["messages"] == 0


def test_listen_unreachable_broker_and_bad_options() -> None:
    port = free_port()
    res = subprocess.run([sys.executable, "-m", "edge", "listen", "--host", "127.0.0.1", "--port", str(port),
                          "--duration", "5"], capture_output=True, text=True, timeout=20, cwd=REPO)
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("microseis listen: error:")]
    assert errors == [f"microseis listen: error: cannot connect to 127.0.0.1:{port}: connection refused "
                      "(is a broker running there?)"], res.stderr
    for bad in (["--count", "0"], ["--station", "XX/S1"], ["--duration", "-1"], ["--port", "70000"],
                ["--prefix", "a/#"], ["--port", "x"], ["--schema", "/nonexistent.json"],
                ["--password-file", "/nonexistent/pw", "--username", "u"]):
        res = subprocess.run([sys.executable, "-m", "edge", "listen", *bad], capture_output=True, text=True,
                             timeout=20, cwd=REPO)
        assert res.returncode == 2, (bad, res.stderr)
        assert "error" in res.stderr.splitlines()[-1]


def test_listen_broker_that_never_answers(broker: Broker) -> None:
    with TcpGate.to(broker, mode="stall") as gate:
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "edge", "listen", "--host", gate.host, "--port", str(gate.port),
                              "--connect-timeout", "1"], capture_output=True, text=True, timeout=20, cwd=REPO)
        assert res.returncode == 1
        assert f"cannot connect to {gate.host}:{gate.port}: no CONNACK within 1 s" in res.stderr
        assert time.monotonic() - t0 < 8


@pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto (password file)")
def test_listen_with_password(tmp_path: Path) -> None:
    pwfile = make_password_file(tmp_path / "passwd", {"eng": "s3cret"})
    with Broker(kind="mosquitto", workdir=tmp_path / "b",
                conf_extra=f"allow_anonymous false\npassword_file {pwfile}") as b:
        good, wrong = tmp_path / "good", tmp_path / "wrong"
        good.write_text("s3cret\n")
        wrong.write_text("nope\n")
        base = [sys.executable, "-m", "edge", "listen", "--host", b.host, "--port", str(b.port), "--duration", "0.3"]
        res = subprocess.run(base + ["--username", "eng", "--password-file", str(good)], capture_output=True,
                             text=True, timeout=20, cwd=REPO)
        assert res.returncode == 0, res.stderr
        res = subprocess.run(base + ["--username", "eng", "--password-file", str(wrong)], capture_output=True,
                             text=True, timeout=20, cwd=REPO)
        assert res.returncode == 1
        assert f"cannot connect to {b.host}:{b.port}: broker refused the connection" in res.stderr


@pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto (TLS listener)")
def test_listen_over_tls(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki")
    conf = f"cafile {pki['ca']}\ncertfile {pki['server_cert']}\nkeyfile {pki['server_key']}"
    with Broker(kind="mosquitto", workdir=tmp_path / "b", conf_extra=conf) as b:
        base = [sys.executable, "-m", "edge", "listen", "--host", b.host, "--port", str(b.port), "--duration", "0.3"]
        res = subprocess.run(base + ["--tls-ca", pki["ca"]], capture_output=True, text=True, timeout=20, cwd=REPO)
        assert res.returncode == 0, res.stderr
        res = subprocess.run(base + ["--connect-timeout", "1"], capture_output=True, text=True, timeout=20,
                             cwd=REPO)  # plain MQTT to a TLS listener
        assert res.returncode == 1, res.stderr
        assert f"cannot connect to {b.host}:{b.port}: " in res.stderr, res.stderr
        other = make_test_pki(tmp_path / "other")  # a CA that did not sign the broker's certificate
        res = subprocess.run(base + ["--tls-ca", other["ca"]], capture_output=True, text=True, timeout=20, cwd=REPO)
        assert res.returncode == 1
        assert f"cannot connect to {b.host}:{b.port}: TLS: CERTIFICATE_VERIFY_FAILED" in res.stderr


def test_listen_reconnects_after_broker_restart(broker: Broker) -> None:
    ls = Listen("--host", broker.host, "--port", str(broker.port), "--count", "2", "--duration", "20")
    ls.wait_listening()
    with Subscriber.of(broker, topic="unused/#") as pub:
        pub.publish("microseis/XX.S1/events", enc(new_msg()))
    broker.restart(down_s=0.2)
    assert wait_for(lambda: any("reconnected" in line for line in ls.err), 10), ls.err
    with Subscriber.of(broker, topic="unused/#") as pub:
        pub.publish("microseis/XX.S1/events", enc(end_msg()))
    rc, out, err = ls.finish()
    assert rc == 0, err
    assert [line.split()[2] for line in out] == ["NEW", "END"]
    assert "connection to" in err and "lost" in err and "reconnected" in err
