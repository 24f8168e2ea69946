"""A pseudo-terminal that behaves like a USB serial device of a digitizer.

The simulator writes to the master side; a reader opens the slave path (``/dev/pts/N``, or
the stable symlink given as ``link``) with pyserial exactly as it would open
``/dev/ttyACM0``. :meth:`unplug` makes the device vanish like a pulled USB cable (the
reader's read fails, the path disappears); :meth:`replug` brings a new one back on the
same symlink.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import tty


class PtyPort:
    """Master side of a pty, with an optional stable symlink to the slave."""

    def __init__(self, link: str | None = None, write_timeout: float = 0.5) -> None:
        self.link = link
        self.write_timeout = write_timeout
        self.master: int | None = None
        self._slave: int | None = None
        self.path: str | None = None
        #: bytes that could not be written because nobody read them in time (a real UART loses them)
        self.bytes_unsent = 0
        self.open()

    @property
    def is_open(self) -> bool:
        return self.master is not None

    @property
    def device_path(self) -> str:
        """The path a reader should open: the symlink if there is one, else the pty slave."""
        return self.link or self.path or ""

    def open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        # Keep the slave open ourselves so the pty is not hung up between reader sessions.
        self.master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self.link:
            tmp = f"{self.link}.tmp{os.getpid()}"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)

    def write(self, data: bytes) -> int:
        """Write all of ``data`` unless the reader stalls past ``write_timeout``; return bytes written."""
        if self.master is None:
            self.bytes_unsent += len(data)
            return 0
        view = memoryview(data)
        done = 0
        while done < len(view):
            try:
                done += os.write(self.master, view[done:])
            except BlockingIOError:
                _, writable, _ = select.select([], [self.master], [], self.write_timeout)
                if not writable:
                    break
            except OSError as exc:  # EIO: the other side is gone
                if exc.errno not in (errno.EIO, errno.EBADF):
                    raise
                break
        self.bytes_unsent += len(view) - done
        return done

    def pending_input(self) -> int:
        """Bytes written to the device that its reader has not read yet (0 while unplugged).

        Read with ``FIONREAD`` on the slave side; the kernel hands written bytes to the slave
        a moment after :meth:`write` returns, so a 0 right after a write may still change."""
        if self._slave is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(self._slave, termios.FIONREAD, b"\0" * 4))[0]
        except OSError:
            return 0

    def unplug(self) -> None:
        """The device disappears: fds closed, symlink removed."""
        if self.link and os.path.lexists(self.link):
            os.unlink(self.link)
        for fd in (self.master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self._slave = None

    def replug(self) -> None:
        """A new device appears (new pty; the symlink points to it)."""
        if self.master is None:
            self.open()

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> PtyPort:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
