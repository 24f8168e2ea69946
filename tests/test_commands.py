"""The command desk (edge.station.commands): authentication before execution, the token bucket,
answers for every refused request, and a caller (the MQTT network thread) that never waits for
a handler."""
from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.comms.auth import Authenticator, sign_command, sign_push
from edge.station.commands import CommandDesk, CommandRefused, TokenBucket

STATION = "XX.S1"


class Replies:
    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.pushes: list[dict] = []
        self.cond = threading.Condition()

    def respond(self, name, tx, status, data=None, error=None):
        with self.cond:
            self.items.append((name, tx, status, data, error))
            self.cond.notify_all()

    def report(self, result):
        with self.cond:
            self.pushes.append(result)
            self.cond.notify_all()

    def wait(self, pred, timeout=10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)


@pytest.fixture
def op():
    return Ed25519PrivateKey.generate()


def desk_for(op, replies, ran, tmp_path, **kw):
    auth = Authenticator(STATION, [op.public_key()], tmp_path / "replay.json")

    def slow_rollback(cmd):
        time.sleep(0.05)  # like loading a model
        ran.append(cmd.transaction)
        return {"model": "x"}

    def refuse(cmd):
        raise CommandRefused("nothing to roll back to")

    return CommandDesk(auth, {"rollback": slow_rollback, "health": lambda c: {"ok": 1}, "reload": refuse},
                       lambda p: {"status": "ok", "result": "installed", "message": "m"},
                       replies.respond, replies.report, **kw).start()


def test_token_bucket():
    t = [0.0]
    b = TokenBucket(5, 10, clock=lambda: t[0])
    assert sum(b.take() for _ in range(20)) == 10
    t[0] += 1.0
    assert sum(b.take() for _ in range(20)) == 5


def test_refused_requests_are_answered_and_never_run(op, tmp_path):
    replies, ran = Replies(), []
    desk = desk_for(op, replies, ran, tmp_path)
    try:
        signed = sign_command(op, STATION, "rollback", transaction="ok1")
        for name, payload in [("rollback", b"not json at all {{{"), ("reload", b"[1,2,3]"),
                              ("rollback", b'{"transaction": "u1"}'), ("rollback", signed), ("rollback", signed),
                              ("reload", sign_command(op, STATION, "reload", transaction="r1"))]:
            desk.on_command(name, payload)
        assert replies.wait(lambda r: len(r.items) == 6)
        assert ran == ["ok1"]  # only the signed rollback, once
        errors = [i for i in replies.items if i[2] == "error"]
        assert [(i[0], i[1]) for i in errors] == [("rollback", None), ("reload", None), ("rollback", "u1"),
                                                  ("rollback", "ok1"), ("reload", "r1")]
        assert "not JSON" in errors[0][4] and "JSON object" in errors[1][4] and "unsigned" in errors[2][4]
        assert "replayed" in errors[3][4] and "nothing to roll back" in errors[4][4]
        assert [i for i in replies.items if i[2] == "ok"] == [("rollback", "ok1", "ok", {"model": "x"}, None)]
    finally:
        desk.stop()


def test_a_flood_is_rate_limited_and_the_caller_never_waits(op, tmp_path):
    replies, ran = Replies(), []
    desk = desk_for(op, replies, ran, tmp_path, rate=5, burst=10)
    try:
        payloads = [sign_command(op, STATION, "rollback", transaction=i) for i in range(200)]
        t0 = time.perf_counter()
        for p in payloads:
            desk.on_command("rollback", p)
        spent = time.perf_counter() - t0
        assert replies.wait(lambda r: len(r.items) == 200, 30)
        ok = [i for i in replies.items if i[2] == "ok"]
        limited = [i for i in replies.items if i[2] == "error" and "rate limited" in i[4]]
        # 10 from the burst, plus what refilled while 200 requests were queued
        assert 10 <= len(ok) <= 10 + 5 * spent + 1 and len(ok) + len(limited) == 200
        assert sorted(ran) == sorted(i[1] for i in ok)
        # the caller only queued: 200 calls took far less than one handler run (50 ms) each
        assert spent < 200 * 0.05 / 10, spent
        assert desk.counts["rate_limited"] == len(limited)
    finally:
        desk.stop()


def test_pushes_report_verdicts_and_retained_replays_are_silent(op, tmp_path):
    replies, ran = Replies(), []
    desk = desk_for(op, replies, ran, tmp_path)
    try:
        env = sign_push(op, STATION, b"PK\x03\x04bundle", nonce="ab" * 16)
        desk.on_push(env, retained=True)
        assert replies.wait(lambda r: len(r.pushes) == 1)
        assert replies.pushes[0]["push"] == "ab" * 16 and replies.pushes[0]["result"] == "installed"
        desk.on_push(env, retained=True)  # the retained copy again (reconnect, restart): ignored
        desk.on_push(b"", retained=True)  # a cleared retained push: ignored
        desk.on_push(env, retained=False)  # replayed live: refused, with a verdict
        assert replies.wait(lambda r: len(r.pushes) == 2)
        assert replies.pushes[1]["result"] == "refused" and "already applied" in replies.pushes[1]["message"]
        assert replies.pushes[1]["push"] == "ab" * 16
        desk.on_push(b"PK\x03\x04 an unsigned bundle")
        assert replies.wait(lambda r: len(r.pushes) == 3)
        assert "unsigned push" in replies.pushes[2]["message"] and replies.pushes[2]["push"] is None
    finally:
        desk.stop()
