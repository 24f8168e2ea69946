"""A real MQTT broker process on a free 127.0.0.1 port: Mosquitto when it is installed
(``mosquitto`` on ``PATH`` or in ``/usr/sbin``; persistence off, anonymous), otherwise an
embedded amqtt broker (a dependency of the ``edge`` extra) in a subprocess.

``microseis demo`` starts one when no broker is configured; the tests and benchmarks use the
same class (``tests/broker.py``) to stop a broker mid-run (``stop()`` is SIGKILL: "the broker
vanishes") and bring it back on the *same* port (``restart()``). ``MICROSEIS_TEST_BROKER=amqtt``
(or ``mosquitto``) chooses the kind. Never the system broker on 1883.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["Broker", "free_port", "find_mosquitto", "port_open", "HOST"]

HOST = "127.0.0.1"

_AMQTT_SCRIPT = r"""
import asyncio, logging, sys
logging.basicConfig(level=logging.WARNING)
from amqtt.broker import Broker

async def main(port):
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    """Path of the ``mosquitto`` binary (PATH, then /usr/sbin and /usr/local/sbin) or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for cand in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"):
        if os.access(cand, os.X_OK):
            return cand
    return None


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Broker:
    """A broker process on ``host:port``.

    Args:
        port: the port (default: a free one, kept across :meth:`restart`).
        kind: ``"mosquitto"`` or ``"amqtt"``; default ``$MICROSEIS_TEST_BROKER``, else mosquitto
            when installed, else amqtt.
        workdir: folder for the config file and the log (default: a temporary folder).
        conf_extra: more Mosquitto configuration lines (TLS files, ``password_file``,
            ``allow_anonymous false``, ...); Mosquitto only.
    """

    def __init__(self, port: int | None = None, kind: str | None = None,
                 workdir: str | os.PathLike[str] | None = None, conf_extra: str = "") -> None:
        self.host = HOST
        self.port = port or free_port()
        kind = kind or os.environ.get("MICROSEIS_TEST_BROKER") or None
        self.mosquitto = find_mosquitto() if kind in (None, "mosquitto") else None
        if kind == "mosquitto" and self.mosquitto is None:
            raise RuntimeError("MICROSEIS_TEST_BROKER=mosquitto but no mosquitto binary found")
        self.kind = "mosquitto" if self.mosquitto else "amqtt"
        if conf_extra and self.kind != "mosquitto":
            raise RuntimeError("conf_extra needs mosquitto")
        self.conf_extra = conf_extra
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="mqtt-broker-")
        self.workdir = Path(workdir) if workdir else Path(self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"broker-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self.workdir / f"mosquitto-{self.port}.conf"
            extra = self.conf_extra.strip() + "\n" if self.conf_extra else ""
            conf.write_text(
                f"listener {self.port} {self.host}\n"
                + extra + ("" if "allow_anonymous" in extra else "allow_anonymous true\n") +
                "persistence false\n"
                # started as root, mosquitto would drop to user "mosquitto", who cannot read the
                # test's (private) temporary folders
                + ("user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else "") +
                "log_dest stderr\n"
                "log_type error\nlog_type warning\nlog_type notice\n"
                "max_queued_messages 100000\n")
            return [str(self.mosquitto), "-c", str(conf)]
        return [sys.executable, "-c", _AMQTT_SCRIPT, str(self.port)]

    def start(self, timeout: float = 10.0) -> Broker:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return self
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} broker on port {self.port} exited with "
                                   f"{self.proc.returncode}: {self.log_tail()}")
            if port_open(self.host, self.port):
                self.starts += 1
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.kind} broker on port {self.port} not up within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """Kill the broker (SIGKILL): connections drop at once, retained messages are lost."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    kill = stop

    def restart(self, down_s: float = 0.0, timeout: float = 10.0) -> Broker:
        """Kill, wait ``down_s`` seconds, start again on the same port."""
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        return self.start(timeout)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Broker({self.kind}, {self.host}:{self.port}, {'up' if self.running else 'down'})"
