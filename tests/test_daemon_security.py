"""Who commands the station, end to end: ``microseis run`` as its own process reading the
virtual digitizer through a real pty, a real broker (tests/broker.py), operator keys in
``[auth] keys_dir``, ``microseis push-model`` as its own process.

* unsigned, replayed, stale, wrong-station and garbage commands are answered ``error`` and
  never executed; a 200-command flood is rate-limited and runs off the sample path: no gap,
  the watchdog keeps being fed;
* pushes: installed; an older version refused, then allowed once by a signed downgrade; the
  same model again "already installed"; a re-wrapped bundle (appended bytes) refused; a station
  that is not there: no answer, exit 1; a retained push is applied once, not again at restart.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.comms.auth import sign_command, sign_push
from edge.model.container import read_entries
from edge.model.format import DEFAULT_BUNDLE
from edge.model.keys import KEYS_DIR, key_id
from export.bundle_writer import manifest_bytes, zip_entries
from export.signing import signature_file
from tests.broker import Subscriber, broker  # noqa: F401
from tests.test_daemon import PREFIX, REPO, STATION, finish, write_config

BASE = f"{PREFIX}/{STATION}"


def write_key(key: Ed25519PrivateKey, folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    priv, pub = folder / f"{name}.key", folder / f"{name}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def resigned(model_key: Ed25519PrivateKey, version: str, out: Path) -> Path:
    """The shipped model with another version, signed by ``model_key``: a real, runnable
    bundle with its own identity."""
    e = read_entries(DEFAULT_BUNDLE.read_bytes())
    m = json.loads(e["manifest.json"])
    m["version"], m["signer"] = version, key_id(model_key.public_key())
    e["manifest.json"] = manifest_bytes(m)
    e["signature.json"] = signature_file(e["manifest.json"], model_key)
    out.write_bytes(zip_entries(e))
    return out


@pytest.fixture
def station(broker, tmp_path):  # noqa: F811
    """A station config (simulated digitizer, real time) trusting an operator key and, for
    bundles, the project key and a test model key."""
    op, model = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    write_key(op, tmp_path / "operators", "operator")
    _, model_pub = write_key(model, tmp_path / "modelkeys", "model")
    op_key = tmp_path / "operator.key"  # the private half stays with the operator
    (tmp_path / "operators" / "operator.key").rename(op_key)
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.toml", state, [], broker.port, extra=f"""
[auth]
keys_dir = "{tmp_path / 'operators'}"
""")
    text = cfg.read_text().replace('kind = "replay"', 'kind = "simulate"').replace("speed = 0.0", "speed = 1.0")
    text = text.replace("[mqtt]", f"[model]\ntrusted_keys = {json.dumps([str(KEYS_DIR), str(model_pub)])}\n\n[mqtt]")
    cfg.write_text(text)
    return {"cfg": cfg, "op": op, "op_key": op_key, "model": model, "state": state, "dir": tmp_path}


def start(cfg: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    rc, _, err = finish(proc, timeout=60)
    assert rc == 0, err[-3000:]
    return err


def responses(sub: Subscriber, name: str) -> list[dict]:
    return sub.json(f"{BASE}/cmd/{name}/response")


def last_update(sub: Subscriber) -> dict:
    m = sub.last(f"{BASE}/model")
    return (m.json().get("last_update") or {}) if m else {}


def test_commands_only_from_the_owner_and_a_flood_leaves_no_gap(broker, station):  # noqa: F811
    op = station["op"]
    sock_path = str(station["dir"] / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.05)
    pings: list[float] = []

    def drain() -> None:
        while True:
            try:
                if b"WATCHDOG=1" in sock.recv(4096):
                    pings.append(time.monotonic())
            except TimeoutError:
                return

    with Subscriber.of(broker, f"{BASE}/#") as sub:
        proc = start(station["cfg"], {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000"})
        try:
            assert sub.wait_text(f"{BASE}/availability", "online", 30), proc.stderr
            signed_health = sign_command(op, STATION, "health", transaction="h1")
            for name, payload in [
                ("rollback", b"not json at all {{{"), ("reload", b"[1,2,3]"),
                ("rollback", json.dumps({"transaction": "u1"}).encode()),
                ("health", sign_command(op, STATION, "health", transaction="stale", time=time.time() - 1000)),
                ("health", sign_command(op, "XX.OTHER", "health", transaction="elsewhere")),
                ("rollback", sign_command(Ed25519PrivateKey.generate(), STATION, "rollback", transaction="stranger")),
                ("health", signed_health), ("health", signed_health),
            ]:
                sub.publish(f"{BASE}/cmd/{name}", payload)
            assert sub.wait_for(lambda s: len(responses(s, "rollback")) == 3 and len(responses(s, "reload")) == 1
                                and len(responses(s, "health")) == 4, 20)
            rb, rl, h = responses(sub, "rollback"), responses(sub, "reload"), responses(sub, "health")
            assert rb[0]["transaction"] is None and "not JSON" in rb[0]["error"]
            assert rl[0]["transaction"] is None and "JSON object" in rl[0]["error"]
            assert rb[1]["transaction"] == "u1" and "unsigned" in rb[1]["error"]
            assert rb[2]["transaction"] == "stranger" and "untrusted key" in rb[2]["error"]
            by_tx = {r["transaction"]: r for r in h}
            assert "stale" in by_tx["stale"]["error"] and "XX.OTHER" in by_tx["elsewhere"]["error"]
            assert [r["status"] for r in h if r["transaction"] == "h1"] == ["ok", "error"]
            assert "replayed" in [r for r in h if r["transaction"] == "h1"][1]["error"]
            # nothing ran: no rollback was tried (that would say "no previous model")
            assert all(r["status"] == "error" and r["error"].startswith("refused") for r in rb + rl)
            assert last_update(sub).get("message") == "started"

            # the flood: 200 signed requests at once
            drain()
            n0 = len(pings)
            for i in range(200):
                sub.client.publish(f"{BASE}/cmd/health", sign_command(op, STATION, "health", transaction=i), qos=1)
            assert sub.wait_for(lambda s: len([r for r in responses(s, "health")
                                               if isinstance(r["transaction"], int)]) == 200, 60)
            flood = [r for r in responses(sub, "health") if isinstance(r["transaction"], int)]
            ok = [r for r in flood if r["status"] == "ok"]
            limited = [r for r in flood if r["status"] == "error"]
            # at most the burst (10, partly spent above) plus 5/s while the flood lasted
            assert 0 < len(ok) <= 40 and len(limited) >= 160, (len(ok), len(limited))
            assert all("rate limited" in r["error"] for r in limited)
            t_end = time.monotonic() + 3  # keep sampling the watchdog for a moment
            while time.monotonic() < t_end:
                drain()
            sub.publish(f"{BASE}/cmd/health", sign_command(op, STATION, "health", transaction="after"))
            assert sub.wait_for(lambda s: any(r["transaction"] == "after" for r in responses(s, "health")), 20)
            after = next(r for r in responses(sub, "health") if r["transaction"] == "after")["data"]
            assert after["gaps"] == 0 and after["crc_errors"] == 0, after
            assert after["samples_per_s"] > 0
            during = pings[n0:]
            assert len(during) >= 3 and max(b - a for a, b in zip(during, during[1:])) < 1.6, during
        finally:
            stop(proc)
            sock.close()


def push_model(station: dict, broker, bundle: Path, *stations: str, extra: tuple = ()) -> tuple[int, dict]:  # noqa: F811
    args = [sys.executable, "-m", "edge", "push-model", str(bundle), "--key", str(station["op_key"]),
            "--host", broker.host, "--port", str(broker.port), "--json", "--timeout", "30", *extra]
    for s in stations or (STATION,):
        args += ["--station", s]
    res = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.stdout.strip(), res.stderr
    return res.returncode, json.loads(res.stdout.strip().splitlines()[-1])


def test_push_model_anti_rollback_and_retained_pushes(broker, station):  # noqa: F811
    d, model = station["dir"], station["model"]
    v2 = resigned(model, "2.0.0", d / "v2.msb")
    v1 = resigned(model, "1.0.0", d / "v1.msb")
    rewrapped = d / "v2-rewrapped.msb"
    rewrapped.write_bytes(v2.read_bytes() + b"\x00trailer")
    with Subscriber.of(broker, f"{BASE}/#") as sub:
        proc = start(station["cfg"])
        try:
            assert sub.wait_text(f"{BASE}/availability", "online", 30)
            rc, out = push_model(station, broker, v2)
            assert rc == 0 and out["stations"][STATION]["result"] == "installed", out
            assert sub.last(f"{BASE}/model").json()["version"] == "2.0.0"
            rc, out = push_model(station, broker, v1)  # older: refused with the reason
            assert rc == 1 and out["stations"][STATION]["result"] == "refused", out
            assert "older than the installed 2.0.0" in out["stations"][STATION]["detail"]
            # push-model checks the bundle first (exit 2); signed and pushed anyway, the station refuses it
            res = subprocess.run([sys.executable, "-m", "edge", "push-model", str(rewrapped), "--station", STATION,
                                  "--key", str(station["op_key"]), "--port", str(broker.port)],
                                 capture_output=True, text=True, cwd=REPO, timeout=60)
            assert res.returncode == 2 and "not a canonical bundle" in res.stderr, res.stderr
            sub.publish(f"{BASE}/model/push", sign_push(station["op"], STATION, rewrapped.read_bytes(),
                                                        nonce="ab" * 16))
            assert sub.wait_for(lambda s: last_update(s).get("push") == "ab" * 16, 30)
            assert last_update(sub)["result"] == "refused"
            assert "not a canonical bundle: 8 byte(s) after the end" in last_update(sub)["message"]
            rc, out = push_model(station, broker, v1, extra=("--downgrade",))  # allowed once
            assert rc == 0 and out["stations"][STATION]["result"] == "installed", out
            assert sub.last(f"{BASE}/model").json()["version"] == "1.0.0"
            rc, out = push_model(station, broker, v1)
            assert rc == 0 and out["stations"][STATION]["result"] == "already installed", out
            models = sorted(p.name for p in (station["state"] / "models").iterdir() if not p.name.startswith("."))
            assert len([m for m in models if m.endswith(tuple("0123456789abcdef"))]) == 2  # 2.0.0 kept for rollback
            rc, out = push_model(station, broker, v2, STATION, "XX.GONE", extra=("--timeout", "5"))
            assert rc == 1 and out["stations"]["XX.GONE"]["result"] == "no answer", out
            assert out["stations"][STATION]["result"] == "installed"
            # a retained push, applied once
            nonce = "c0ffee" * 6
            payload = sign_push(station["op"], STATION, v1.read_bytes(), nonce=nonce, expires=time.time() + 3600)
            sub.publish(f"{BASE}/model/push", payload, retain=True)
            assert sub.wait_for(lambda s: last_update(s).get("push") == nonce, 30)
            assert "older than the installed" in last_update(sub)["message"]  # v2 runs: refused, once
        finally:
            stop(proc)
        sub.clear()
        proc = start(station["cfg"])  # the retained push is still on the broker
        try:
            assert sub.wait_text(f"{BASE}/availability", "online", 30)
            # the station handles requests in order: once this answer is here, it has seen the push
            sub.publish(f"{BASE}/cmd/health", sign_command(station["op"], STATION, "health", transaction="sync"))
            assert sub.wait_for(lambda s: len(responses(s, "health")) == 1, 30)
            assert sub.wait_for(lambda s: s.last(f"{BASE}/model") is not None, 10)
            assert last_update(sub).get("push") != nonce and sub.last(f"{BASE}/model").json()["version"] == "2.0.0"
        finally:
            err = stop(proc)
        assert "already applied" in err
