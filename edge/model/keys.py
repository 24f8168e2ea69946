"""ed25519 keys: the trusted public keys (bundle signatures, operator envelopes), their key ids,
and the private-key loader of the signing side (``microseis keygen``'s ``.key`` files).

A key id is the first 16 hex digits of the sha256 of the raw 32-byte public key.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["KEYS_DIR", "KEY_ID_PATTERN", "KeyLike", "key_id", "load_public_key", "load_trusted_keys",
           "load_private_key",
           "default_trusted_keys"]

#: Public keys the station trusts by default: the project key's public half, ``*.pub``.
KEYS_DIR = Path(__file__).resolve().parent.parent / "keys"
#: A key id: 16 lower-case hex digits.
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """First 16 hex digits of the sha256 of the raw 32-byte ed25519 public key."""
    raw = public_key if isinstance(public_key, (bytes, bytearray)) else public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if len(raw) != 32:
        raise ValueError(f"an ed25519 public key is 32 bytes, got {len(raw)}")
    return hashlib.sha256(bytes(raw)).hexdigest()[:16]


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """An ed25519 public key from a file: PEM (``-----BEGIN PUBLIC KEY-----``, what
    ``microseis keygen`` writes) or one line of base64 of the raw 32 bytes.
    Raises ``ValueError`` naming the file when it is neither."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read public key {p}: {exc.strerror or exc}") from None
    if len(data) > 16384:
        raise ValueError(f"{p}: not a public key (file too large)")
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError(f"{p}: not an ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{p}: not an ed25519 public key ({type(key).__name__})")
    return key


KeyLike = Ed25519PublicKey | bytes | str | os.PathLike


def load_trusted_keys(items: Iterable[KeyLike]) -> dict[str, Ed25519PublicKey]:
    """``{key id: key}`` from keys, raw 32-byte public keys, key files or directories
    (every ``*.pub`` in a directory, sorted)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for item in items:
        if isinstance(item, Ed25519PublicKey):
            found = [item]
        elif isinstance(item, (bytes, bytearray)):
            found = [Ed25519PublicKey.from_public_bytes(bytes(item))]
        else:
            p = Path(item)
            if p.is_dir():
                found = [load_public_key(f) for f in sorted(p.glob("*.pub"))]
            else:
                found = [load_public_key(p)]
        for k in found:
            keys[key_id(k)] = k
    return keys


def default_trusted_keys() -> dict[str, Ed25519PublicKey]:
    """The keys shipped with the package in ``edge/keys/*.pub`` (may be none)."""
    return load_trusted_keys([KEYS_DIR]) if KEYS_DIR.is_dir() else {}


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The ed25519 private key in a PEM file (``microseis keygen``'s ``.key``: a model signing
    key or an operator key); ``ValueError`` naming the file otherwise."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read private key {p}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{p}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{p}: not an ed25519 private key ({type(key).__name__})")
    return key
