"""Progress bars on stderr for the trainer's long loops (tqdm when installed, else none)."""
from __future__ import annotations

import sys

__all__ = ["progress_bar"]


class _NoBar:
    """Stands in for a tqdm bar when progress is off or tqdm is missing."""

    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **kw: object) -> None: ...

    def close(self) -> None: ...


def progress_bar(total: int, desc: str, enabled: bool, *, unit: str = "event", tty_only: bool = False,
                 leave: bool = True, mininterval: float = 0.1):
    """A tqdm bar on stderr (``update``, ``set_postfix``, ``close``), or one that does nothing
    when ``enabled`` is false, when ``tty_only`` and stderr is not a terminal, or when tqdm is
    not installed."""
    if not enabled or (tty_only and not sys.stderr.isatty()):
        return _NoBar()
    try:  # deferred: tqdm is optional
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave, mininterval=mininterval)
