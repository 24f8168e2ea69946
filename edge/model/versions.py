"""Comparing model versions (the manifest's ``version``) for the station's anti-rollback rule.

Semantic Versioning 2.0.0 order (https://semver.org, section 11): the dot-separated core
(``MAJOR.MINOR.PATCH``, any number of parts) compares part by part, numeric parts as integers,
a missing part counting as 0; a pre-release (``-rc.1``) sorts before its release; build
metadata (``+build.7``) is ignored. Versions that are not SemVer still compare sensibly:
a leading ``v`` is dropped and a part that is not a number compares as text, after numbers.
"""
from __future__ import annotations

import re

__all__ = ["compare_versions"]

_SPLIT = re.compile(r"^[vV]?(?P<core>[^-+]*)(?:-(?P<pre>[^+]*))?(?:\+.*)?$")


def _parts(text: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in text.split(".") if p != ""]


def _cmp_parts(a: list, b: list, pad: bool) -> int:
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b):
            if pad:  # the core: 1.2 == 1.2.0
                x = a[i] if i < len(a) else (0, 0)
                y = b[i] if i < len(b) else (0, 0)
            else:  # a pre-release with fewer fields sorts first
                return -1 if len(a) < len(b) else 1
        else:
            x, y = a[i], b[i]
        if x != y:
            return -1 if x < y else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``.

    >>> compare_versions("1.10.0", "1.9.3"), compare_versions("2.0.0-rc.1", "2.0.0")
    (1, -1)
    """
    ma, mb = _SPLIT.match(a), _SPLIT.match(b)
    if ma is None or mb is None:  # unreachable for the manifest's version pattern
        return (a > b) - (a < b)
    c = _cmp_parts(_parts(ma["core"]), _parts(mb["core"]), pad=True)
    if c:
        return c
    pa, pb = ma["pre"], mb["pre"]
    if pa is None or pb is None:
        return 0 if pa is pb else (1 if pa is None else -1)
    return _cmp_parts(_parts(pa), _parts(pb), pad=False)
