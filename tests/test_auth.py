"""Operator-signed command and push envelopes (edge.comms.auth): what a station accepts, what it
refuses and with which reason, and that its replay memory survives a restart (a real file)."""
from __future__ import annotations

import hashlib
import json
import struct
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.comms.auth import (
    PUSH_MAGIC,
    Authenticator,
    AuthError,
    canonical_json,
    sign_command,
    sign_push,
    transaction_of,
)
from edge.model.format import DEFAULT_BUNDLE
from edge.model.keys import key_id

STATION = "XX.S1"
T0 = time.time()  # the station's (test) clock starts now; envelopes default to now


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def op():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def auth(op, clock, tmp_path):
    return Authenticator(STATION, [op.public_key()], tmp_path / "replay.json", clock=clock)


def refused(fn, *a, code: str | None = None, match: str = "") -> AuthError:
    with pytest.raises(AuthError) as ei:
        fn(*a)
    if code is not None:
        assert ei.value.code == code, ei.value
    assert match in str(ei.value), ei.value
    return ei.value


def test_signed_command_accepted_with_its_fields(op, auth):
    cmd = auth.command("rollback", sign_command(op, STATION, "rollback", transaction="t1", time=T0 - 20))
    assert (cmd.command, cmd.transaction, cmd.args, cmd.key_id) == ("rollback", "t1", {}, key_id(op.public_key()))
    assert cmd.time == pytest.approx(T0 - 20)


@pytest.mark.parametrize("payload, code, match", [
    (b"not json at all {{{", "malformed", "not JSON"),
    (b"[1,2,3]", "malformed", "JSON object"),
    (b'{"transaction": "t9"}', "unsigned", "unsigned"),
    (b"\xff\xfe", "malformed", "not UTF-8"),
    (b'{"a": 1, "a": 2}', "malformed", "duplicate key"),
    (b'{"x": NaN}', "malformed", "not JSON"),
    (b"[" * 100000, "too_large", "more than"),
])
def test_garbage_and_unsigned_refused(auth, payload, code, match):
    err = refused(auth.command, "rollback", payload, code=code, match=match)
    if code == "unsigned":
        assert err.transaction == "t9"


def test_tampered_wrong_key_wrong_station_wrong_topic(op, auth):
    good = json.loads(sign_command(op, STATION, "rollback", transaction="t"))
    bad = dict(good, transaction="t2")
    refused(auth.command, "rollback", canonical_json(bad), code="bad_signature")
    other = Ed25519PrivateKey.generate()
    refused(auth.command, "rollback", sign_command(other, STATION, "rollback"), code="untrusted_key")
    refused(auth.command, "rollback", sign_command(op, "XX.S2", "rollback"), code="wrong_station",
            match="'XX.S2'")
    # a signed health request replayed on cmd/rollback
    refused(auth.command, "rollback", sign_command(op, STATION, "health"), match="cmd/rollback")
    refused(auth.command, "selfdestruct", sign_command(op, STATION, "selfdestruct"), code="unknown_command")
    refused(auth.command, "rollback", canonical_json(dict(good, extra=1)), match="unknown field(s) extra")


def test_stale_and_future_refused(op, auth):
    refused(auth.command, "health", sign_command(op, STATION, "health", time=T0 - 301), code="stale")
    refused(auth.command, "health", sign_command(op, STATION, "health", time=T0 + 301), code="stale")
    auth.command("health", sign_command(op, STATION, "health", time=T0 + 299))


def test_replay_refused_also_after_a_restart(op, auth, clock, tmp_path):
    p = sign_command(op, STATION, "reload", transaction=5)
    auth.command("reload", p)
    err = refused(auth.command, "reload", p, code="replay", match="already used")
    assert err.transaction == 5
    again = Authenticator(STATION, [op.public_key()], tmp_path / "replay.json", clock=clock)
    refused(again.command, "reload", p, code="replay")
    # a fresh nonce is fine
    again.command("reload", sign_command(op, STATION, "reload"))


def test_unreadable_replay_memory_refuses_older_envelopes(op, clock, tmp_path):
    path = tmp_path / "replay.json"
    path.write_text("{ not json")
    auth = Authenticator(STATION, [op.public_key()], path, clock=clock)
    refused(auth.command, "health", sign_command(op, STATION, "health", time=T0 - 10), code="replay")
    auth.command("health", sign_command(op, STATION, "health", time=T0 + 1))
    assert json.loads(path.read_text())["commands"]


