"""Signed model bundles: the format's names, limits and error.

A bundle (``*.msb``) is the one file a station accepts a model in -- pushed as bytes on
``{prefix}/{station}/model/push`` or shipped as ``edge/models/default.msb``. It is a plain,
uncompressed ZIP archive with flat entry names::

    manifest.json      what the model is (:class:`edge.model.manifest.Manifest`), UTF-8 JSON
    signature.json     {"format": "microseis-signature/1", "algorithm": "ed25519",
                        "key_id": "<16 hex>", "signature": "<base64 of 64 bytes>"}
    model.int8.onnx    model files (any names listed in the manifest)
    selftest.npz       self-test inputs and expected outputs

The ed25519 signature covers the exact bytes of ``manifest.json``; the manifest lists every
other entry (except ``signature.json``) with its sha256 and size, so the signature covers the
whole bundle. The format is documented in ``docs/bundle.md``.

The modules of :mod:`edge.model` that handle bundles:

- :mod:`edge.model.keys` -- trusted public keys and key ids;
- :mod:`edge.model.manifest` -- the manifest's fields and the station compatibility check;
- :mod:`edge.model.container` -- reading the ZIP container (structural checks);
- :mod:`edge.model.runtime` -- onnxruntime / ai-edge-litert sessions as the station runs them;
- :mod:`edge.model.selftest` -- the self-test file and running it;
- :mod:`edge.model.verify` -- :func:`~edge.model.verify.verify_bundle` and
  :func:`~edge.model.verify.inspect_bundle`;
- :mod:`edge.model.install` -- atomic install, rollback and pruning on the station.

The station imports these: numpy and cryptography only at import time; onnxruntime
(and ai-edge-litert for TFLite bundles) when a self-test runs; no torch, no ``trainer`` or
``export``.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "BUNDLE_FORMAT",
    "SIGNATURE_FORMAT",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "SELFTEST_NAME",
    "BUNDLE_SUFFIX",
    "INSTALLED_BUNDLE_NAME",
    "MAX_BUNDLE_BYTES",
    "MAX_ENTRIES",
    "MAX_MANIFEST_BYTES",
    "MAX_SIGNATURE_BYTES",
    "DEFAULT_BUNDLE",
    "SAFE_NAME",
    "BundleError",
]

BUNDLE_FORMAT = "microseis-bundle/1"
SIGNATURE_FORMAT = "microseis-signature/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "signature.json"
SELFTEST_NAME = "selftest.npz"
BUNDLE_SUFFIX = ".msb"
#: Name of the original bundle file kept inside an installed model directory.
INSTALLED_BUNDLE_NAME = "bundle.msb"

#: Largest bundle accepted, bytes (the whole file).
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
#: Most entries a bundle may hold.
MAX_ENTRIES = 32
#: Largest ``manifest.json`` / ``signature.json``, bytes.
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_SIGNATURE_BYTES = 4096

_PKG = Path(__file__).resolve().parent.parent  # the edge package (models/, keys/)
#: The shipped default bundle (``microseis bundle verify`` with no BUNDLE).
DEFAULT_BUNDLE = _PKG / "models" / "default.msb"

#: Entry names: flat, no directories, no leading dot, portable characters.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BundleError(ValueError):
    """A bundle that must not be used. ``str(err)`` is the exact, human reason (one line);
    :attr:`code` is a short machine-readable category for status messages."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
