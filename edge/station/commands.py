"""The station's command desk: commands and model pushes from the MQTT link, authenticated
(:mod:`edge.comms.auth`), rate-limited and executed on a worker thread, never on the sample path.

Flow: the link's network thread calls :meth:`CommandDesk.on_command` / :meth:`on_push`. They
only take a token from a :class:`TokenBucket` (default 5 per second, bursts of 10) and queue
the request (bounded); a request over the rate, or beyond the queue, is queued as a refusal
(answered ``status: error``, ``rate limited``), and dropped and counted only when even that
queue is full. The worker thread (``microseis-commands``) authenticates each request, runs its
handler and answers on ``cmd/{name}/response``; pushes report on the retained ``model`` topic
through ``report_push``. Refused requests are never executed.

Handlers may be slow (verifying and loading a model takes a second on a Pi); the daemon's main
loop only picks up the finished result (a new classifier) between chunks.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from edge.comms.auth import Authenticator, AuthError, Command, Push, push_nonce_of, transaction_of

__all__ = ["TokenBucket", "CommandDesk", "CommandRefused"]

log = logging.getLogger(__name__)


class CommandRefused(Exception):
    """Raised by a handler: the command was valid but cannot be done (the message says why)."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; :meth:`take` is thread-safe."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self.clock = float(rate), float(burst), clock
        self._tokens, self._t = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
            self._t = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class CommandDesk:
    """Authenticates and runs commands and pushes off the caller's thread.

    Args:
        auth: the station's :class:`~edge.comms.auth.Authenticator`.
        handlers: ``{command name: fn(Command) -> data}``; ``fn`` raises
            :class:`CommandRefused` (or any exception) to answer an error.
        on_push: ``fn(Push) -> result dict`` (``status``, ``result``, ``message``) for an
            accepted push, or None when it reports the verdict itself (a model swap).
        respond: ``fn(name, transaction, status, data=None, error=None)`` (the link's).
        report_push: ``fn(result dict)``: publish a push's verdict (the model topic).
        rate, burst: the token bucket (requests per second, burst size).
        max_queue: most requests waiting for the worker.
    """

    def __init__(self, auth: Authenticator, handlers: Mapping[str, Callable[[Command], Any]],
                 on_push: Callable[[Push], dict[str, Any]], respond: Callable[..., Any],
                 report_push: Callable[[dict[str, Any]], Any], *, rate: float = 5.0, burst: int = 10,
                 max_queue: int = 64) -> None:
        self.auth = auth
        self.handlers = dict(handlers)
        self.push_handler = on_push
        self.respond = respond
        self.report_push = report_push
        self.bucket = TokenBucket(rate, burst)
        self._work: queue.Queue[tuple] = queue.Queue(max_queue)
        self._refusals: queue.Queue[tuple] = queue.Queue(max(256, 4 * max_queue))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = {"accepted": 0, "refused": 0, "rate_limited": 0, "dropped": 0, "executed": 0}
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ network thread
    def on_command(self, name: str, payload: bytes) -> None:
        """A request on ``cmd/{name}`` (called on the link's network thread: queues only)."""
        if not self.bucket.take():
            self._count("rate_limited")
            self._refuse(("cmd", name, payload, "rate limited: more than "
                          f"{self.bucket.rate:g} commands/s (bursts of {self.bucket.burst:g}); not executed"))
            return
        try:
            self._work.put_nowait(("cmd", name, bytes(payload)))
        except queue.Full:
            self._count("rate_limited")
            self._refuse(("cmd", name, payload, "busy: too many commands waiting; not executed"))
            return
        self._wake.set()

    def on_push(self, payload: bytes, retained: bool = False) -> None:
        """A model push (network thread). An empty payload (a retained push being cleared) is
        ignored."""
        if not payload:
            return
        if not self.bucket.take():
            self._count("rate_limited")
            self._refuse(("push", None, payload, "rate limited: more than "
                          f"{self.bucket.rate:g} requests/s; push not applied"))
            return
        try:
            self._work.put_nowait(("push", retained, bytes(payload)))
        except queue.Full:
            self._count("rate_limited")
            self._refuse(("push", None, payload, "busy: too many requests waiting; push not applied"))
            return
        self._wake.set()

    def _refuse(self, item: tuple) -> None:
        kind, name, payload, reason = item
        # keep only what the answer needs, not a 64 MiB bundle
        ref = transaction_of(payload) if kind == "cmd" else push_nonce_of(payload)
        try:
            self._refusals.put_nowait((kind, name, ref, reason))
        except queue.Full:
            self._count("dropped")
            return
        self._wake.set()

    # ------------------------------------------------------------------ worker
    def start(self) -> CommandDesk:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="microseis-commands", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def idle(self) -> bool:
        """Nothing queued (tests, shutdown)."""
        return self._work.empty() and self._refusals.empty()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while not self._stop.is_set():
                try:
                    kind, name, ref, reason = self._refusals.get_nowait()
                except queue.Empty:
                    pass
                else:
                    self._answer_refused(kind, name, ref, reason)
                    continue
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                try:
                    if item[0] == "cmd":
                        self._command(item[1], item[2])
                    else:
                        self._push(item[2], item[1])
                except Exception:  # noqa: BLE001 -- the worker must survive any handler
                    log.exception("commands: %s failed", item[:2])

    def _answer_refused(self, kind: str, name: str | None, ref: Any, reason: str) -> None:
        if kind == "cmd":
            self.respond(name, ref, "error", error=reason)
        else:
            self.report_push({"status": "error", "result": "refused", "message": f"refused: {reason}",
                              "push": ref})

    def _command(self, name: str, payload: bytes) -> None:
        try:
            cmd = self.auth.command(name, payload)
        except AuthError as exc:
            self._count("refused")
            log.warning("command %s refused: %s", name, exc)
            self.respond(name, exc.transaction, "error", error=f"refused: {exc}")
            return
        self._count("accepted")
        handler = self.handlers.get(name)
        if handler is None:
            self.respond(name, cmd.transaction, "error", error=f"command {name!r} is not available here")
            return
        try:
            data = handler(cmd)
        except Exception as exc:  # noqa: BLE001 -- a command must not kill the station
            self.respond(name, cmd.transaction, "error", error=str(exc) or type(exc).__name__)
            return
        self._count("executed")
        log.info("command %s (%s) by key %s: done", name, cmd.transaction, cmd.key_id)
        self.respond(name, cmd.transaction, "ok", data=data)

    def _push(self, payload: bytes, retained: bool) -> None:
        try:
            push = self.auth.push(payload)
        except AuthError as exc:
            if exc.code == "replay" and retained:
                log.info("model push: retained push already applied, ignored (%s)", exc)
                return
            self._count("refused")
            log.warning("model push refused: %s", exc)
            self.report_push({"status": "error", "result": "refused", "message": f"refused: {exc}",
                              "push": push_nonce_of(payload)})
            return
        self._count("accepted")
        result = self.push_handler(push)
        self._count("executed")
        if result is not None:
            self.report_push(dict(result, push=result.get("push", push.nonce)))

    def _count(self, key: str) -> None:
        with self._count_lock:
            self.counts[key] += 1
