"""Durable outbox: messages that must reach the broker wait here (SQLite, WAL) until the
broker acknowledges them, across reconnects, restarts and ``kill -9``.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. In WAL mode every commit is
appended to the ``-wal`` file before :meth:`Outbox.put` returns, so a killed process (SIGKILL,
OOM, crash) never loses a committed row even with ``synchronous=NORMAL``; ``FULL`` also fsyncs
the WAL at each commit, so a committed row survives a *power cut* too -- the common failure on
a solar/battery field station. The price (one fsync per event message and per
acknowledgement, a few ms on an SD card) is nothing at event rates of a few per hour.

Each row: ``id`` (autoincrement: strictly increasing, never reused, so it is the delivery
order), ``topic``, ``msg_id`` (the event id; ``(topic, msg_id)`` is unique, so putting the same
message twice keeps one row), ``payload`` (bytes), ``qos``, ``retain``, ``created`` (POSIX s).

A full disk never loses a message: when SQLite cannot write (``database or disk is full``,
``disk I/O error`` -- ENOSPC, EFBIG, a failing card), :meth:`Outbox.put` keeps the message in a
bounded in-memory backlog (:attr:`Outbox.MEMORY_LIMIT` messages; past that the oldest is
dropped, counted in :attr:`Outbox.dropped` and logged) under the row id it would have had, so
:meth:`pending` still hands it to the broker at once and in order. Every later :meth:`put` and
every :meth:`retry` (the daemon calls it periodically) first tries to write the backlog to the
file, oldest first, with the same ids. An acknowledgement that cannot be written (``DELETE``
on a full disk) is remembered and written later; the row is no longer pending. While writes
fail, :attr:`disk_full` is True and ``on_full`` (e.g. "prune the archive") is called.

A file that is not a SQLite database, or fails SQLite's ``quick_check``, is moved aside as
``<name>.corrupt-<UTC time>`` (with its ``-wal``/``-shm``) with a warning, and a fresh outbox
is started: a corrupt file must not keep an unattended station down. What cannot be fixed by
moving the file (a folder that is not writable, a path that is a folder) still raises
:class:`OutboxError`.
"""
from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxError", "OutboxItem"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    msg_id  TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL DEFAULT 1,
    retain  INTEGER NOT NULL DEFAULT 0,
    created REAL    NOT NULL,
    UNIQUE (topic, msg_id)
)
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be used; the message names the path and the reason."""


@dataclass(frozen=True)
class OutboxItem:
    """One waiting message. ``row_id`` orders delivery (oldest first)."""

    row_id: int
    topic: str
    payload: bytes
    msg_id: str
    qos: int
    retain: bool
    created: float


class Outbox:
    """A durable FIFO of MQTT messages in one SQLite file. Thread-safe (one connection, one lock).

    Args:
        path: the database file (created with its folder if missing; ``-wal``/``-shm``
            files appear next to it).

    Raises:
        OutboxError: the file cannot be created or written, or is not a (healthy) SQLite
            database.
    """

    #: messages kept in memory while the file cannot be written; the oldest go past this
    MEMORY_LIMIT = 1000
    #: at most one ``on_full`` call per this many seconds while writes fail (s)
    ON_FULL_EVERY_S = 30.0

    def __init__(self, path: str | os.PathLike[str], *, memory_limit: int | None = None,
                 on_full: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.memory_limit = int(memory_limit if memory_limit is not None else self.MEMORY_LIMIT)
        self.on_full = on_full
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._memory: collections.OrderedDict[int, OutboxItem] = collections.OrderedDict()
        self._unremoved: set[int] = set()  # acknowledged rows whose DELETE could not be written
        self._last_id = 0  # highest row id given out (file or memory)
        self._write_error: str | None = None  # the last write failure; None while writes work
        self._last_on_full = -1e9
        #: messages dropped from the full in-memory backlog since start
        self.dropped = 0
        #: the path a corrupt outbox was moved to at start (None: it was fine)
        self.moved_aside: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox {self.path}: cannot create folder {self.path.parent}: "
                              f"{exc.strerror or exc}") from None
        if self.path.is_dir():
            raise OutboxError(f"outbox {self.path}: is a directory, not a database file")
        self._file_ok = True  # False: the file could not be opened (a full disk at start)
        try:
            self._db = self._open_or_move_aside()
        except _WriteFailed as exc:
            # a full disk at start: run from memory (an empty placeholder database answers the
            # reads) and open the file once it can be written. Ids start above any the file can
            # hold (POSIX ms), so its old rows keep their place before the new ones.
            self._file_ok = False
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._db.execute(_SCHEMA)
            self._last_id = int(time.time() * 1000)
            self._failed(f"cannot open: {exc}")
        else:
            self._last_id = self._file_seq(self._db)

    @staticmethod
    def _file_seq(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def _open_or_move_aside(self) -> sqlite3.Connection:
        try:
            return self._open()
        except _Corrupt as exc:
            self.moved_aside = self._move_aside(str(exc))
            return self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None,
                                 check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {_reason(exc)}") from None
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"outbox {self.path}: cannot switch to WAL mode (got {mode!r}); "
                                  f"is the file system read-only or a network share?")
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Corrupt(f"quick_check: {check}")
            db.execute(_SCHEMA)
            db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            msg = str(exc)
            if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
                raise _Corrupt(msg) from None
            if "disk is full" in msg or "disk I/O error" in msg:
                raise _WriteFailed(msg) from None
            raise OutboxError(f"outbox {self.path}: {_reason(exc)}") from None
        except (OutboxError, _Corrupt):
            db.close()
            raise
        return db

    def _move_aside(self, why: str) -> Path:
        """Rename the corrupt file (and its -wal/-shm) to ``<name>.corrupt-<UTC>``."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            os.replace(self.path, target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, target.with_name(target.name + suffix))
        except OSError as exc:
            raise OutboxError(f"outbox {self.path}: corrupt ({why}) and cannot be moved aside: "
                              f"{exc.strerror or exc}") from None
        log.warning("outbox %s: corrupt (%s): moved aside to %s; starting an empty outbox "
                    "(messages in the old file were not delivered)", self.path, why, target.name)
        return target

    # ------------------------------------------------------------------ writes
    def put(self, topic: str, payload: bytes, msg_id: str, qos: int = 1, retain: bool = False) -> int:
        """Store a message; committed (and fsynced) before returning -- or, while the file
        cannot be written, kept in the in-memory backlog (written later, see the module doc).

        Putting the same ``msg_id`` for the same ``topic`` again keeps the first row (and its
        place in the queue) and returns its id.

        Returns:
            the row id (delivery order).

        Raises:
            OutboxError: the outbox is closed or cannot even be read.
        """
        if not topic or not msg_id:
            raise ValueError("topic and msg_id must not be empty")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        with self._lock:
            db = self._conn()
            for it in self._memory.values():
                if it.topic == topic and it.msg_id == msg_id:
                    return it.row_id
            try:
                row = db.execute("SELECT id FROM outbox WHERE topic = ? AND msg_id = ?",
                                 (topic, msg_id)).fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {_reason(exc)}") from None
            if row is not None:
                return int(row[0])
            self._persist_locked()
            item = OutboxItem(self._last_id + 1, topic, bytes(payload), msg_id, int(qos),
                              bool(retain), time.time())
            self._last_id = item.row_id
            if not self._memory and self._file_ok:
                try:
                    self._insert(db, [item])
                except sqlite3.Error as exc:
                    self._failed(f"cannot store message {msg_id}: {_reason(exc)}")
                else:
                    return item.row_id
            self._memory[item.row_id] = item
            while len(self._memory) > self.memory_limit:
                _, lost = self._memory.popitem(last=False)
                self.dropped += 1
                log.warning("outbox %s: in-memory backlog full (%d messages): dropped the oldest, "
                            "%s (%d dropped since start)", self.path, self.memory_limit, lost.msg_id,
                            self.dropped)
        self._maybe_on_full()
        return item.row_id

    def remove(self, row_id: int) -> bool:
        """Delete a delivered message. Returns False if it was not there (already removed).
        A deletion that cannot be written now is remembered (the row is no longer pending) and
        written later."""
        row_id = int(row_id)
        with self._lock:
            if self._memory.pop(row_id, None) is not None:
                return True
            if row_id in self._unremoved:
                return False
            try:
                cur = self._conn().execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            except sqlite3.Error as exc:
                try:
                    there = self._conn().execute("SELECT 1 FROM outbox WHERE id = ?",
                                                 (row_id,)).fetchone() is not None
                except sqlite3.Error:
                    there = True
                if not there:
                    return False
                self._unremoved.add(row_id)
                self._failed(f"cannot remove row {row_id}: {_reason(exc)}")
                return True
            return cur.rowcount > 0

    def retry(self) -> bool:
        """Try to write the in-memory backlog and the remembered deletions now (oldest first).
        Returns whether everything is on disk. Cheap when there is nothing to write."""
        with self._lock:
            if self._db is None:
                return False
            ok = self._persist_locked()
        if not ok:
            self._maybe_on_full()
        return ok

    # ------------------------------------------------------------------ write-failure handling
    def _insert(self, db: sqlite3.Connection, items: list[OutboxItem]) -> None:
        """Insert ``items`` with their ids in one transaction (all or none)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO outbox (id, topic, msg_id, payload, qos, retain, created) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           [(it.row_id, it.topic, it.msg_id, it.payload, it.qos, int(it.retain),
                             it.created) for it in items])
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    def _persist_locked(self) -> bool:
        """Write the backlog and the remembered deletions (lock held). Returns success."""
        if not self._memory and not self._unremoved and self._file_ok:
            return True
        if not self._file_ok:
            try:
                db = self._open_or_move_aside()
            except (_WriteFailed, OutboxError) as exc:
                self._failed(f"cannot open: {exc}")
                return False
            self._conn().close()
            self._db, self._file_ok = db, True
            self._last_id = max(self._last_id, self._file_seq(db))
        db = self._conn()
        try:
            if self._unremoved:
                db.executemany("DELETE FROM outbox WHERE id = ?", [(r,) for r in sorted(self._unremoved)])
                self._unremoved.clear()
            if self._memory:
                items = list(self._memory.values())
                self._insert(db, items)
                self._memory.clear()
                log.warning("outbox %s: writable again: %d message(s) from the in-memory backlog "
                            "written", self.path, len(items))
        except sqlite3.Error as exc:
            self._failed(f"cannot write the backlog: {_reason(exc)}")
            return False
        if self._write_error is not None:
            log.warning("outbox %s: writes work again", self.path)
            self._write_error = None
        return True

    def _failed(self, why: str) -> None:
        if self._write_error is None:
            log.warning("outbox %s: %s: keeping messages in memory (up to %d) until the file can be "
                        "written", self.path, why, self.memory_limit)
        self._write_error = why

    def _maybe_on_full(self) -> None:
        """Call ``on_full`` (outside the lock), at most every ON_FULL_EVERY_S while failing."""
        if self.on_full is None or self._write_error is None:
            return
        now = time.monotonic()
        if now - self._last_on_full < self.ON_FULL_EVERY_S:
            return
        self._last_on_full = now
        try:
            self.on_full()
        except Exception as exc:  # noqa: BLE001 -- making room is best effort
            log.warning("outbox %s: on_full: %s", self.path, exc)

    @property
    def disk_full(self) -> bool:
        """True while the file cannot be written (messages wait in memory)."""
        return self._write_error is not None

    @property
    def write_error(self) -> str | None:
        """Why the last write failed (None while writes work)."""
        return self._write_error

    @property
    def backlog(self) -> int:
        """Messages waiting in memory only (not yet written to the file)."""
        return len(self._memory)

    # ------------------------------------------------------------------ reads
    def pending(self, after_id: int = 0, limit: int | None = None) -> list[OutboxItem]:
        """Waiting messages in insertion order (oldest first).

        Args:
            after_id: only rows with a larger id.
            limit: at most this many rows (None = all).
        """
        sql = ("SELECT id, topic, payload, msg_id, qos, retain, created FROM outbox "
               "WHERE id > ? ORDER BY id")
        args: tuple = (int(after_id),)
        with self._lock:
            fetch = None if limit is None else max(0, int(limit)) + len(self._unremoved)
            if fetch is not None:
                sql += " LIMIT ?"
                args += (fetch,)
            try:
                rows = self._conn().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {_reason(exc)}") from None
            items = [OutboxItem(int(r[0]), r[1], bytes(r[2]), r[3], int(r[4]), bool(r[5]), float(r[6]))
                     for r in rows if int(r[0]) not in self._unremoved]
            # memory rows have larger ids than every row in the file (ids are given in order);
            # they follow only when the file had no more rows to give
            if fetch is None or len(rows) < fetch:
                items += [it for it in self._memory.values() if it.row_id > after_id]
        return items if limit is None else items[:max(0, int(limit))]

    def depth(self) -> int:
        """Number of waiting messages (in the file and in the in-memory backlog)."""
        with self._lock:
            try:
                n = int(self._conn().execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                return n - len(self._unremoved) + len(self._memory)
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {_reason(exc)}") from None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Write what waits in memory (if the file can be written now), checkpoint the WAL and
        close. Idempotent. Messages still only in memory are lost with the process (logged)."""
        with self._lock:
            if self._db is not None:
                if not self._persist_locked():
                    log.warning("outbox %s: closing with %d message(s) that could not be written "
                                "to the file", self.path, len(self._memory))
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass
                self._db.close()
                self._db = None

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path}: closed")
        return self._db


class _Corrupt(Exception):
    """The file is not a (healthy) SQLite database."""


class _WriteFailed(Exception):
    """The file cannot be written now (full disk, I/O error): worth retrying later."""


def _reason(exc: sqlite3.Error) -> str:
    msg = str(exc)
    if "not a database" in msg or "malformed" in msg:
        return f"{msg}: not an outbox database or corrupt; move it aside to start with an empty outbox"
    if "readonly" in msg or "read-only" in msg:
        return f"{msg}: the file or its folder is not writable"
    if "unable to open" in msg:
        return f"{msg}: check that the folder exists and is writable"
    return msg