def test_args_checked_per_command(op, auth):
    sha = "ab" * 32
    cmd = auth.command("downgrade", sign_command(op, STATION, "downgrade", args={"sha256": sha, "version": "1.0.0"}))
    assert cmd.args == {"sha256": sha, "version": "1.0.0"}
    refused(auth.command, "downgrade", sign_command(op, STATION, "downgrade", args={}), code="bad_args",
            match="sha256 is missing")
    refused(auth.command, "downgrade", sign_command(op, STATION, "downgrade", args={"sha256": "x"}),
            code="bad_args")
    refused(auth.command, "rollback", sign_command(op, STATION, "rollback", args={"to": "x"}), code="bad_args")


def test_transaction_types(op, auth):
    refused(auth.command, "health", json.dumps({"transaction": {"a": 1}}).encode(), match="transaction")
    assert transaction_of(b'{"transaction": "abc"}') == "abc"
    assert transaction_of(b"[1]") is None and transaction_of(b"{{{") is None


def test_allow_unsigned_keeps_the_old_behaviour_but_not_garbage(op, clock):
    auth = Authenticator(STATION, [], None, allow_unsigned=True, clock=clock)
    assert auth.command("rollback", b'{"transaction": "t1"}').transaction == "t1"
    refused(auth.command, "rollback", b"[1,2,3]", code="malformed")
    refused(auth.command, "rollback", b'{"bogus": 1}', code="malformed")
    assert auth.push(b"PK\x03\x04rest").key_id is None


# --------------------------------------------------------------------------- pushes

BUNDLE = DEFAULT_BUNDLE.read_bytes()


def test_push_round_trip(op, auth):
    p = auth.push(sign_push(op, STATION, BUNDLE, time=T0 - 5))
    assert p.bundle == BUNDLE and p.sha256 == hashlib.sha256(BUNDLE).hexdigest() and p.size == len(BUNDLE)


def test_push_refusals(op, auth, clock):
    refused(auth.push, BUNDLE, code="unsigned")
    env = sign_push(op, STATION, BUNDLE)
    refused(auth.push, env + b"x", code="bad_bundle")  # appended byte: size differs
    swapped = bytearray(env)
    swapped[-10] ^= 1
    refused(auth.push, bytes(swapped), code="bad_bundle", match="signed sha256")
    refused(auth.push, sign_push(op, "XX.S2", BUNDLE), code="wrong_station")
    refused(auth.push, sign_push(Ed25519PrivateKey.generate(), STATION, BUNDLE), code="untrusted_key")
    refused(auth.push, sign_push(op, STATION, BUNDLE, time=T0 - 400), code="stale", match="expired")
    refused(auth.push, env[:10], code="malformed")
    refused(auth.push, PUSH_MAGIC + struct.pack(">I", 10**6), code="too_large")
    small = Authenticator(STATION, [op.public_key()], None, clock=clock, max_bundle_bytes=1000)
    refused(small.push, sign_push(op, STATION, BUNDLE), code="too_large")
    # header edited (size field) after signing
    n = len(PUSH_MAGIC)
    (hlen,) = struct.unpack(">I", env[n:n + 4])
    hdr = json.loads(env[n + 4:n + 4 + hlen])
    hdr["expires"] = "2099-01-01T00:00:00Z"
    raw = canonical_json(hdr)
    refused(auth.push, PUSH_MAGIC + struct.pack(">I", len(raw)) + raw + BUNDLE, code="bad_signature")


def test_retained_push_applies_once_and_only_if_newer(op, auth, clock, tmp_path):
    # retained for an offline station: valid for a day
    env = sign_push(op, STATION, BUNDLE, time=T0, expires=T0 + 86400)
    clock.t = T0 + 3600  # the station comes online an hour later
    auth.push(env)
    refused(auth.push, env, code="replay", match="already applied")
    restarted = Authenticator(STATION, [op.public_key()], tmp_path / "replay.json", clock=clock)
    refused(restarted.push, env, code="replay")
    older = sign_push(op, STATION, BUNDLE, time=T0 - 60, expires=T0 + 86400)
    refused(restarted.push, older, code="replay", match="not newer")
    restarted.push(sign_push(op, STATION, BUNDLE, time=clock.t))
    refused(restarted.push, sign_push(op, STATION, BUNDLE, time=T0, expires=T0 + 40 * 86400),
            match="more than 30")
