"""Reads the digitizer's serial port with pyserial and never gives up.

When the device disappears (USB unplugged, cable cut, pty closed) the reader reports it,
flushes the decoder (a half-received frame is counted as truncated, never delivered) and
retries with exponential back-off until the device is back; then it resumes. The samples
the digitizer produced meanwhile never arrive, so the decoder reports the outage as a gap
in ``sample_index``.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from firmware_bridge.decoder import FrameDecoder, Message

log = logging.getLogger(__name__)


@dataclass
class SerialSettings:
    """Serial port and retry settings (times in seconds)."""

    port: str
    baudrate: int = 921600
    #: longest a single read waits for bytes
    read_timeout_s: float = 0.1
    retry_initial_s: float = 0.25
    retry_max_s: float = 2.0
    #: lock the port so that a second reader gets a clear "busy" error instead of half the bytes
    exclusive: bool = True
    #: while a connected port sends nothing, yield an "idle" LinkEvent this often (s), so that
    #: the consumer's loop still turns (a daemon feeds its watchdog there); None = never
    idle_event_s: float | None = None


@dataclass
class LinkEvent:
    """Something that happened to the serial link (not to the data)."""

    kind: str  # "connected", "disconnected", "open_failed", "idle" (connected, no bytes)
    port: str
    time: float  # time.time() when it happened
    message: str = ""
    #: seconds until the next attempt (open_failed) or the outage length (connected after one)
    seconds: float = 0.0


@dataclass
class ReaderStats:
    connects: int = 0
    disconnects: int = 0
    open_failures: int = 0
    bytes_read: int = 0
    #: (start, end) wall-clock times (time.time()) of outages that have ended
    outages: list[tuple[float, float]] = field(default_factory=list)


Item = Message | LinkEvent


class SerialReader:
    """Yields decoded messages and link events from a serial port, reconnecting forever."""

    def __init__(self, settings: SerialSettings, decoder: FrameDecoder | None = None) -> None:
        self.settings = settings
        self.decoder = decoder or FrameDecoder()
        self.stats = ReaderStats()
        self._stop = threading.Event()
        self._serial = None

    def stop(self) -> None:
        """Ask :meth:`items` to return (from another thread or a signal handler)."""
        self._stop.set()

    def _open(self):
        import serial

        s = self.settings
        return serial.Serial(s.port, s.baudrate, timeout=s.read_timeout_s,
                             exclusive=s.exclusive or None)

    def items(self, duration_s: float | None = None) -> Iterator[Item]:
        """Messages and :class:`LinkEvent` s until ``duration_s`` passes or :meth:`stop`."""
        import serial

        deadline = None if duration_s is None else time.monotonic() + duration_s
        backoff = self.settings.retry_initial_s
        down_since: float | None = None
        port = self.settings.port

        def time_left() -> float:
            return float("inf") if deadline is None else deadline - time.monotonic()

        while not self._stop.is_set() and time_left() > 0:
            try:
                ser = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                self.stats.open_failures += 1
                if down_since is None:
                    down_since = time.time()
                wait = min(backoff, max(time_left(), 0.0))
                msg = f"cannot open {port}: {_os_error_text(exc)}; retrying in {backoff:.2f} s"
                log.warning(msg)
                yield LinkEvent("open_failed", port, time.time(), msg, backoff)
                if self._stop.wait(wait):
                    break
                backoff = min(backoff * 2, self.settings.retry_max_s)
                continue
            self._serial = ser
            backoff = self.settings.retry_initial_s
            self.stats.connects += 1
            outage = 0.0
            if down_since is not None:
                outage = time.time() - down_since
                self.stats.outages.append((down_since, time.time()))
                down_since = None
            log.info("connected to %s", port)
            yield LinkEvent("connected", port, time.time(),
                            f"connected to {port}" + (f" after {outage:.1f} s down" if outage else ""),
                            outage)
            idle_s = self.settings.idle_event_s
            quiet_since = last_idle = time.monotonic()
            try:
                while not self._stop.is_set() and time_left() > 0:
                    waiting = ser.in_waiting
                    data = ser.read(waiting or 1)
                    if data and not waiting:
                        data += ser.read(ser.in_waiting)
                    if data:
                        self.stats.bytes_read += len(data)
                        quiet_since = last_idle = time.monotonic()
                        yield from self.decoder.feed(data)
                    elif idle_s is not None and time.monotonic() - last_idle >= idle_s:
                        last_idle = time.monotonic()
                        yield LinkEvent("idle", port, time.time(),
                                        f"{port}: no bytes for {last_idle - quiet_since:.1f} s",
                                        last_idle - quiet_since)
            except (serial.SerialException, OSError) as exc:
                self.stats.disconnects += 1
                down_since = time.time()
                msg = f"lost {port}: {_os_error_text(exc)}"
                log.warning(msg)
                yield from self.decoder.flush()
                yield LinkEvent("disconnected", port, down_since, msg)
            finally:
                self._serial = None
                try:
                    ser.close()
                except Exception:
                    pass
        yield from self.decoder.flush()


def _os_error_text(exc: BaseException) -> str:
    """The OS error behind a pyserial exception, e.g. ``No such file or directory [ENOENT]``."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        text = f"{os.strerror(code)} [{errno.errorcode[code]}]"
        if code in (errno.EAGAIN, errno.EBUSY):
            text += " - the port is busy: another program has it open"
        return text
    text = (str(exc) or exc.__class__.__name__).replace("\n", " ")
    if "returned no data" in text:  # pyserial's words for a vanished device
        return "device disconnected (read returned no data)"
    return text
