"""Real MQTT brokers for tests and benchmarks, on a free 127.0.0.1 port (never the system
broker on 1883).

* :class:`Broker`: Mosquitto (``mosquitto`` on ``PATH`` or in ``/usr/sbin``; persistence off,
  anonymous) or, when there is none, an embedded amqtt broker in a subprocess. ``stop()`` kills
  it (SIGKILL: "the broker vanishes"), ``restart()`` brings it back on the *same* port.
  Set ``MICROSEIS_TEST_BROKER=amqtt`` (or ``mosquitto``) to choose.
* :class:`Subscriber`: a paho client that records every message by topic, re-subscribing after
  a broker restart.
* :class:`TcpGate`: a TCP relay between a client and the broker that a test can cut, refuse,
  stall or make swallow the broker's answers (PUBACKs) -- the network failing, independently of
  the broker.
* the ``broker`` pytest fixture: ``from tests.broker import Broker, broker  # noqa``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

try:  # the fixture needs pytest; the benchmark imports this module without it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

__all__ = ["Broker", "Subscriber", "Message", "TcpGate", "free_port", "find_mosquitto", "make_test_pki",
           "make_password_file", "shipped_broker_conf", "MOSQUITTO_CONF", "MOSQUITTO_ACL", "broker"]

from edge.demo.broker import HOST, Broker, find_mosquitto, free_port  # noqa: F401  (re-exported)


def make_test_pki(folder: str | os.PathLike[str]) -> dict[str, str]:
    """A throw-away CA, a server certificate for ``localhost``/127.0.0.1 and a client
    certificate (PEM files in ``folder``; needs ``cryptography``). Returns their paths: ``ca``,
    ``server_cert``, ``server_key``, ``client_cert``, ``client_key``."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("microseis test CA")).issuer_name(name("microseis test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                   else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return b.sign(ca_key, hashes.SHA256()), key

    paths = {"ca": out / "ca.pem", "server_cert": out / "server.pem", "client_cert": out / "client.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    srv, srv_key = leaf("localhost", True)
    cli, cli_key = leaf("XX.S1", False)
    paths["server_cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths["client_cert"].write_bytes(cli.public_bytes(serialization.Encoding.PEM))
    result = {k: str(v) for k, v in paths.items()}
    result["server_key"] = write_key(srv_key, out / "server.key")
    result["client_key"] = write_key(cli_key, out / "client.key")
    return result


def make_password_file(path: str | os.PathLike[str], users: dict[str, str], use_tool: bool | None = None) -> str:
    """A Mosquitto password file: hashed with ``mosquitto_passwd`` when it is installed (or
    ``use_tool=True``), else written here in Mosquitto 2's ``$7$`` format (PBKDF2-SHA512, 101
    iterations, 12-byte salt: ``user:$7$101$<base64 salt>$<base64 hash>``)."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if use_tool is None:
        use_tool = os.access(tool, os.X_OK)
    p = Path(path)
    p.write_text("")
    for user, pw in users.items():
        if use_tool:
            subprocess.run([tool, "-b", str(p), user, pw], check=True, capture_output=True)
        else:
            salt = os.urandom(12)
            digest = hashlib.pbkdf2_hmac("sha512", pw.encode("utf-8"), salt, 101, 64)
            with p.open("a") as fh:
                fh.write(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")
    return str(p)


#: The shipped Mosquitto configuration and ACL (docs/deployment.md, "The broker").
MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "systemd" / "mosquitto" / "microseis.conf"
MOSQUITTO_ACL = MOSQUITTO_CONF.with_name("microseis.acl")


def shipped_broker_conf(pki: dict[str, str], password_file: str,
                        acl_file: str | os.PathLike[str] = MOSQUITTO_ACL) -> str:
    """``conf_extra`` for :class:`Broker` from ``systemd/mosquitto/microseis.conf``: its lines with
    the test's certificate, password and ACL files; without its ``listener`` (the Broker's free
    port takes its place) and its persistence and packet-size lines (a test broker keeps nothing)."""
    files = {"cafile": pki["ca"], "certfile": pki["server_cert"], "keyfile": pki["server_key"],
             "password_file": password_file, "acl_file": str(acl_file)}
    out = []
    for line in MOSQUITTO_CONF.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#") or words[0] in ("listener", "persistence", "persistence_location"):
            continue
        out.append(f"{words[0]} {files[words[0]]}" if words[0] in files else line)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- subscriber


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    time: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.payload.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


class Subscriber:
    """Records every message on ``topic`` (a filter, default ``#``), thread-safe.

    ``start()`` waits for the SUBACK; after a broker restart it reconnects and subscribes
    again (:meth:`wait_subscribed`).
    """

    def __init__(self, host: str, port: int, topic: str = "#", qos: int = 1,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 tls_ca: str | None = None) -> None:
        self.host, self.port, self.topic, self.qos = host, port, topic, qos
        self.granted: list[Any] = []  # the SUBACK reason codes of the last subscription
        self.refused: Any = None  # the CONNACK reason when the broker refused the connection
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.subscriptions = 0  # SUBACKs so far (one per (re)connection)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.05, 0.2)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @classmethod
    def of(cls, broker: Broker, topic: str = "#", **kw: Any) -> Subscriber:
        return cls(broker.host, broker.port, topic, **kw)

    # paho callbacks
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:  # noqa: ANN001
        if not reason.is_failure:
            client.subscribe(self.topic, self.qos)
        else:
            self.refused = reason
            with self._cond:
                self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reasons, properties) -> None:  # noqa: ANN001
        self.subscriptions += 1
        self.granted = list(reasons)
        self._subscribed.set()
        with self._cond:
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:  # noqa: ANN001
        self._subscribed.clear()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))
            self._cond.notify_all()

    # use
    def start(self, timeout: float = 5.0) -> Subscriber:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.wait_subscribed(timeout):
            self.stop()
            raise TimeoutError(f"subscriber: no SUBACK from {self.host}:{self.port} within {timeout} s")
        return self

    def wait_subscribed(self, timeout: float = 5.0, more_than: int | None = None) -> bool:
        """Wait until subscribed; with ``more_than``, until :attr:`subscriptions` exceeds it (a
        re-subscription after a broker restart: pass the count from before the restart)."""
        if more_than is None:
            return self._subscribed.wait(timeout)
        return self.wait_for(lambda s: s.subscriptions > more_than, timeout)

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                timeout: float = 5.0) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def on(self, topic: str) -> list[Message]:
        """Messages received on exactly ``topic``, in arrival order."""
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def texts(self, topic: str) -> list[str]:
        return [m.text for m in self.on(topic)]

    def json(self, topic: str) -> list[Any]:
        return [m.json() for m in self.on(topic)]

    def last(self, topic: str) -> Message | None:
        got = self.on(topic)
        return got[-1] if got else None

    def wait_for(self, predicate: Callable[[Subscriber], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` is true (checked on every message)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._cond:
                self._cond.wait(min(left, 0.05))

    def wait_count(self, topic: str, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda s: len(s.on(topic)) >= n, timeout)

    def wait_text(self, topic: str, text: str, timeout: float = 5.0) -> bool:
        """Wait until the last message on ``topic`` is ``text``."""
        return self.wait_for(lambda s: (m := s.last(topic)) is not None and m.text == text, timeout)


# --------------------------------------------------------------------------- TCP gate


class TcpGate:
    """A TCP relay ``127.0.0.1:port`` -> ``upstream`` that a test can break.

    Modes (:meth:`set`):

    * ``"open"``: relay both ways.
    * ``"refuse"``: new connections are closed at once (the broker is unreachable).
    * ``"stall"``: new connections are accepted and read, nothing is relayed or answered
      (a broker that hangs: no CONNACK).
    * ``"no_acks"``: relay the client's bytes to the broker but drop the broker's answers
      (the broker gets the messages; the client never sees a PUBACK).

    :meth:`cut` closes every current connection (the network drops).
    """

    MODES = ("open", "refuse", "stall", "no_acks")

    def __init__(self, upstream_host: str, upstream_port: int, mode: str = "open") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = mode
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((HOST, 0))
        self._lsock.listen(16)
        self._lsock.settimeout(0.1)
        self.host, self.port = HOST, int(self._lsock.getsockname()[1])
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-gate", daemon=True)
        self._thread.start()

    @classmethod
    def to(cls, broker: Broker, mode: str = "open") -> TcpGate:
        return cls(broker.host, broker.port, mode)

    def set(self, mode: str, cut: bool = False) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        if cut:
            self.cut()

    def cut(self) -> None:
        """Close every relayed connection."""
        with self._lock:
            socks, self._socks = list(self._socks), set()
        for s in socks:
            _close(s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        _close(self._lsock)
        self.cut()

    def __enter__(self) -> TcpGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._socks.update(socks)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            mode = self.mode
            if mode == "refuse":
                _close(c)
                continue
            if mode == "stall":
                self._track(c)
                threading.Thread(target=self._sink, args=(c,), daemon=True).start()
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=2)
                u.settimeout(None)
            except OSError:
                _close(c)
                continue
            self._track(c, u)
            threading.Thread(target=self._relay, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._relay, args=(u, c, True), daemon=True).start()

    def _sink(self, c: socket.socket) -> None:
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        _close(c)

    def _relay(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if downstream and self.mode == "no_acks":
                    continue
                dst.sendall(data)
        except OSError:
            pass
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


# --------------------------------------------------------------------------- pytest fixture

if pytest is not None:
    @pytest.fixture
    def broker(tmp_path: Path) -> Iterator[Broker]:
        """A fresh broker on a free port for one test (killed afterwards)."""
        b = Broker(workdir=tmp_path / "broker")
        b.start()
        try:
            yield b
        finally:
            b.close()
