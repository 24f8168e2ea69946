"""A full disk and a corrupt outbox, for real: ``microseis run`` as its own process, a real
broker (tests/broker.py), the outbox on disk.

The full disk is the kernel's file-size limit (RLIMIT_FSIZE, set on the running daemon with
``prlimit``): every write that would grow a file fails (EFBIG; SQLite reports ``disk I/O
error`` as for ENOSPC), exactly where a full card fails -- the outbox's WAL, the archive.
Raising the limit again is "space returns". Python ignores SIGXFSZ, so the writes fail
instead of killing the process.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.broker import Subscriber, TcpGate, broker  # noqa: F401
from tests.test_daemon import PREFIX, STATION, events, finish, outbox_ids, scenario, start_daemon, write_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
HEALTH = f"{PREFIX}/{STATION}/health"


def healths(sub: Subscriber) -> list[dict]:
    return [m.json() for m in sub.on(HEALTH)]


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_full_disk_publishes_every_end_live_and_writes_the_backlog_when_space_returns(broker, scenario, tmp_path):
    state = tmp_path / "state"
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    with TcpGate.to(broker) as gate, Subscriber.of(broker, f"{PREFIX}/{STATION}/#") as sub:
        # 10x real time: events end at about 4, 10 and 16 s of the replay
        cfg = write_config(tmp_path / "c.toml", state, [scenario], gate.port, speed=10.0)
        proc = start_daemon(cfg)
        try:
            assert sub.wait_for(lambda s: s.texts(f"{PREFIX}/{STATION}/availability")[-1:] == ["online"], 60)
            # the broker gets everything but never acknowledges: nothing leaves the outbox, so
            # what waits in memory must be written to the file once space returns
            gate.set("no_acks")
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, hard))  # the disk is full

            def full_with_two_ends(s: Subscriber) -> bool:
                ends = [m for m in events(s) if m["type"] == "end"]
                h = healths(s)
                return len(ends) >= 2 and bool(h) and h[-1].get("disk_full") is True \
                    and h[-1].get("outbox_backlog", 0) >= 2
            assert sub.wait_for(full_with_two_ends, 60), (healths(sub)[-1:], proc.poll())
            live = [m["id"] for m in events(sub) if m["type"] == "end"]
            assert outbox_ids(state) == []  # in memory only: the file could not take them
            h = healths(sub)[-1]
            assert abs(h["rss_mb"] - vm_rss_mb(proc.pid)) < max(10.0, 0.1 * h["rss_mb"])
            assert h["rss_peak_mb"] >= h["rss_mb"]

            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (hard, hard))  # space returns
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and outbox_ids(state)[:len(live)] != live:
                time.sleep(0.1)
            assert outbox_ids(state)[:len(live)] == live  # persisted, same order
            assert sub.wait_for(lambda s: healths(s)[-1].get("disk_full") is False
                                and healths(s)[-1].get("outbox_backlog") == 0, 30)
            # the network recovers too (a fresh connection: paho's window of unacknowledged
            # messages is full by now): what waits in the outbox goes again and is acknowledged
            gate.set("open", cut=True)
            rc, _, err = finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    ends = [m["id"] for m in events(sub) if m["type"] == "end"]
    first = list(dict.fromkeys(ends))  # a re-send after the reconnect may repeat an id
    assert len(first) == 3 and first == sorted(first) and first[:len(live)] == live, ends
    assert outbox_ids(state) == []  # all acknowledged in the end
    assert "keeping messages in memory" in err


def test_corrupt_outbox_is_moved_aside_and_the_station_runs(broker, scenario, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    garbage = b"this is not a SQLite database\n" * 200
    (state / "outbox.sqlite").write_bytes(garbage)
    cfg = write_config(tmp_path / "c.toml", state, [scenario], broker.port)
    with Subscriber.of(broker, f"{PREFIX}/{STATION}/events") as sub:
        rc, _, err = finish(start_daemon(cfg))
        assert rc == 0, err[-3000:]
        assert sub.wait_for(lambda s: sum(m["type"] == "end" for m in events(s)) >= 3, 10)
    aside = list(state.glob("outbox.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    assert "moved aside" in err and "Traceback" not in err
    assert outbox_ids(state) == []


_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from edge.comms.outbox import Outbox
    ob = Outbox(sys.argv[1], memory_limit=5)
    made_room = []
    ob.on_full = lambda: made_room.append(1)
    first = [ob.put("t", b"x" * 100, f"a{i}") for i in range(3)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # the disk is full
    ob.remove(first[0])  # acknowledged while full: remembered, no longer pending
    rows = [ob.put("t", b"y" * 100, f"b{i}") for i in range(7)]  # 7 > memory_limit 5
    full = {"disk_full": ob.disk_full, "backlog": ob.backlog, "dropped": ob.dropped,
            "depth": ob.depth(), "pending": [p.msg_id for p in ob.pending()],
            "pending2": [p.msg_id for p in ob.pending(limit=2)], "made_room": len(made_room),
            "again": ob.put("t", b"y", "b6") == rows[-1]}
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    ok = ob.retry()
    ob.close()
    ob2 = Outbox(sys.argv[1])
    print(json.dumps({"full": full, "retry": ok, "after": [p.msg_id for p in ob2.pending()],
                      "ids": [p.row_id for p in ob2.pending()][-5:] == rows[-5:]}))
""")


def test_outbox_memory_backlog_keeps_order_bounds_and_persists(tmp_path):
    """Outbox alone, in a subprocess whose file-size limit is the full disk."""
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "o.sqlite")], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    full = res["full"]
    assert full["disk_full"] is True and full["backlog"] == 5 and full["dropped"] == 2
    assert full["made_room"] == 1 and full["again"] is True
    assert full["pending"] == ["a1", "a2", "b2", "b3", "b4", "b5", "b6"] and full["depth"] == 7
    assert full["pending2"] == ["a1", "a2"]
    assert "dropped the oldest" in out.stderr
    assert res["retry"] is True and res["ids"] is True
    assert res["after"] == ["a1", "a2", "b2", "b3", "b4", "b5", "b6"]


def _disk_full() -> None:  # in the daemon's process, before exec: no file may grow
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_station_starts_and_publishes_on_a_disk_that_is_already_full(broker, scenario, tmp_path):
    """A restart on a full disk (the outbox cannot even be opened) must not exit 2 -- systemd
    would never restart it: the station runs from memory and says so in its health."""
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.toml", state, [scenario], broker.port)
    with Subscriber.of(broker, f"{PREFIX}/{STATION}/#") as sub:
        rc, _, err = finish(start_daemon(cfg, preexec_fn=_disk_full))
        assert rc == 0, err[-3000:]
        assert sub.wait_for(lambda s: sum(m["type"] == "end" for m in events(s)) >= 3, 10)
        assert sub.wait_for(lambda s: s.texts(f"{PREFIX}/{STATION}/availability")[-1:] == ["stopped"], 5)
    assert any(h.get("disk_full") is True for h in healths(sub))
    ends = [m["id"] for m in events(sub) if m["type"] == "end"]
    assert len(set(ends)) == 3 and "cannot open" in err and "Traceback" not in err
