"""The frame test vectors of ``docs/spec/digitizer-frame.md``, shipped as package data.

``vectors.json`` lists frames (``hex``) with their decoded contents (``payload``; for sample
frames ``samples`` holds one row per sample, one value per channel, in counts). Every
implementation of the frame protocol (the Python encoder/decoder, the C encoder in
``firmware_bridge/c``) must reproduce them bit for bit. This file is the only copy.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["load_vectors", "vectors_path"]


def vectors_path() -> Path:
    """Path of ``vectors.json`` (installed with the package, or in the source tree)."""
    return Path(__file__).resolve().with_name("vectors.json")


def load_vectors() -> list[dict[str, Any]]:
    """The vectors as a list of ``{"name", "type", "seq", "payload", "hex"}`` objects."""
    return json.loads(vectors_path().read_text(encoding="utf-8"))
