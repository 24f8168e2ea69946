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
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxError", "OutboxItem"]

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

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox {self.path}: cannot create folder {self.path.parent}: "
                              f"{exc.strerror or exc}") from None
        if self.path.is_dir():
            raise OutboxError(f"outbox {self.path}: is a directory, not a database file")
        try:
            db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None,
                                 check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from None
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"outbox {self.path}: cannot switch to WAL mode (got {mode!r}); "
                                  f"is the file system read-only or a network share?")
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxError(f"outbox {self.path}: database is corrupt ({check}); move it "
                                  f"aside to start with an empty outbox")
            db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise OutboxError(f"outbox {self.path}: {_reason(exc)}") from None
        except OutboxError:
            db.close()
            raise
        self._db = db

    # ------------------------------------------------------------------ writes
    def put(self, topic: str, payload: bytes, msg_id: str, qos: int = 1, retain: bool = False) -> int:
        """Store a message; committed (and fsynced) before returning.

        Putting the same ``msg_id`` for the same ``topic`` again keeps the first row (and its
        place in the queue) and returns its id.

        Returns:
            the row id (delivery order).
        """
        if not topic or not msg_id:
            raise ValueError("topic and msg_id must not be empty")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        with self._lock:
            db = self._conn()
            try:
                db.execute("INSERT INTO outbox (topic, msg_id, payload, qos, retain, created) "
                           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (topic, msg_id) DO NOTHING",
                           (topic, msg_id, bytes(payload), int(qos), int(bool(retain)), time.time()))
                row = db.execute("SELECT id FROM outbox WHERE topic = ? AND msg_id = ?",
                                 (topic, msg_id)).fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot store message {msg_id}: "
                                  f"{_reason(exc)}") from None
            return int(row[0])

    def remove(self, row_id: int) -> bool:
        """Delete a delivered message. Returns False if it was not there (already removed)."""
        with self._lock:
            try:
                cur = self._conn().execute("DELETE FROM outbox WHERE id = ?", (int(row_id),))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot remove row {row_id}: "
                                  f"{_reason(exc)}") from None
            return cur.rowcount > 0

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
        if limit is not None:
            sql += " LIMIT ?"
            args += (max(0, int(limit)),)
        with self._lock:
            try:
                rows = self._conn().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {_reason(exc)}") from None
        return [OutboxItem(int(r[0]), r[1], bytes(r[2]), r[3], int(r[4]), bool(r[5]), float(r[6]))
                for r in rows]

    def depth(self) -> int:
        """Number of waiting messages."""
        with self._lock:
            try:
                return int(self._conn().execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {_reason(exc)}") from None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Checkpoint the WAL and close. Idempotent."""
        with self._lock:
            if self._db is not None:
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


def _reason(exc: sqlite3.Error) -> str:
    msg = str(exc)
    if "not a database" in msg or "malformed" in msg:
        return f"{msg}: not an outbox database or corrupt; move it aside to start with an empty outbox"
    if "readonly" in msg or "read-only" in msg:
        return f"{msg}: the file or its folder is not writable"
    if "unable to open" in msg:
        return f"{msg}: check that the folder exists and is writable"
    return msg
