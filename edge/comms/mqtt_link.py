"""The station's MQTT link (``shared/spec/mqtt.md``, interface version 1): availability with a
Last Will, event messages through the durable :class:`edge.comms.outbox.Outbox`, retained health and
model state, commands and pushed model bundles.

Topics (``{base}`` = ``{prefix}/{station}``)::

    {base}/availability          -> retained, QoS 1: "online" on every (re)connect, "stopped" on a
                                    clean stop(), "offline" as the Last Will
    {base}/events                -> never retained, QoS ``cfg.qos`` (``end``: at least 1)
    {base}/health                -> retained, QoS 1
    {base}/model                 -> retained, QoS 1
    {base}/model/push            <- subscribed, QoS 1: a signed push envelope (bytes) -> on_model_push
    {base}/cmd/{name}            <- subscribed (``cmd/+``), QoS 1: a request -> on_command
    {base}/cmd/{name}/response   -> QoS 1, not retained: respond()

Delivery of ``end`` messages (never lost, in order, ids stable):

* :meth:`MqttLink.publish_event_end` commits the message to the outbox (``msg_id`` = the
  event ``id``) *before* anything goes on the wire; the row is removed only when the broker's
  PUBACK (PUBCOMP at QoS 2) for it arrives. Killed at any point, the station re-sends the row
  after its restart (same payload, same ``id``: a consumer deduplicates on it).
* Every connection is a fresh paho client. On each CONNACK the link publishes ``online``,
  re-publishes the last health/model payloads (a broker without persistence forgets retained
  messages when it restarts), subscribes, then hands the client every waiting row, oldest
  first, before anything newer. A row is handed to a connection at most once, so nothing is
  sent twice on one connection; a row whose PUBACK did not arrive before the connection
  dropped goes again, in its place, on the next one. (paho's own in-memory re-send queue is
  deliberately not used: it would re-send on reconnect *after* the connect callback, out of
  order with the outbox, and it does not survive a restart.)
* ``end`` messages use QoS ``max(cfg.qos, 1)``: the outbox needs an acknowledgement.

``new`` messages (the early alert) go straight to the broker at ``cfg.qos``, without the
outbox: while the link is down they are dropped (counted in ``new_dropped``) -- the ``end``
message of the same ``id`` follows through the outbox and carries everything ``new`` does.
Health, model and command responses are not queued either: while down, only the last
health and model payloads are kept (in memory) and published on the next connection.

Reconnects: after a lost connection or a failed attempt the link waits ``reconnect_min_s``,
doubling after every failed attempt up to ``reconnect_max_s`` (back to the minimum after a
successful connection). Nothing in the public interface blocks on the network: ``connect()``
returns at once, publishing while the broker is unreachable only writes the outbox.

Threads: a supervisor thread (``microseis-mqtt``) connects, re-connects and re-sends; each
connection's paho network thread (``loop_start``) sends, receives and runs the callbacks.
``on_command`` and ``on_model_push`` are called on the paho thread: keep them short (the
daemon only queues the request). Locks: ``_send_lock`` serializes handing messages to the
client (so the outbox order is the wire order) and is never taken by a paho callback;
``_map_lock`` (the mid -> outbox row table) is never held while calling paho. paho holds its
own message lock while it calls ``on_publish``; nothing here calls paho while holding a lock
that ``on_publish`` needs, so the two threads cannot deadlock.

The parts: :mod:`edge.comms.mqtt_settings` (:class:`MqttConfig`), :mod:`edge.comms.topics`
(:class:`Topics`), :mod:`edge.comms.tls` (:func:`tls_context`); this module is the link.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.comms.messages import CommandResponse, dumps
from edge.comms.mqtt_settings import MqttConfig
from edge.comms.outbox import Outbox, OutboxError
from edge.comms.tls import apply_broker_auth, tls_context
from edge.comms.topics import Topics

__all__ = ["MqttLink"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the link

_OK = (MQTTErrorCode.MQTT_ERR_SUCCESS,)


@dataclass(eq=False)
class _Conn:
    """One connection: one paho client and what was handed to it."""

    client: mqtt.Client
    number: int
    up: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    subscribed: threading.Event = field(default_factory=threading.Event)  # SUBACK received
    refused: str | None = None
    handed_upto: int = 0  # highest outbox row id handed to this client
    mid_row: dict[int, int | None] = field(default_factory=dict)  # mid -> outbox row (None: not outbox)
    early: dict[int, float] = field(default_factory=dict)  # mid -> ack time, acked before publish() returned



class MqttLink:
    """The station's connection to the broker.

    Args:
        cfg: :class:`MqttConfig` (or the config's ``MqttSettings`` subclass).
        station: station id ``NET.STA``; topics are ``{cfg.prefix}/{station}/...``.
        outbox: the durable outbox ``end`` messages wait in until acknowledged.
        connect_timeout_s: longest wait for the TCP/TLS connection and then for the CONNACK (s).

    Attributes:
        on_command: ``callable(name, payload_bytes)`` for each request on ``cmd/{name}``
            (called on the paho thread; retained requests are ignored).
        on_model_push: ``callable(payload_bytes, retained)`` for each payload on ``model/push``
            (called on the paho thread; a retained payload identical to the last one is not
            delivered again; ``retained``: it came from the broker's store, e.g. after a restart).
        ack_latencies_ms: put -> PUBACK time (ms) of each ``end`` message put by this process
            (the newest 100 000).

    Raises:
        ValueError: invalid configuration (``"key: problem"``), e.g. a missing TLS file.
    """

    LATENCY_KEEP = 100_000

    def __init__(self, cfg: MqttConfig, station: str, outbox: Outbox, *,
                 connect_timeout_s: float = 10.0) -> None:
        if isinstance(cfg, Mapping):
            cfg = MqttConfig.from_dict(cfg)
        cfg.validate()
        if cfg.password is not None and not cfg.username:
            # not a MqttConfig check: the config loader reports password_file problems itself
            raise ValueError("password: needs a username (MQTT sends a password only with a user name)")
        self.cfg = cfg
        self.station = station
        self.outbox = outbox
        self.topics = Topics.of(cfg.prefix, station)
        self.client_id = cfg.client_id or f"microseis-{station}"
        self.connect_timeout_s = float(connect_timeout_s)
        self._ssl = tls_context(cfg)
        self._end_qos = max(1, int(cfg.qos))

        self.on_command: Callable[[str, bytes], None] | None = None
        self.on_model_push: Callable[[bytes, bool], None] | None = None

        self._send_lock = threading.Lock()
        self._map_lock = threading.Lock()
        self._count_lock = threading.Lock()  # the counters below, bumped from several threads
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._closing = False  # stop() has begun
        self._thread: threading.Thread | None = None
        self._conn: _Conn | None = None  # the current connection, once its CONNACK arrived
        self._retained: dict[str, bytes] = {}  # topic -> last health/model payload
        self._put_times: dict[int, float] = {}  # outbox row -> perf_counter() before put
        self._last_push_digest: str | None = None
        self.ack_latencies_ms: collections.deque[float] = collections.deque(maxlen=self.LATENCY_KEEP)

        self._connects = 0
        self._attempts = 0
        self._failures = 0
        self._disconnects = 0
        self._sent = 0
        self._acked = 0
        self._new_dropped = 0
        self._last_error: str | None = None
        self._connected_since: float | None = None

    # ------------------------------------------------------------------ setup
    def _new_client(self, conn_number: int) -> _Conn:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        conn = _Conn(client, conn_number)
        client.user_data_set(conn)
        client.connect_timeout = self.connect_timeout_s
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        apply_broker_auth(client, self.cfg, self._ssl)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return conn

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Start connecting in the background (returns at once; idempotent). The link keeps
        re-connecting until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._closing = False
        self._thread = threading.Thread(target=self._supervise, name="microseis-mqtt", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the link is connected and ready (CONNACK received, the backlog handed over,
        the command subscriptions acknowledged); returns whether it is. ``timeout`` in s (None =
        forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while not (self.connected and self._conn is not None and self._conn.subscribed.is_set()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(0.05 if left is None else min(left, 0.05))
        return True

    def stop(self, flush_timeout_s: float = 3.0, timeout_s: float = 5.0) -> None:
        """Clean shutdown: wait up to ``flush_timeout_s`` (s) for the outbox to drain (if
        connected), publish ``stopped`` (retained) and wait up to 1 s for its PUBACK, disconnect
        (so the broker does not publish the Last Will) and join the threads (``timeout_s``).
        Whatever is still in the outbox stays there for the next start. Idempotent."""
        if self._thread is None:
            return
        if self.connected and flush_timeout_s > 0:
            self.flush(flush_timeout_s)
        with self._send_lock:
            self._closing = True  # nothing else is published from here on
            conn = self._conn
            info = None
            if conn is not None and conn.up.is_set() and not conn.lost.is_set():
                info = conn.client.publish(self.topics.availability, "stopped", qos=1, retain=True)
                self._register(conn, info, None)
        if info is not None:
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError) as exc:
                log.info("mqtt: could not publish 'stopped': %s", exc)
        self._stopping.set()  # the supervisor disconnects cleanly (no Last Will) and ends
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("mqtt: network thread did not stop within %.1f s", timeout_s)
        self._thread = None

    close = stop

    def __enter__(self) -> MqttLink:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ supervisor thread
    def _supervise(self) -> None:
        delay = self.cfg.reconnect_min_s
        number = 0
        while not self._stopping.is_set():
            number += 1
            self._attempts += 1
            was_up = False
            try:
                conn = self._new_client(number)
                conn.client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._note_failure(f"connect to {self.cfg.host}:{self.cfg.port}: {exc}")
            else:
                conn.client.loop_start()
                try:
                    was_up = self._run_connection(conn)
                except Exception as exc:  # noqa: BLE001 -- the link must survive anything
                    log.exception("mqtt: connection %d failed", number)
                    self._last_error = str(exc)
                finally:
                    self._end_connection(conn)
            if self._stopping.is_set():
                break
            if was_up:
                delay = self.cfg.reconnect_min_s  # a fresh outage starts at the shortest delay
            log.debug("mqtt: reconnecting in %.2f s", delay)
            self._stopping.wait(delay)
            delay = min(delay * 2.0, self.cfg.reconnect_max_s)

    def _note_failure(self, reason: str) -> None:
        self._failures += 1
        if reason != self._last_error:
            log.warning("mqtt: %s", reason)
        self._last_error = reason

    def _run_connection(self, conn: _Conn) -> bool:
        """Wait for the CONNACK, take the connection into use, wait until it is lost or the link
        stops. Returns whether the connection was up."""
        deadline = time.monotonic() + self.connect_timeout_s
        while not conn.up.wait(0.05):
            if conn.lost.is_set() or self._stopping.is_set():
                if not self._stopping.is_set():
                    self._note_failure(conn.refused or f"connection to {self.cfg.host}:{self.cfg.port} "
                                                      f"closed or failed before the CONNACK")
                return False
            if time.monotonic() > deadline:
                self._note_failure(f"no CONNACK from {self.cfg.host}:{self.cfg.port} within "
                                   f"{self.connect_timeout_s:.1f} s")
                return False
        client = conn.client
        with self._send_lock:
            if self._stopping.is_set() or self._closing:
                return True
            # subscribe first: a station that says "online" hears its commands and pushes
            client.subscribe([(self.topics.commands, 1), (self.topics.model_push, 1)])
            self._register(conn, client.publish(self.topics.availability, "online", qos=1, retain=True), None)
            for topic, payload in list(self._retained.items()):
                self._register(conn, client.publish(topic, payload, qos=1, retain=True), None)
            self._conn = conn
            self._connects += 1
            self._connected_since = time.time()
            self._last_error = None
        log.info("mqtt: connected to %s:%d as %s (%s)", self.cfg.host, self.cfg.port, self.client_id,
                 "first connection" if self._connects == 1 else f"reconnect {self._connects - 1}")
        self._pump(conn)
        with self._idle:
            self._idle.notify_all()
        while not conn.lost.wait(0.2):
            if self._stopping.is_set():
                break
        return True

    def _end_connection(self, conn: _Conn) -> None:
        with self._send_lock:
            if self._conn is conn:
                self._conn = None
                self._connected_since = None
        if not conn.lost.is_set():
            try:
                conn.client.disconnect()
            except Exception:  # noqa: BLE001
                pass
        conn.client.loop_stop()
        if conn.up.is_set():
            self._disconnects += 1
        with self._map_lock:
            conn.mid_row.clear()
            conn.early.clear()
        with self._idle:
            self._idle.notify_all()

    # ------------------------------------------------------------------ paho callbacks (paho thread)
    def _on_connect(self, client: mqtt.Client, conn: _Conn, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            conn.refused = f"broker {self.cfg.host}:{self.cfg.port} refused the connection: {reason}"
            conn.lost.set()
        else:
            conn.up.set()

    def _on_subscribe(self, client: mqtt.Client, conn: _Conn, mid: int, reasons: Any, properties: Any) -> None:
        bad = [r for r in reasons if getattr(r, "is_failure", False)]
        if bad:
            log.warning("mqtt: broker refused the subscription to %s / %s: %s", self.topics.commands,
                        self.topics.model_push, bad)
        conn.subscribed.set()
        with self._idle:
            self._idle.notify_all()

    def _on_disconnect(self, client: mqtt.Client, conn: _Conn, flags: Any, reason: Any,
                       properties: Any) -> None:
        if conn.up.is_set() and not self._stopping.is_set():
            log.warning("mqtt: connection to %s:%d lost (%s)", self.cfg.host, self.cfg.port, reason)
            self._last_error = f"connection lost: {reason}"
        conn.lost.set()

    def _on_publish(self, client: mqtt.Client, conn: _Conn, mid: int, reason: Any, properties: Any) -> None:
        t_ack = time.perf_counter()
        with self._map_lock:
            if mid not in conn.mid_row:
                conn.early[mid] = t_ack  # publish() has not returned yet: _register() acks it
                return
            row = conn.mid_row.pop(mid)
        if row is not None:
            self._acked_row(row, reason, t_ack)

    def _on_message(self, client: mqtt.Client, conn: _Conn, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        payload = bytes(msg.payload)
        try:
            if topic == self.topics.model_push:
                digest = hashlib.sha256(payload).hexdigest()
                if msg.retain and digest == self._last_push_digest:
                    return  # the same retained bundle again after a reconnect
                self._last_push_digest = digest
                if self.on_model_push is not None:
                    self.on_model_push(payload, bool(msg.retain))
            elif topic.startswith(self.topics.base + "/cmd/"):
                name = topic[len(self.topics.base) + 5:]
                if msg.retain:
                    log.warning("mqtt: ignoring a retained command on %s (commands must not be retained)", topic)
                    return
                if self.on_command is not None:
                    self.on_command(name, payload)
        except Exception:  # noqa: BLE001 -- a bad handler must not kill the network thread
            log.exception("mqtt: handler for %s failed", topic)

    # ------------------------------------------------------------------ acknowledgements
    def _register(self, conn: _Conn, info: mqtt.MQTTMessageInfo, row: int | None) -> None:
        """Record which outbox row (None: none) a published mid belongs to; handles a PUBACK that
        arrived before ``publish()`` returned."""
        if info.rc not in _OK and info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.warning("mqtt: publish failed: %s", mqtt.error_string(info.rc))
        with self._map_lock:
            t_ack = conn.early.pop(info.mid, None)
            if t_ack is None:
                conn.mid_row[info.mid] = row
        if t_ack is not None and row is not None:
            self._acked_row(row, None, t_ack)

    def _acked_row(self, row: int, reason: Any, t_ack: float) -> None:
        """The broker acknowledged outbox row ``row`` (PUBACK at ``t_ack``, perf_counter s)."""
        if reason is not None and getattr(reason, "is_failure", False):
            log.warning("mqtt: broker rejected outbox row %d: %s (kept for the next connection)", row, reason)
            return
        try:
            removed = self.outbox.remove(row)
        except OutboxError as exc:
            log.warning("mqtt: %s", exc)
            return
        t0 = self._put_times.pop(row, None)
        if removed:
            with self._count_lock:
                self._acked += 1
                if t0 is not None:
                    self.ack_latencies_ms.append((t_ack - t0) * 1000.0)
        with self._idle:
            self._idle.notify_all()

    # ------------------------------------------------------------------ sending
    def _pump(self, conn: _Conn) -> None:
        """Hand ``conn`` every waiting outbox row it has not had yet, oldest first (in batches, so
        a long backlog does not hold up a publisher for long: whoever pumps next goes on from
        ``conn.handed_upto``, so the order holds whichever thread does it)."""
        while True:
            with self._send_lock:
                if self._conn is not conn or conn.lost.is_set() or self._closing:
                    return
                items = self.outbox.pending(after_id=conn.handed_upto, limit=256)
                if not items:
                    return
                for it in items:
                    info = conn.client.publish(it.topic, it.payload, qos=it.qos, retain=it.retain)
                    conn.handed_upto = it.row_id
                    with self._count_lock:
                        self._sent += 1
                    self._register(conn, info, it.row_id)

    def _publish_now(self, topic: str, payload: bytes | str, qos: int, retain: bool,
                     keep: bool = False, count: bool = False) -> bool:
        """Publish without the outbox if connected; returns whether it was handed to the client.
        ``keep``: remember the payload to publish it again on every (re)connect; ``count``: an
        event message (counted in ``sent``)."""
        with self._send_lock:
            if keep:
                self._retained[topic] = bytes(payload) if isinstance(payload, bytes) else payload.encode()
            conn = self._conn
            if conn is None or conn.lost.is_set() or self._closing:
                return False
            info = conn.client.publish(topic, payload, qos=qos, retain=retain)
            self._register(conn, info, None)
            if count:
                with self._count_lock:
                    self._sent += 1
            return info.rc in _OK

    def publish_event_end(self, msg: Mapping[str, Any]) -> int:
        """Queue an ``end`` message: committed to the outbox (``msg_id`` = ``msg["id"]``) before it
        is sent, removed on its PUBACK. Returns the outbox row id. Never blocks on the network."""
        payload = dumps(msg).encode("utf-8")
        msg_id = str(msg["id"])
        t0 = time.perf_counter()
        row = self.outbox.put(self.topics.events, payload, msg_id, qos=self._end_qos, retain=False)
        self._put_times.setdefault(row, t0)
        conn = self._conn
        if conn is not None:
            self._pump(conn)
        return row

    def publish_event_new(self, msg: Mapping[str, Any]) -> bool:
        """Send a ``new`` message (early alert) straight to the broker at ``cfg.qos``; dropped
        (and counted in ``new_dropped``) while the link is down. Returns whether it was sent."""
        payload = dumps(msg).encode("utf-8")
        ok = self._publish_now(self.topics.events, payload, self.cfg.qos, False, count=True)
        if not ok:
            with self._count_lock:
                self._new_dropped += 1
            log.info("mqtt: not connected: 'new' %s not sent (its 'end' goes through the outbox)",
                     msg.get("id"))
        return ok

    def _publish_retained(self, topic: str, payload: Mapping[str, Any]) -> bool:
        return self._publish_now(topic, dumps(payload).encode("utf-8"), 1, True, keep=True)

    def publish_health(self, payload: Mapping[str, Any]) -> bool:
        """Publish the health JSON (retained, QoS 1). While down only the latest is kept, and
        published on the next connection. Returns whether it was sent now."""
        return self._publish_retained(self.topics.health, payload)

    def publish_model(self, payload: Mapping[str, Any]) -> bool:
        """Publish the active model state (retained, QoS 1); kept and re-published on every
        (re)connect. Returns whether it was sent now."""
        return self._publish_retained(self.topics.model, payload)

    def respond(self, name: str, tx: Any, status: str, data: Any = None, error: str | None = None) -> bool:
        """Answer the command ``name`` on ``cmd/{name}/response`` (QoS 1, not retained):
        ``{"transaction", "status", "data", "error"}``. Dropped while the link is down. Returns
        whether it was sent."""
        if not name or any(c in name for c in "/+#"):
            raise ValueError(f"command name must be one topic level, got {name!r}")
        body = CommandResponse(tx, status, data, error).to_json().encode("utf-8")
        ok = self._publish_now(self.topics.response(name), body, 1, False)
        if not ok:
            log.info("mqtt: not connected: response to %s (%s) not sent", name, tx)
        return ok

    # ------------------------------------------------------------------ waiting, figures
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the outbox is empty (every ``end`` acknowledged), at most ``timeout`` s.
        Returns whether it is."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.outbox.depth() == 0:
                    return True
            except OutboxError:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._idle:
                self._idle.wait(min(left, 0.05))

    wait_idle = flush

    @property
    def connected(self) -> bool:
        """True while a connection is up (CONNACK received, not lost)."""
        conn = self._conn
        return conn is not None and not conn.lost.is_set()

    @property
    def outbox_depth(self) -> int:
        """Messages waiting in the outbox (-1 if it cannot be read)."""
        try:
            return self.outbox.depth()
        except OutboxError:
            return -1

    @property
    def connects(self) -> int:
        """Successful connections since start."""
        return self._connects

    @property
    def reconnects(self) -> int:
        """Successful connections after the first."""
        return max(0, self._connects - 1)

    @property
    def sent(self) -> int:
        """Event messages handed to the network (``end`` re-sends after a reconnect count again)."""
        return self._sent

    @property
    def acked(self) -> int:
        """``end`` messages acknowledged by the broker and removed from the outbox."""
        return self._acked

    @property
    def new_dropped(self) -> int:
        """``new`` messages not sent because the link was down."""
        return self._new_dropped

    @property
    def in_flight(self) -> int:
        """Outbox rows handed to the current connection and not yet acknowledged."""
        conn = self._conn
        if conn is None:
            return 0
        with self._map_lock:
            return sum(1 for r in conn.mid_row.values() if r is not None)

    @property
    def last_error(self) -> str | None:
        """The last connection problem (None once connected)."""
        return self._last_error

    def latency_summary(self) -> dict[str, float | int | None]:
        """``{"n", "p50_ms", "p99_ms", "max_ms"}`` of :attr:`ack_latencies_ms`."""
        xs = sorted(self.ack_latencies_ms)
        if not xs:
            return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}

        def q(p: float) -> float:
            return round(xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))], 3)

        return {"n": len(xs), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(xs[-1], 3)}

    def stats(self) -> dict[str, Any]:
        """Figures for the health message (counts since start)."""
        return {
            "connected": self.connected, "connects": self._connects, "reconnects": self.reconnects,
            "connect_attempts": self._attempts, "connect_failures": self._failures,
            "disconnects": self._disconnects, "sent": self._sent, "acked": self._acked,
            "new_dropped": self._new_dropped, "in_flight": self.in_flight,
            "outbox_depth": self.outbox_depth, "last_error": self._last_error,
        }

    def __repr__(self) -> str:
        return (f"MqttLink({self.cfg.host}:{self.cfg.port}, {self.topics.base!r}, "
                f"{'connected' if self.connected else 'down'})")

