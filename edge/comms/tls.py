"""TLS and credentials for the broker connection: the :class:`ssl.SSLContext` of an
:class:`MqttConfig`, and both set on a paho client."""
from __future__ import annotations

import os
import ssl

from edge.comms.mqtt_settings import MqttConfig

__all__ = ["tls_context", "apply_broker_auth"]


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context for ``cfg`` (None when no ``tls_*`` file is set): verifies the broker
    with ``tls_ca`` (else the system's CAs), presents ``tls_cert``/``tls_key`` for mutual TLS,
    skips the host-name check with ``tls_insecure``. Raises ValueError naming the key."""
    if not (cfg.tls_ca or cfg.tls_cert or cfg.tls_key):
        return None
    for key in ("tls_ca", "tls_cert", "tls_key"):
        path = getattr(cfg, key)
        if path and not os.path.isfile(path):
            raise ValueError(f"{key}: no such file {path}")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.tls_ca or None)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"tls_ca: cannot load {cfg.tls_ca}: {exc}") from None
    if cfg.tls_cert:
        try:
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key or None)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"tls_cert: cannot load {cfg.tls_cert} / {cfg.tls_key}: {exc}") from None
    if cfg.tls_insecure:
        ctx.check_hostname = False
    return ctx


def apply_broker_auth(client, cfg: MqttConfig, ctx: ssl.SSLContext | None) -> None:
    """Set ``cfg``'s user name and password and the TLS context ``ctx`` (from
    :func:`tls_context`; ``tls_insecure`` skips the host-name check) on a paho ``client``."""
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if ctx is not None:
        client.tls_set_context(ctx)
        if cfg.tls_insecure:
            client.tls_insecure_set(True)
