"""Write a signed model bundle (format: ``docs/bundle.md``, reader: :mod:`edge.model.verify`).

:func:`write_bundle` takes a manifest *without* the parts it computes (``format``, ``files``,
models' ``sha256``/``size``, ``signer``, and ``created`` when absent), the model files and the
self-test arrays, and writes a deterministic, uncompressed ZIP: entries in sorted order, fixed
timestamps and permissions, so the same inputs (and the same ``created``) give the same bytes.
Before writing, it verifies the bytes with the public half of the key, self-test included, so a
bundle that the station would refuse is never written.

Self-test arrays: ``{"input.<graph input>": array, ..., "expected.<graph output>": array}``
(:func:`make_selftest` builds that from two dicts). Compute the expected outputs with
:func:`edge.model.runtime.run_onnx` on the default model file -- the same code the station runs.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.model.format import (
    BUNDLE_FORMAT,
    MANIFEST_NAME,
    SELFTEST_NAME,
    SIGNATURE_NAME,
    BundleError,
)
from edge.model.keys import key_id
from edge.model.manifest import Manifest
from edge.model.selftest import npz_bytes
from edge.model.verify import verify_bundle
from export.signing import signature_file

__all__ = ["write_bundle", "make_selftest", "zip_entries", "manifest_bytes", "utc_now"]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def utc_now() -> str:
    """``created`` for a new bundle: ISO 8601 UTC with ``Z``; ``SOURCE_DATE_EPOCH`` when set
    (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = datetime.fromtimestamp(int(epoch) if epoch else time.time(), tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_selftest(inputs: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The flat self-test dict: ``input.<name>`` and ``expected.<name>`` keys."""
    out = {f"input.{k}": np.asarray(v) for k, v in inputs.items()}
    out.update({f"expected.{k}": np.asarray(v) for k, v in expected.items()})
    return out


def zip_entries(entries: Mapping[str, bytes]) -> bytes:
    """A deterministic, uncompressed ZIP of ``{name: bytes}`` (sorted names, fixed times)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, bytes(entries[name]))
    return buf.getvalue()


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The canonical ``manifest.json`` bytes (sorted keys, 2-space indent, UTF-8, no NaN)."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
            + "\n").encode("utf-8")


def write_bundle(
    out_path: str | os.PathLike,
    manifest: Mapping[str, Any],
    files: Mapping[str, bytes],
    selftest: Mapping[str, np.ndarray],
    private_key: Ed25519PrivateKey,
    *,
    verify: bool = True,
) -> Path:
    """Write and sign a bundle; return its path.

    Args:
        manifest: the manifest fields (``docs/bundle.md``); ``files``, ``signer``, ``format``
            and the models' ``sha256``/``size`` are filled in here, ``created`` if absent,
            ``selftest.file`` defaults to ``selftest.npz``.
        files: model files (and any other entries) by entry name.
        selftest: ``input.<name>`` / ``expected.<name>`` arrays (:func:`make_selftest`).
        private_key: the signing key (:func:`export.signing.load_private_key`).
        verify: verify the bundle bytes with the public key, self-test included, before
            writing; on failure nothing is written and :class:`edge.model.format.BundleError` is
            raised.

    Raises:
        ValueError: the manifest or files are inconsistent (the message names the field).
    """
    out_path = Path(out_path)
    m = copy.deepcopy(dict(manifest))
    m.setdefault("format", BUNDLE_FORMAT)
    m.setdefault("created", utc_now())
    st = dict(m.get("selftest") or {})
    st.setdefault("file", SELFTEST_NAME)
    m["selftest"] = st

    entries: dict[str, bytes] = {}
    for name, body in files.items():
        if name in (MANIFEST_NAME, SIGNATURE_NAME, st["file"]):
            raise ValueError(f"files must not contain {name!r} (written by write_bundle)")
        entries[name] = bytes(body)
    entries[st["file"]] = npz_bytes(selftest)
    m["files"] = {name: {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
                  for name, body in sorted(entries.items())}
    models = []
    for entry in m.get("models") or []:
        entry = dict(entry)
        f = entry.get("file")
        if f not in entries:
            raise ValueError(f"manifest models entry names {f!r}, which is not among the files")
        entry.update(m["files"][f])
        models.append(entry)
    m["models"] = models
    m["signer"] = key_id(private_key.public_key())
    try:
        Manifest.from_dict(m)
    except BundleError as exc:
        raise ValueError(str(exc)) from None

    body = manifest_bytes(m)
    entries[MANIFEST_NAME] = body
    entries[SIGNATURE_NAME] = signature_file(body, private_key)
    data = zip_entries(entries)

    if verify:
        verify_bundle(data, [private_key.public_key()], station=None, run_selftest=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
