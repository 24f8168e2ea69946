"""Operator-signed envelopes: who may command a station or push it a model.

Anyone who can publish to the broker reaches ``{prefix}/{station}/cmd/#`` and
``{prefix}/{station}/model/push``; the broker's ACL (``systemd/mosquitto/``) is the first
fence, this module the second: a station executes a command or installs a pushed bundle only
when an **operator key** it trusts signed it, for this station, recently, and only once.

Command (``cmd/{name}``), UTF-8 JSON, at most :data:`MAX_COMMAND_BYTES`::

    {"station": "XX.S1", "command": "rollback", "time": "2026-05-01T12:00:03.125000Z",
     "nonce": "<16..64 lower-case hex>", "transaction": "t-17" | 17 | null,
     "args": {...}, "key_id": "<16 hex>", "signature": "<base64, 64 bytes>"}

Model push (``model/push``), binary::

    b"MSPUSH1\\0" | header length (4 bytes, big-endian) | header (canonical JSON) | bundle bytes
    header = {"station", "time", "nonce", "sha256" (of the bundle bytes), "size" (bytes),
              "expires" (ISO UTC, optional), "key_id", "signature"}

The signature is ed25519 over a context line plus the canonical JSON (sorted keys, no spaces,
UTF-8; :func:`canonical_json`) of every field except ``signature``: ``b"microseis-command/1\\n"``
for commands, ``b"microseis-push/1\\n"`` for pushes, so one can never be passed off as the other.
A push's signature covers the bundle's sha256 and size, so it covers the bundle.

A station accepts a command when, in this order: the payload is small enough, JSON, an object
with exactly the fields above and the right types (duplicate keys refused); the command is one
of :data:`COMMANDS` and equals the topic's ``{name}``, its ``args`` fit it; ``key_id`` is a
trusted operator key and the signature is valid; ``station`` is this station; ``time`` is
within ``window_s`` (default 300 s) of the station's clock; the nonce was not seen before.
A push additionally needs ``now <= expires`` (default ``time + window_s``, at most
:data:`MAX_PUSH_LIFETIME_S` after ``time``: a retained push for a station that is offline now)
and a ``time`` later than the last accepted push's (a retained push is applied once; an older
one is never applied after a newer one).

Replay memory (:class:`ReplayGuard`) is a small JSON file in the state directory, written
atomically after every accepted envelope, so a restart does not reopen the window. It is
bounded: nonces leave it once their envelope is too old to pass the time check anyway; when it
is full the oldest are dropped and anything not newer than them is refused.

Keys: the same ed25519 public-key files as bundle signing keys (``microseis keygen``'s
``.pub``, :func:`edge.model.keys.load_trusted_keys`), in a separate directory: an operator key
authorises *sending* a bundle, the bundle itself must still be signed by a model key.

This module imports cryptography but neither paho nor obspy.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import struct
import threading
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.comms.messages import iso_utc
from edge.model.format import MAX_BUNDLE_BYTES
from edge.model.keys import KeyLike, key_id, load_trusted_keys

__all__ = [
    "COMMANDS", "COMMAND_CONTEXT", "PUSH_CONTEXT", "PUSH_MAGIC", "MAX_COMMAND_BYTES",
    "MAX_PUSH_HEADER_BYTES", "DEFAULT_WINDOW_S", "MAX_PUSH_LIFETIME_S", "REPLAY_FILE",
    "AuthError", "Command", "Push", "ReplayGuard", "Authenticator", "canonical_json",
    "sign_command", "sign_push", "transaction_of", "push_nonce_of",
]

log = logging.getLogger(__name__)

#: Commands a station knows, and the ``args`` each takes (name -> {arg: required}).
COMMANDS: dict[str, dict[str, bool]] = {
    "health": {},
    "rollback": {},
    "reload": {},
    "downgrade": {"sha256": True, "version": False},
}
COMMAND_CONTEXT = b"microseis-command/1\n"
PUSH_CONTEXT = b"microseis-push/1\n"
PUSH_MAGIC = b"MSPUSH1\x00"
#: Largest command payload, bytes.
MAX_COMMAND_BYTES = 64 * 1024
#: Largest push header (the JSON between the length and the bundle), bytes.
MAX_PUSH_HEADER_BYTES = 4096
#: Default clock window (s): an envelope signed longer ago (or later) than this is stale.
DEFAULT_WINDOW_S = 300.0
#: Longest a push may stay valid (``expires - time``, s): 30 days.
MAX_PUSH_LIFETIME_S = 30 * 86400.0
#: The replay memory's file name in the state directory.
REPLAY_FILE = "auth-replay.json"
#: Most command nonces remembered (at 5 commands/s the 300 s window needs 1500).
MAX_NONCES = 4096
#: Most push nonces remembered.
MAX_PUSH_NONCES = 256

_COMMAND_FIELDS = ("station", "command", "time", "nonce", "transaction", "args", "key_id", "signature")
_PUSH_FIELDS = ("station", "time", "nonce", "sha256", "size", "expires", "key_id", "signature")
_PUSH_OPTIONAL = ("expires",)
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|\+00:00)$")
_NONCE = re.compile(r"^[0-9a-f]{16,64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_TX_CHARS = 128


class AuthError(ValueError):
    """An envelope the station must not act on. ``str(err)`` is the one-line reason (it goes
    into the ``error`` of the response); :attr:`code` a short category (``too_large``,
    ``malformed``, ``unknown_command``, ``bad_args``, ``unsigned``, ``untrusted_key``,
    ``bad_signature``, ``wrong_station``, ``stale``, ``replay``, ``bad_bundle``);
    :attr:`transaction` the request's transaction id when it could be read (else None)."""

    def __init__(self, reason: str, code: str = "malformed", transaction: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.transaction = transaction


# --------------------------------------------------------------------------- encoding


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, UTF-8, no NaN/inf."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dupes, parse_constant=_no_constant)


def _parse_time(v: Any, what: str) -> float:
    """ISO 8601 UTC -> POSIX seconds."""
    if not isinstance(v, str) or not _TIME.match(v):
        raise AuthError(f"{what} must be an ISO 8601 UTC time like 2026-05-01T12:00:03Z, got "
                        f"{_short(v)}", "malformed")
    text = v.replace("Z", "+00:00")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python 3.10 reads at most microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise AuthError(f"{what}: {exc}", "malformed") from None


def _short(v: Any, n: int = 40) -> str:
    try:
        text = json.dumps(v)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= n else text[: n - 1] + "…"


def _new_nonce() -> str:
    return secrets.token_hex(16)


def _sign(private_key: Ed25519PrivateKey, context: bytes, fields: dict[str, Any]) -> dict[str, Any]:
    fields = dict(fields)
    fields["key_id"] = key_id(private_key.public_key())
    fields["signature"] = base64.b64encode(private_key.sign(context + canonical_json(fields))).decode("ascii")
    return fields


def sign_command(private_key: Ed25519PrivateKey, station: str, command: str, *,
                 args: Mapping[str, Any] | None = None, transaction: Any = None,
                 time: float | None = None, nonce: str | None = None) -> bytes:
    """The signed payload of ``command`` for ``station`` (publish it on
    ``{prefix}/{station}/cmd/{command}``). ``time``: POSIX seconds (default now); ``nonce``:
    default 32 random hex digits."""
    env = {"station": station, "command": command,
           "time": iso_utc(_time.time() if time is None else time),
           "nonce": nonce or _new_nonce(), "transaction": transaction, "args": dict(args or {})}
    return canonical_json(_sign(private_key, COMMAND_CONTEXT, env))


def sign_push(private_key: Ed25519PrivateKey, station: str, bundle: bytes, *,
              time: float | None = None, nonce: str | None = None,
              expires: float | None = None) -> bytes:
    """The push payload (envelope + ``bundle``) for ``station`` (publish it on
    ``{prefix}/{station}/model/push``). ``expires``: POSIX seconds until which the station
    may still apply it (a retained push for an offline station; default ``time`` + the
    station's window)."""
    t = _time.time() if time is None else time
    hdr: dict[str, Any] = {"station": station, "time": iso_utc(t), "nonce": nonce or _new_nonce(),
                           "sha256": hashlib.sha256(bundle).hexdigest(), "size": len(bundle)}
    if expires is not None:
        hdr["expires"] = iso_utc(expires)
    header = canonical_json(_sign(private_key, PUSH_CONTEXT, hdr))
    return PUSH_MAGIC + struct.pack(">I", len(header)) + header + bytes(bundle)


def transaction_of(payload: bytes) -> Any:
    """The ``transaction`` of a command payload when it is a small JSON object carrying a
    scalar one (for the response to a refused request), else None."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None
    try:
        obj = _loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    tx = obj.get("transaction") if isinstance(obj, dict) else None
    return tx if _tx_ok(tx) else None


def push_nonce_of(payload: bytes) -> str | None:
    """The ``nonce`` of a push envelope's header when it can be read (unverified: only to let
    the sender match the station's verdict to its push), else None."""
    n = len(PUSH_MAGIC)
    if not payload.startswith(PUSH_MAGIC) or len(payload) < n + 4:
        return None
    (hlen,) = struct.unpack(">I", payload[n:n + 4])
    if hlen > MAX_PUSH_HEADER_BYTES:
        return None
    try:
        hdr = _loads(payload[n + 4:n + 4 + hlen])
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    nonce = hdr.get("nonce") if isinstance(hdr, dict) else None
    return nonce if isinstance(nonce, str) and _NONCE.match(nonce) else None


def _tx_ok(tx: Any) -> bool:
    if tx is None or isinstance(tx, str) and len(tx) <= _MAX_TX_CHARS:
        return True
    return isinstance(tx, int) and not isinstance(tx, bool) and abs(tx) < 2 ** 53


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Command:
    """An accepted command. ``time``: POSIX s; ``key_id``: the operator key (None: unsigned,
    only with ``allow_unsigned``)."""

    station: str
    command: str
    time: float
    nonce: str | None
    transaction: Any
    args: dict[str, Any]
    key_id: str | None


@dataclass(frozen=True)
class Push:
    """An accepted push: the envelope's fields and the bundle's bytes (not yet verified as a
    bundle: that is :func:`edge.model.install.install_bundle`'s job)."""

    station: str
    time: float
    nonce: str | None
    sha256: str
    size: int
    expires: float
    key_id: str | None
    bundle: bytes = field(repr=False)


# --------------------------------------------------------------------------- replay memory


class ReplayGuard:
    """Nonces seen, persisted in ``path`` (JSON) so a restart does not reopen the window.

    Commands: a nonce is remembered until its envelope is older than ``window_s`` (then the
    time check refuses it anyway); beyond :data:`MAX_NONCES` the oldest are dropped and
    ``floor`` rises to their time: nothing signed at or before ``floor`` is accepted.
    Pushes: each nonce until it expires (at most :data:`MAX_PUSH_NONCES`), and the time of the
    newest accepted push: a push must be newer.

    An unreadable file is replaced, with ``floor`` = now (refuse everything signed before
    this start rather than risk a replay).
    """

    def __init__(self, path: str | os.PathLike | None, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = _time.time) -> None:
        self.path = Path(path) if path is not None else None
        self.window_s = float(window_s)
        self.clock = clock
        self.floor = 0.0
        self.commands: dict[str, float] = {}
        self.pushes: dict[str, float] = {}  # nonce -> expiry
        self.last_push = 0.0
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
            floor = float(d.get("floor", 0.0))
            cmds = {str(k): float(v) for k, v in dict(d.get("commands", {})).items()}
            pushes = {str(k): float(v) for k, v in dict(d.get("pushes", {})).items()}
            last_push = float(d.get("last_push", 0.0))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("auth: replay memory %s unreadable (%s): refusing anything signed before now",
                        self.path, exc)
            self.floor = self.clock()
            return
        self.floor, self.commands, self.pushes, self.last_push = floor, cmds, pushes, last_push

    def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"format": 1, "floor": self.floor, "last_push": self.last_push,
                           "commands": self.commands, "pushes": self.pushes}, sort_keys=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("auth: cannot write the replay memory %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def check_command(self, nonce: str, t: float, tx: Any = None) -> None:
        """Raise :class:`AuthError` (``replay``) if ``nonce`` was seen or ``t`` is at or below
        the floor; else remember it."""
        with self._lock:
            now = self.clock()
            if nonce in self.commands:
                raise AuthError(f"replayed command: nonce {nonce} was already used", "replay", tx)
            if t <= self.floor:
                raise AuthError(f"command signed at {iso_utc(t)}, not after {iso_utc(self.floor)} "
                                "(older than the station's replay memory)", "replay", tx)
            self.commands = {n: ts for n, ts in self.commands.items() if ts >= now - self.window_s}
            self.commands[nonce] = t
            if len(self.commands) > MAX_NONCES:
                drop = sorted(self.commands.items(), key=lambda kv: kv[1])[: len(self.commands) - MAX_NONCES]
                for n, ts in drop:
                    del self.commands[n]
                    self.floor = max(self.floor, ts)
            self._save()

    def check_push(self, nonce: str, t: float, expires: float) -> None:
        """Raise :class:`AuthError` (``replay``) for a push seen before, or not newer than the
        last accepted one; else remember it."""
        with self._lock:
            now = self.clock()
            if nonce in self.pushes:
                raise AuthError(f"push {nonce} was already applied", "replay")
            if t <= self.last_push:
                raise AuthError(f"push signed at {iso_utc(t)} is not newer than the last accepted "
                                f"push ({iso_utc(self.last_push)})", "replay")
            self.pushes = {n: e for n, e in self.pushes.items() if e >= now}
            self.pushes[nonce] = expires
            if len(self.pushes) > MAX_PUSH_NONCES:
                for n, _ in sorted(self.pushes.items(), key=lambda kv: kv[1])[: len(self.pushes) - MAX_PUSH_NONCES]:
                    del self.pushes[n]
            self.last_push = t
            self._save()


# --------------------------------------------------------------------------- verifier


class Authenticator:
    """Checks command and push envelopes for one station.

    Args:
        station: this station's id (``NET.STA``).
        trusted_keys: operator public keys: a ``{key id: key}`` mapping, or keys / ``.pub``
            files / directories of them (:func:`edge.model.keys.load_trusted_keys`). None or
            empty: every signed envelope is refused (``untrusted_key``).
        replay_path: the replay memory file (normally ``{state dir}/auth-replay.json``);
            None keeps it in memory only (tests).
        window_s: accepted clock difference (s) between the signer and the station.
        allow_unsigned: accept commands without the envelope fields (a JSON object, at most
            ``transaction`` and ``args``) and raw bundles as pushes -- the behaviour before
            operator keys, for a closed test network only.
        max_bundle_bytes: largest bundle a push may carry.
        clock: POSIX time source (tests).
    """

    def __init__(self, station: str, trusted_keys: Mapping[str, Ed25519PublicKey] | Iterable[KeyLike] | None,
                 replay_path: str | os.PathLike | None = None, *, window_s: float = DEFAULT_WINDOW_S,
                 allow_unsigned: bool = False, max_bundle_bytes: int = MAX_BUNDLE_BYTES,
                 clock: Callable[[], float] = _time.time) -> None:
        if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s: must be > 0 seconds, got {window_s!r}")
        self.station = station
        if trusted_keys is None:
            self.keys: dict[str, Ed25519PublicKey] = {}
        elif isinstance(trusted_keys, Mapping):
            self.keys = dict(trusted_keys)
        else:
            self.keys = load_trusted_keys(trusted_keys)
        self.window_s = float(window_s)
        self.allow_unsigned = bool(allow_unsigned)
        self.max_bundle_bytes = int(max_bundle_bytes)
        self.clock = clock
        self.replay = ReplayGuard(replay_path, self.window_s, clock)

    # ------------------------------------------------------------------ commands
    def command(self, name: str, payload: bytes) -> Command:
        """The accepted command on topic ``cmd/{name}``; :class:`AuthError` says why not."""
        payload = bytes(payload)
        if len(payload) > MAX_COMMAND_BYTES:
            raise AuthError(f"command payload is {len(payload)} bytes, more than {MAX_COMMAND_BYTES}",
                            "too_large")
        try:
            obj = _loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise AuthError(f"command payload is not JSON ({_reason(exc)})", "malformed") from None
        if not isinstance(obj, dict):
            raise AuthError(f"command payload must be a JSON object, got {type(obj).__name__}", "malformed")
        tx = obj.get("transaction")
        if not _tx_ok(tx):
            raise AuthError(f"transaction must be a string of at most {_MAX_TX_CHARS} characters, an "
                            f"integer or null, got {_short(tx)}", "malformed")
        if name not in COMMANDS:
            raise AuthError(f"unknown command {name!r} (known: {', '.join(COMMANDS)})", "unknown_command", tx)
        if self.allow_unsigned and "signature" not in obj:
            extra = sorted(set(obj) - {"transaction", "args"})
            if extra:
                raise AuthError(f"unknown field(s) {', '.join(extra)}", "malformed", tx)
            args = self._args(name, obj.get("args", {}), tx)
            return Command(self.station, name, self.clock(), None, tx, args, None)
        if "signature" not in obj:
            raise AuthError("unsigned command (this station takes only commands signed by an operator "
                            "key; see docs/deployment.md)", "unsigned", tx)
        unknown = sorted(set(obj) - set(_COMMAND_FIELDS))
        missing = [k for k in _COMMAND_FIELDS if k not in obj]
        if unknown or missing:
            raise AuthError("command envelope: " + "; ".join(
                ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing field(s) {', '.join(missing)}"] if missing else [])), "malformed", tx)
        for k in ("station", "command", "nonce", "key_id", "signature"):
            if not isinstance(obj[k], str):
                raise AuthError(f"{k} must be a string, got {_short(obj[k])}", "malformed", tx)
        if obj["command"] != name:
            raise AuthError(f"envelope is for command {obj['command']!r}, published on cmd/{name}",
                            "malformed", tx)
        args = self._args(name, obj["args"], tx)
        t = _parse_time(obj["time"], "time")
        nonce = self._nonce(obj["nonce"], tx)
        kid = self._check_signature(COMMAND_CONTEXT, obj, tx)
        self._check_station(obj["station"], tx)
        now = self.clock()
        if abs(now - t) > self.window_s:
            raise AuthError(self._stale(t, now), "stale", tx)
        self.replay.check_command(nonce, t, tx)
        return Command(self.station, name, t, nonce, tx, args, kid)

    def _args(self, name: str, args: Any, tx: Any) -> dict[str, Any]:
        if not isinstance(args, dict):
            raise AuthError(f"args must be an object, got {_short(args)}", "bad_args", tx)
        spec = COMMANDS[name]
        unknown = sorted(set(args) - set(spec))
        if unknown:
            raise AuthError(f"{name}: unknown argument(s) {', '.join(unknown)}"
                            + (f" (takes {', '.join(spec)})" if spec else " (takes none)"), "bad_args", tx)
        for k, required in spec.items():
            if required and k not in args:
                raise AuthError(f"{name}: argument {k} is missing", "bad_args", tx)
        if name == "downgrade":
            if not isinstance(args["sha256"], str) or not _HEX64.match(args["sha256"]):
                raise AuthError("downgrade: sha256 must be the bundle's sha256 (64 lower-case hex digits)",
                                "bad_args", tx)
            if "version" in args and not (isinstance(args["version"], str) and 0 < len(args["version"]) <= 64):
                raise AuthError("downgrade: version must be a version string", "bad_args", tx)
        return dict(args)

    # ------------------------------------------------------------------ pushes
    def push(self, payload: bytes) -> Push:
        """The accepted push; :class:`AuthError` says why not (``replay``: a push applied
        before, e.g. the retained one again after a restart)."""
        payload = bytes(payload)
        if not payload.startswith(PUSH_MAGIC):
            if self.allow_unsigned and payload.startswith(b"PK"):
                if len(payload) > self.max_bundle_bytes:
                    raise AuthError(f"bundle is {len(payload)} bytes, more than {self.max_bundle_bytes}",
                                    "too_large")
                now = self.clock()
                return Push(self.station, now, None, hashlib.sha256(payload).hexdigest(), len(payload),
                            now + self.window_s, None, payload)
            raise AuthError("unsigned push (expected an operator envelope, made by microseis "
                            "push-model; see docs/deployment.md)", "unsigned")
        n = len(PUSH_MAGIC)
        if len(payload) < n + 4:
            raise AuthError("push envelope is truncated", "malformed")
        (hlen,) = struct.unpack(">I", payload[n:n + 4])
        if hlen > MAX_PUSH_HEADER_BYTES:
            raise AuthError(f"push header is {hlen} bytes, more than {MAX_PUSH_HEADER_BYTES}", "too_large")
        raw = payload[n + 4:n + 4 + hlen]
        if len(raw) != hlen:
            raise AuthError("push envelope is truncated (header)", "malformed")
        bundle = payload[n + 4 + hlen:]
        try:
            hdr = _loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise AuthError(f"push header is not JSON ({_reason(exc)})", "malformed") from None
        if not isinstance(hdr, dict):
            raise AuthError("push header must be a JSON object", "malformed")
        unknown = sorted(set(hdr) - set(_PUSH_FIELDS))
        missing = [k for k in _PUSH_FIELDS if k not in hdr and k not in _PUSH_OPTIONAL]
        if unknown or missing:
            raise AuthError("push header: " + "; ".join(
                ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing field(s) {', '.join(missing)}"] if missing else [])), "malformed")
        for k in ("station", "nonce", "sha256", "key_id", "signature"):
            if not isinstance(hdr[k], str):
                raise AuthError(f"push header: {k} must be a string", "malformed")
        size = hdr["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise AuthError(f"push header: size must be a byte count, got {_short(size)}", "malformed")
        if size > self.max_bundle_bytes:
            raise AuthError(f"bundle is {size} bytes, more than {self.max_bundle_bytes}", "too_large")
        if not _HEX64.match(hdr["sha256"]):
            raise AuthError("push header: sha256 must be 64 lower-case hex digits", "malformed")
        t = _parse_time(hdr["time"], "push header: time")
        expires = _parse_time(hdr["expires"], "push header: expires") if "expires" in hdr else t + self.window_s
        nonce = self._nonce(hdr["nonce"], None)
        kid = self._check_signature(PUSH_CONTEXT, hdr, None)
        self._check_station(hdr["station"], None)
        if len(bundle) != size:
            raise AuthError(f"bundle is {len(bundle)} bytes, the envelope says {size}", "bad_bundle")
        if hashlib.sha256(bundle).hexdigest() != hdr["sha256"]:
            raise AuthError("bundle bytes differ from the signed sha256 (tampered in transit)", "bad_bundle")
        now = self.clock()
        if t - now > self.window_s:
            raise AuthError(self._stale(t, now), "stale")
        if expires - t > MAX_PUSH_LIFETIME_S:
            raise AuthError(f"push valid for {(expires - t) / 86400:.1f} days, more than "
                            f"{MAX_PUSH_LIFETIME_S / 86400:g}", "malformed")
        if now > expires:
            raise AuthError(f"push expired at {iso_utc(expires)} (signed {iso_utc(t)}, station clock "
                            f"{iso_utc(now)})", "stale")
        self.replay.check_push(nonce, t, expires)
        return Push(self.station, t, nonce, hdr["sha256"], size, expires, kid, bundle)

    # ------------------------------------------------------------------ shared checks
    def _nonce(self, v: str, tx: Any) -> str:
        if not _NONCE.match(v):
            raise AuthError("nonce must be 16 to 64 lower-case hex digits", "malformed", tx)
        return v

    def _check_signature(self, context: bytes, obj: Mapping[str, Any], tx: Any) -> str:
        kid = obj["key_id"]
        if not _KEY_ID.match(kid):
            raise AuthError("key_id must be 16 lower-case hex digits", "malformed", tx)
        if kid not in self.keys:
            trusted = ", ".join(sorted(self.keys)) or "none configured ([auth] keys_dir)"
            raise AuthError(f"signed by untrusted key {kid} (trusted operator keys: {trusted})",
                            "untrusted_key", tx)
        try:
            sig = base64.b64decode(obj["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise AuthError("signature is not base64", "malformed", tx) from None
        if len(sig) != 64:
            raise AuthError(f"an ed25519 signature is 64 bytes, got {len(sig)}", "malformed", tx)
        body = {k: v for k, v in obj.items() if k != "signature"}
        try:
            self.keys[kid].verify(sig, context + canonical_json(body))
        except (InvalidSignature, ValueError):
            raise AuthError(f"signature invalid (not signed by key {kid}, or altered)", "bad_signature",
                            tx) from None
        return kid

    def _check_station(self, station: str, tx: Any) -> None:
        if station != self.station:
            raise AuthError(f"envelope is for station {station!r}, this is {self.station!r}",
                            "wrong_station", tx)

    def _stale(self, t: float, now: float) -> str:
        return (f"stale: signed {iso_utc(t)}, station clock {iso_utc(now)} (differ by "
                f"{abs(now - t):.0f} s, more than the {self.window_s:g} s window)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0][:80]
