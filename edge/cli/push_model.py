"""``microseis push-model``: sign a model bundle for each station with an operator key, push
it over MQTT and report each station's verdict.

For every ``--station`` the bundle goes out in an operator envelope (edge.comms.auth: station,
time, nonce, the bundle's sha256, signed with ``--key``) on ``{prefix}/{station}/model/push``;
the command then waits for the station's verdict on its retained ``{prefix}/{station}/model``
topic (``last_update`` naming this push) and prints one line per station::

    STATION   RESULT             DETAIL
    XX.S1     installed          microseis-cnn 2.0.0 (sha256 3f2a…)
    XX.S2     refused            version 1.0.0 is older than the installed 2.0.0 (...)
    XX.S3     no answer          no verdict within 60 s

Exit status: 0 when every station installed the bundle (or already runs it), 1 otherwise
(or when the broker cannot be reached), 2 for bad options.

``--retain`` publishes the push retained: a station that is offline now applies it when it
comes back (once: the station remembers applied pushes), until ``--expires`` hours after
signing (default 168). A station that answered has its retained push cleared.
``--downgrade`` first sends a signed ``downgrade`` command naming this bundle's sha256, which
lets each station install an *older* version once (stations refuse downgrades otherwise).

The operator key is an ed25519 key pair made with ``microseis keygen --out DIR --name
operator`` (workstation install); the stations trust its ``.pub`` in their ``[auth] keys_dir``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import queue
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.cli import CommandError
from edge.cli.listen import add_broker_options, broker_config, ssl_context
from edge.comms.auth import sign_command, sign_push
from edge.comms.tls import apply_broker_auth
from edge.model.format import MAX_BUNDLE_BYTES, BundleError
from edge.model.keys import load_private_key
from edge.model.verify import inspect_bundle

__all__ = ["register", "run"]



def _messages(events: queue.Queue, timeout: float, wanted: Callable[[], bool]) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) of the messages the client's callbacks queue, while ``wanted()`` and
    for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while wanted() and time.monotonic() < deadline:
        try:
            kind, item = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if kind == "message":
            yield item

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push-model", help="sign a model bundle, push it to stations, report their verdicts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="the signed model bundle (.msb)")
    p.add_argument("--station", action="append", required=True, metavar="NET.STA",
                   help="station to push to, repeatable or comma-separated")
    p.add_argument("--key", required=True, metavar="OPERATOR_KEY",
                   help="the operator's ed25519 private key (PEM, from microseis keygen)")
    add_broker_options(p, "push")
    p.add_argument("--retain", action="store_true",
                   help="publish retained: stations offline now apply it when they come back")
    p.add_argument("--expires", type=float, default=None, metavar="HOURS",
                   help="how long a retained push stays valid (168 h with --retain; without it the "
                        "station's clock window, 5 min)")
    p.add_argument("--downgrade", action="store_true",
                   help="first send a signed downgrade command allowing this (older) bundle once")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="wait at most S seconds for the stations' verdicts (60)")
    p.add_argument("--connect-timeout", type=float, default=5.0, metavar="S",
                   help="give up (exit 1) when the broker has not accepted within S seconds (5)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=run)


def _stations(values: list[str]) -> list[str]:
    items = [s.strip() for v in values for s in v.split(",") if s.strip()]
    if not items:
        raise CommandError("--station: give NET.STA")
    for s in items:
        if any(c in s for c in "/+#\0") or any(c.isspace() for c in s) or s.lower() == "all":
            raise CommandError(f"--station: must be one NET.STA (no '/', '+', '#', spaces or 'all'), got {s!r}")
    return list(dict.fromkeys(items))


def _positive(name: str, v: float | None) -> None:
    if v is not None and not (math.isfinite(v) and v > 0):
        raise CommandError(f"--{name} must be > 0")


def run(args: argparse.Namespace) -> int:
    stations = _stations(args.station)
    for name in ("timeout", "connect_timeout", "expires"):
        _positive(name.replace("_", "-"), getattr(args, name))
    cfg = broker_config(args)
    ctx = ssl_context(cfg)
    try:
        key = load_private_key(args.key)
    except ValueError as exc:
        raise CommandError(f"--key: {exc}") from None
    try:
        with open(args.bundle, "rb") as fh:
            bundle = fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"BUNDLE: cannot read {args.bundle}: {exc.strerror or exc}") from None
    try:
        info = inspect_bundle(bundle)
    except BundleError as exc:
        raise CommandError(f"BUNDLE: {args.bundle}: {exc}") from None
    sha = hashlib.sha256(bundle).hexdigest()
    what = f"{info['name']} {info['version']} (sha256 {sha[:12]}…)"
    hours = args.expires if args.expires is not None else (168.0 if args.retain else None)

    where = f"{cfg.host}:{cfg.port}"
    base = {s: f"{cfg.prefix}/{s}" for s in stations}
    events: queue.Queue = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=cfg.client_id or f"microseis-push-{uuid.uuid4().hex[:10]}",
                         clean_session=True, protocol=mqtt.MQTTv311)
    client.connect_timeout = args.connect_timeout
    apply_broker_auth(client, cfg, ctx)
    filters = [f"{b}/model" for b in base.values()]
    if args.downgrade:
        filters += [f"{b}/cmd/downgrade/response" for b in base.values()]
    client.on_connect = lambda c, u, f, reason, p: (
        c.subscribe([(t, 1) for t in filters]) if not reason.is_failure else None,
        events.put(("connect", reason)))
    client.on_subscribe = lambda c, u, mid, reasons, p: events.put(("subscribed", reasons))
    client.on_disconnect = lambda c, u, f, reason, p: events.put(("disconnect", reason))
    client.on_message = lambda c, u, msg: events.put(("message", (msg.topic, bytes(msg.payload))))
    try:
        client.connect(cfg.host, cfg.port, keepalive=30)
    except ssl.SSLError as exc:
        return _fail(f"cannot connect to {where}: TLS: {exc.reason or exc}")
    except (TimeoutError, OSError) as exc:
        return _fail(f"cannot connect to {where}: {exc.strerror or exc or type(exc).__name__}")
    client.loop_start()
    try:
        problem = _wait_subscribed(events, args.connect_timeout, where, filters)
        if problem:
            return _fail(problem)
        results: dict[str, dict[str, Any]] = {}
        pending = list(stations)
        if args.downgrade:
            pending = _allow_downgrade(client, events, key, stations, base, sha, info, args.timeout,
                                       results)
        nonces: dict[str, str] = {}
        now = time.time()
        for s in pending:
            nonce = uuid.uuid4().hex
            nonces[s] = nonce
            payload = sign_push(key, s, bundle, time=now, nonce=nonce,
                                expires=now + hours * 3600.0 if hours else None)
            client.publish(f"{base[s]}/model/push", payload, qos=1, retain=args.retain).wait_for_publish(
                args.timeout)
        for topic, payload in _messages(events, args.timeout, lambda: len(results) < len(stations)):
            s = next((s for s in pending if topic == f"{base[s]}/model"), None)
            if s is None or s in results:
                continue
            lu = _json(payload).get("last_update") or {}
            if not isinstance(lu, dict) or lu.get("push") != nonces[s]:
                continue  # the state from before this push
            result = lu.get("result") or ("installed" if lu.get("status") == "ok" else "refused")
            detail = what if result in ("installed", "already installed") else str(lu.get("message", ""))
            results[s] = {"result": result, "detail": detail}
            if args.retain:  # applied (or refused): nobody needs the retained copy any more
                client.publish(f"{base[s]}/model/push", b"", qos=1, retain=True)
        for s in stations:
            if s not in results:
                note = f"no verdict within {args.timeout:g} s"
                if args.retain:
                    note += f" (retained: applies when it comes online, for {hours:g} h)"
                results[s] = {"result": "no answer", "detail": note}
    finally:
        client.disconnect()
        client.loop_stop()
    ok = all(r["result"] in ("installed", "already installed") for r in results.values())
    if args.json:
        print(json.dumps({"bundle": {"path": args.bundle, "name": info["name"], "version": info["version"],
                                     "sha256": sha}, "broker": where, "ok": ok,
                          "stations": {s: results[s] for s in stations}}))
    else:
        width = max(8, *(len(s) for s in stations))
        print(f"{'STATION':<{width}}  {'RESULT':<17}  DETAIL")
        for s in stations:
            print(f"{s:<{width}}  {results[s]['result']:<17}  {results[s]['detail']}")
    return 0 if ok else 1


def _wait_subscribed(events: queue.Queue, timeout: float, where: str, filters: list[str]) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kind, item = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if kind == "connect" and item.is_failure:
            return f"cannot connect to {where}: broker refused the connection: {item}"
        if kind == "disconnect":
            return f"cannot connect to {where}: closed before the broker accepted ({item})"
        if kind == "subscribed":
            refused = [f for f, rc in zip(filters, item) if rc.is_failure]
            if refused:
                return f"the broker refused the subscription(s) {', '.join(refused)} (ACL?)"
            return None
    return f"cannot connect to {where}: no answer within {timeout:g} s"


def _allow_downgrade(client, events: queue.Queue, key, stations: list[str], base: dict[str, str],
                     sha: str, info: dict, timeout: float, results: dict) -> list[str]:
    """Send each station a signed ``downgrade`` naming the bundle; returns the stations that
    allowed it (the others get a result here)."""
    tx = {s: f"downgrade-{uuid.uuid4().hex[:12]}" for s in stations}
    for s in stations:
        payload = sign_command(key, s, "downgrade", transaction=tx[s],
                               args={"sha256": sha, "version": info["version"]})
        client.publish(f"{base[s]}/cmd/downgrade", payload, qos=1).wait_for_publish(timeout)
    allowed: list[str] = []
    for topic, payload in _messages(events, timeout, lambda: len(allowed) + len(results) < len(stations)):
        s = next((s for s in stations if topic == f"{base[s]}/cmd/downgrade/response"), None)
        resp = _json(payload)
        if s is None or resp.get("transaction") != tx[s] or s in allowed or s in results:
            continue
        if resp.get("status") == "ok":
            allowed.append(s)
        else:
            results[s] = {"result": "refused", "detail": f"downgrade: {resp.get('error')}"}
    for s in stations:
        if s not in allowed and s not in results:
            results[s] = {"result": "no answer", "detail": f"no answer to the downgrade command within {timeout:g} s"}
    return allowed


def _json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _fail(text: str) -> int:
    print(f"microseis push-model: error: {text}", file=sys.stderr, flush=True)
    return 1
