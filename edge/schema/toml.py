"""Reading a TOML file into a dict, with one-line errors that name the file (and the line)."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as the tomli package (in the edge extra)
    import tomli as tomllib

from edge.schema.core import ConfigError

__all__ = ["os_reason", "read_toml"]


def os_reason(exc: BaseException) -> str:
    """Why a file could not be read, in a few words."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    return getattr(exc, "strerror", None) or str(exc)


def read_toml(path: str | Path, source: str | None = None) -> dict[str, Any]:
    """The TOML document in ``path``. Raises :class:`ConfigError` starting with ``source``
    (default: ``path`` as given): ``"config.toml: cannot read: no such file"`` or
    ``"config.toml: line 3, column 7: invalid TOML: ..."``."""
    source = str(path) if source is None else source
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {os_reason(exc)}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
        if m:
            msg = f"line {m.group(1)}, column {m.group(2)}: invalid TOML: {msg[:m.start()]}"
        elif "end of document" in msg:
            msg = f"line {text.count(chr(10)) + 1}: invalid TOML: {msg}"
        else:
            msg = f"invalid TOML: {msg}"
        raise ConfigError(f"{source}: {msg}") from None
