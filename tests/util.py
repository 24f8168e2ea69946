"""Small helpers for tests: wait for a condition instead of sleeping a fixed time."""
from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true (returns True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def holds_for(predicate: Callable[[], object], seconds: float, interval: float = 0.02) -> bool:
    """True when ``predicate`` stays true for ``seconds`` (e.g. no duplicate arrives); returns
    False as soon as it turns false. For conditions that can only be refuted, not awaited."""
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(interval)


def wait_stable(predicate: Callable[[], object], timeout: float = 5.0, times: int = 3,
                interval: float = 0.02) -> bool:
    """Like :func:`wait_for`, but the predicate must be true on ``times`` polls in a row
    (for a state the kernel or another thread may still be settling)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while True:
        streak = streak + 1 if predicate() else 0
        if streak >= times:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
