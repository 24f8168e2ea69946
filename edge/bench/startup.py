"""Cold start of the station: ``microseis run`` in a fresh process on a short replay (MQTT
off, archive off), timed from process start to its systemd ``READY=1`` (model verified,
self-tested and loaded, the source open), and its peak resident memory after it has
classified the replay to its end: the largest ``VmHWM`` of ``/proc/<pid>/status`` read while
it runs (every 20-50 ms; VmHWM only grows). Not ``wait4``'s ``ru_maxrss``: Linux carries that
across ``execve`` from the forking process, so it reports this (larger) benchmark process
whenever the child stays smaller (it did: 160.9 MB for a 96 MB station)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cold_start"]


def _vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set (kB) of a running process, or None (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _replay_file(folder: Path, seconds: float) -> Path:
    from obspy import Stream, Trace, UTCDateTime

    rng = np.random.default_rng(0)
    n = int(250 * seconds)
    st = Stream([Trace(np.round(rng.normal(0, 200, n)).astype(np.int32),
                       header={"network": "XX", "station": "BENCH", "channel": ch, "sampling_rate": 250.0,
                               "starttime": UTCDateTime(2026, 1, 1)})
                 for ch in ("HHZ", "HHN", "HHE")])
    path = folder / "bench.mseed"
    st.write(str(path), format="MSEED")
    return path


def _config(folder: Path, replay: Path, bundle: str | None) -> Path:
    path = folder / "bench.toml"
    model = f'[model]\nbundle = "{bundle}"\n' if bundle else ""
    path.write_text(f"""[station]
id = "XX.BENCH"
channels = ["HHZ", "HHN", "HHE"]

[source]
kind = "replay"
files = ["{replay}"]
speed = 0.0

[mqtt]
enabled = false

[archive]
enabled = false

[state]
dir = "{folder / 'state'}"
{model}""")
    return path


def cold_start(bundle: str | None = None, replay_s: float = 30.0, timeout_s: float = 120.0) -> dict[str, Any]:
    """``{"ready_s", "exit_s", "peak_rss_mb", "replay_s", "exit_status"}``; ``ready_s`` is None
    when the process never said READY=1 (``error`` says why)."""
    with tempfile.TemporaryDirectory(prefix="microseis-bench-") as tmp:
        folder = Path(tmp)
        cfg = _config(folder, _replay_file(folder, replay_s), bundle)
        sock_path = folder / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), PYTHONDONTWRITEBYTECODE="1")
        env.pop("WATCHDOG_USEC", None)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "edge", "--log-level", "WARNING", "run", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        err: list[bytes] = []  # read stderr all along, so a chatty process never blocks on the pipe
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        ready, status, usage, hwm_kb = None, None, None, 0
        sock.settimeout(0.05)
        deadline = t0 + timeout_s
        try:
            while time.perf_counter() < deadline:
                if ready is None:
                    try:
                        if "READY=1" in sock.recv(4096).decode("utf-8", "replace").split("\n"):
                            ready = time.perf_counter() - t0
                    except TimeoutError:
                        pass
                else:
                    time.sleep(0.02)
                hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid) or 0)
                pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    status, usage = os.waitstatus_to_exitcode(st), ru
                    break
            exit_s = time.perf_counter() - t0
            if status is None:  # past the timeout
                proc.kill()
                _, st, usage = os.wait4(proc.pid, 0)
                status = os.waitstatus_to_exitcode(st)
            proc.returncode = status  # reaped by wait4: Popen must not wait again
            reader.join(2.0)
        finally:
            sock.close()
    out: dict[str, Any] = {"ready_s": round(ready, 3) if ready is not None else None,
                           "exit_s": round(exit_s, 3), "peak_rss_mb": round((hwm_kb or usage.ru_maxrss) / 1024.0, 1),
                           "replay_s": replay_s, "exit_status": status}
    if ready is None or status != 0:
        lines = b"".join(err).decode("utf-8", "replace").strip().splitlines()
        out["error"] = lines[-1] if lines else f"exit status {status}"
    return out
