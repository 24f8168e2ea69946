"""systemd notification protocol (``sd_notify(3)``) without libsystemd: READY, WATCHDOG,
STATUS and STOPPING datagrams to ``$NOTIFY_SOCKET``. A no-op when not run by systemd."""
from __future__ import annotations

import os
import socket
import time

__all__ = ["Notifier"]


class Notifier:
    """Talks to systemd when ``$NOTIFY_SOCKET`` is set (``Type=notify`` units).

    ``watchdog_interval_s``: how often :meth:`watchdog` actually pings -- half of
    ``$WATCHDOG_USEC`` (systemd's advice), None when no watchdog is configured.
    """

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        addr = env.get("NOTIFY_SOCKET") or None
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract socket namespace
        self.address = addr
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        ok = usec and usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 2e6 if ok else None
        self._last_ping = 0.0
        self.sent: list[str] = []  # what was sent (for status and tests)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send one state string (e.g. ``"READY=1"``); False when there is no systemd."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(self.address)
                s.sendall(state.encode())
        except OSError:
            return False
        self.sent.append(state)
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog if half its interval has passed (call it from the main loop:
        a stuck loop stops the pings and systemd restarts the service)."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_interval_s:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")
