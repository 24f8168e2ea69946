"""``[mqtt]``: the broker connection settings (:class:`MqttConfig`) and their checks."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

__all__ = ["MqttConfig"]


def _type_name(v: Any) -> str:
    if v is None:
        return "nothing (None)"
    if isinstance(v, bool):
        return f"boolean {v!r}"
    return f"{type(v).__name__} {v!r}"


@dataclass
class MqttConfig:
    """The broker connection (``[mqtt]`` of the station configuration).

    Attributes:
        host: broker host name or address.
        port: broker TCP port (1883; 8883 for TLS).
        prefix: topic prefix; topics are ``{prefix}/{station}/...``.
        client_id: MQTT client id, unique per station; None = ``microseis-{station}``.
        username: broker user name; None = anonymous.
        password: broker password (:class:`MqttLink` refuses one without ``username``).
        tls_ca: CA certificate file (PEM) that verifies the broker. Setting any ``tls_*`` file
            turns TLS on (without ``tls_ca`` the system CAs verify the broker).
        tls_cert: client certificate (PEM) for mutual TLS (with ``tls_key``).
        tls_key: client private key (PEM) for mutual TLS.
        tls_insecure: skip the broker host-name check (testing only).
        keepalive_s: MQTT keepalive (s); the broker publishes the Last Will after 1.5 x this
            without traffic from a station that vanished without closing its connection.
        reconnect_min_s: first reconnect delay (s), doubled after each failed attempt.
        reconnect_max_s: longest reconnect delay (s).
        qos: QoS of event messages (0, 1 or 2); ``end`` messages use at least 1.
    """

    host: str = "localhost"
    port: int = 1883
    prefix: str = "microseis"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    qos: int = 1

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def problems(self) -> list[tuple[str, str]]:
        """``[(key, problem)]`` of every invalid value (empty when the configuration is valid)."""
        out: list[tuple[str, str]] = []

        def typed(key: str, v: Any, kind: type, optional: bool = False) -> bool:
            if v is None and optional:
                return False
            if kind is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                expected = "a number"
            elif kind is int:
                ok = isinstance(v, int) and not isinstance(v, bool)
                expected = "an integer"
            elif kind is bool:
                ok = isinstance(v, bool)
                expected = "a boolean (true or false)"
            else:
                ok = isinstance(v, str)
                expected = "a string"
            if not ok:
                out.append((key, f"expected {expected}, got {_type_name(v)}"))
            return ok

        if typed("host", self.host, str):
            if not self.host.strip() or any(c.isspace() for c in self.host):
                out.append(("host", f"must be a host name or address, got {self.host!r}"))
        if typed("port", self.port, int) and not 1 <= self.port <= 65535:
            out.append(("port", f"must be 1..65535, got {self.port}"))
        if typed("prefix", self.prefix, str):
            p = self.prefix
            if not p or p.startswith("/") or p.endswith("/") or "//" in p:
                out.append(("prefix", f"must be one or more non-empty topic levels without a leading "
                                      f"or trailing '/', got {p!r}"))
            elif any(c in p for c in "+#\0"):
                out.append(("prefix", f"must not contain the wildcards '+' or '#', got {p!r}"))
        if typed("client_id", self.client_id, str, optional=True):
            if not self.client_id or len(self.client_id.encode("utf-8")) > 65535:
                out.append(("client_id", f"must be 1..65535 bytes or unset, got {self.client_id!r}"))
        typed("username", self.username, str, optional=True)
        typed("password", self.password, str, optional=True)
        for key in ("tls_ca", "tls_cert", "tls_key"):
            v = getattr(self, key)
            if typed(key, v, str, optional=True) and not v:
                out.append((key, "must be a file path or unset, got an empty string"))
        if self.tls_key and not self.tls_cert:
            out.append(("tls_key", "needs tls_cert (mutual TLS takes a certificate and its key)"))
        typed("tls_insecure", self.tls_insecure, bool)
        if typed("keepalive_s", self.keepalive_s, int) and not 1 <= self.keepalive_s <= 65535:
            out.append(("keepalive_s", f"must be 1..65535, got {self.keepalive_s}"))
        lo_ok = typed("reconnect_min_s", self.reconnect_min_s, float)
        if lo_ok and not (math.isfinite(self.reconnect_min_s) and self.reconnect_min_s > 0):
            out.append(("reconnect_min_s", f"must be > 0, got {self.reconnect_min_s}"))
            lo_ok = False
        if typed("reconnect_max_s", self.reconnect_max_s, float):
            if not math.isfinite(self.reconnect_max_s) or self.reconnect_max_s <= 0:
                out.append(("reconnect_max_s", f"must be > 0, got {self.reconnect_max_s}"))
            elif lo_ok and self.reconnect_max_s < self.reconnect_min_s:
                out.append(("reconnect_max_s", f"must be >= reconnect_min_s = {self.reconnect_min_s}, "
                                               f"got {self.reconnect_max_s}"))
        if typed("qos", self.qos, int) and self.qos not in (0, 1, 2):
            out.append(("qos", f"must be 0, 1 or 2, got {self.qos}"))
        return out

    def validate(self) -> None:
        """Raise ``ValueError("key: problem")`` for the first invalid value."""
        probs = self.problems()
        if probs:
            key, problem = probs[0]
            raise ValueError(f"{key}: {problem}")

    # ------------------------------------------------------------------ dict round trip
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MqttConfig":
        """Build and validate from a mapping (e.g. a parsed ``[mqtt]`` table); missing keys take
        their defaults, integers are accepted for the float keys.

        Raises:
            ValueError: ``"key: problem"`` for an unknown key or an invalid value, e.g.
                ``"port: must be 1..65535, got 0"``.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a table of MQTT settings, got {_type_name(d)}")
        known = [f.name for f in fields(cls) if f.init]
        for key in d:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"{key}: unknown key{hint}")
        values = dict(d)
        for f in fields(cls):
            if f.name in values and f.type in ("float", float):
                v = values[f.name]
                if isinstance(v, int) and not isinstance(v, bool):
                    values[f.name] = float(v)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """All fields (of a subclass too) as a plain dict; ``from_dict(to_dict())`` is equal."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

