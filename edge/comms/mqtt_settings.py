"""``[mqtt]``: the broker connection settings (:class:`MqttConfig`, a msgspec Struct declared
on :mod:`edge.schema`) and their checks."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge.schema import Invalid, convert, show, validate

__all__ = ["MqttConfig"]

PATH = {"path": True}  # Meta extra: a file, relative to the station configuration file
U16 = Annotated[int, Meta(ge=1, le=65535)]  # 1..65535, as MQTT encodes ports and keepalives


class MqttConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The broker connection (``[mqtt]`` of the station configuration).

    Constructing it checks the values' relations and forms (host, prefix, TLS files);
    :meth:`from_dict` and :meth:`validate` also check types and bounds. Errors name the key,
    e.g. ``"port: must be within [1, 65535], got 0"``. :class:`~edge.comms.mqtt_link.MqttLink`
    refuses a ``password`` without ``username``.
    """

    host: Annotated[str, Meta(description="broker host name or address")] = "localhost"
    port: Annotated[U16, Meta(description="broker TCP port (1883; 8883 for TLS)")] = 1883
    prefix: Annotated[str, Meta(description="topic prefix: topics are {prefix}/{station.id}/...")] = "microseis"
    client_id: Annotated[str | None, Meta(description="MQTT client id, unique per station; unset = "
                                                         "microseis-{station.id}",
                                             examples=["microseis-XX.S1"])] = None
    username: Annotated[str | None, Meta(description="broker user name; unset = anonymous",
                                            examples=["station"])] = None
    password: Annotated[str | None, Meta(description="broker password; prefer password_file so the "
                                                        "secret stays out of the configuration file",
                                            examples=["secret"])] = None
    tls_ca: Annotated[str | None, Meta(description="CA certificate (PEM) to verify the broker; any "
                                                      "tls_* file turns TLS on (without tls_ca the "
                                                      "system CAs verify the broker)",
                                          examples=["/etc/microseis/ca.pem"], extra=PATH)] = None
    tls_cert: Annotated[str | None, Meta(description="client certificate (PEM) for mutual TLS",
                                            examples=["/etc/microseis/station.crt"], extra=PATH)] = None
    tls_key: Annotated[str | None, Meta(description="client private key (PEM) for mutual TLS (with "
                                                       "tls_cert)",
                                           examples=["/etc/microseis/station.key"], extra=PATH)] = None
    tls_insecure: Annotated[bool, Meta(description="skip the broker host-name check (testing only)")] = False
    keepalive_s: Annotated[U16, Meta(description="MQTT keepalive (s); the broker publishes the Last "
                                                  "Will after 1.5 x this without traffic")] = 30
    reconnect_min_s: Annotated[float, Meta(gt=0, description="first reconnect delay, doubled after each "
                                                             "failure (s)")] = 0.5
    reconnect_max_s: Annotated[float, Meta(gt=0, description="longest reconnect delay (s)")] = 30.0
    qos: Annotated[Literal[0, 1, 2], Meta(description="QoS of event messages (0, 1 or 2); end messages "
                                                      "use at least 1")] = 1

    def __post_init__(self) -> None:
        p = self.prefix
        Invalid.check([
            ("host", f"must be a host name or address, got {show(self.host)}")
            if isinstance(self.host, str) and (not self.host.strip() or any(c.isspace() for c in self.host))
            else None,
            ("prefix", "must be one or more non-empty topic levels without a leading or trailing '/', "
                       f"got {show(p)}") if isinstance(p, str) and (
                not p or p.startswith("/") or p.endswith("/") or "//" in p) else
            ("prefix", f"must not contain the wildcards '+' or '#', got {show(p)}")
            if isinstance(p, str) and any(c in p for c in "+#\0") else None,
            ("client_id", f"must be 1..65535 bytes or unset, got {show(self.client_id)}")
            if isinstance(self.client_id, str) and not 1 <= len(self.client_id.encode("utf-8")) <= 65535
            else None,
            *((key, "must be a file path or unset, got an empty string")
              for key in ("tls_ca", "tls_cert", "tls_key") if getattr(self, key) == ""),
            ("tls_key", "needs tls_cert (mutual TLS takes a certificate and its key)")
            if self.tls_key and not self.tls_cert else None,
            ("reconnect_max_s", f"must be >= reconnect_min_s = {show(self.reconnect_min_s)}, "
                                f"got {show(self.reconnect_max_s)}")
            if _numbers(self.reconnect_min_s, self.reconnect_max_s)
            and self.reconnect_max_s < self.reconnect_min_s else None,
        ])

    def validate(self) -> None:
        """Check types and bounds too; raises :class:`edge.schema.ConfigError` (a ValueError),
        one line per problem, each ``"key: problem"``."""
        validate(self)

    # ------------------------------------------------------------------ dict round trip
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MqttConfig:
        """Build and validate from a mapping (e.g. a parsed ``[mqtt]`` table); missing keys take
        their defaults, integers are accepted for the float keys. Raises
        :class:`edge.schema.ConfigError` (a ValueError): ``"key: problem"`` for an unknown key
        or an invalid value, e.g. ``"port: must be within [1, 65535], got 0"``."""
        return convert(d, cls)

    def to_dict(self) -> dict[str, Any]:
        """All fields (of a subclass too) as a plain dict; ``from_dict(to_dict())`` is equal."""
        return msgspec.to_builtins(self)


def _numbers(*vs: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs)
