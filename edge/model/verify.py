"""Verifying a bundle: signature, hashes, compatibility and self-test.

:func:`verify_bundle` checks, in this order, and raises :class:`~edge.model.format.BundleError`
with the exact reason at the first failure: size limit; ZIP structure (not a ZIP, truncated,
compressed or encrypted entries, unsafe or duplicate names, too many entries);
ZIP container not canonical (bytes outside the entries, comment, extra fields, headers that
differ from the writer's: :mod:`edge.model.container`); ``manifest.json`` and
``signature.json`` present; signature file readable and canonical; signer trusted;
signature valid; manifest JSON and fields; format version; files listed vs. present; sizes and
sha256s; the ZIP CRC-32s; compatibility with the station; self-test of the default model. Nothing untrusted is
parsed beyond the ZIP directory and the small signature file before the signature has been
checked. :func:`inspect_bundle` reads what a bundle says about itself without verifying it.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.model.container import check_crcs, read_container, read_entries, read_source
from edge.model.format import (
    MANIFEST_NAME,
    MAX_BUNDLE_BYTES,
    MAX_ENTRIES,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FORMAT,
    SIGNATURE_NAME,
    BundleError,
)
from edge.model.keys import KEY_ID_PATTERN, KeyLike, load_trusted_keys
from edge.model.manifest import Manifest, ModelFile, StationCompat
from edge.model.selftest import run_selftest as _run_selftest  # the parameter is run_selftest

__all__ = ["VerifiedBundle", "verify_bundle", "inspect_bundle", "parse_signature"]



@dataclass
class VerifiedBundle:
    """A bundle that passed :func:`verify_bundle`.

    Attributes:
        manifest: the parsed manifest.
        sha256: sha256 of the whole bundle file (hex). The container is canonical, so this
            follows from the entries; what the station compares is :attr:`identity`.
        size: bundle size, bytes.
        key_id: the trusted key that signed it.
        entries: every entry's verified bytes (``manifest.json``, ``signature.json``, files).
        selftest: ``{"status": "passed" | "skipped" | "not run", "model": file,
            "outputs": {name: {"max_abs_diff", "atol"}}, "rows": n, "note": str}``.
        notes: remarks (downsampling, skipped checks, synthetic training data).
        path: the file it was read from, if any.
        identity: sha256 of ``manifest.json`` (hex), the signed content: the bundle's identity
            (two bundles with the same identity are the same model).
    """

    manifest: Manifest
    sha256: str
    size: int
    key_id: str
    entries: dict[str, bytes]
    selftest: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    path: str | None = None
    identity: str = ""

    @property
    def default_model(self) -> ModelFile:
        return self.manifest.default_model

    def file(self, name: str) -> bytes:
        return self.entries[name]

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (``microseis bundle verify --json``, the station's model topic)."""
        m = self.manifest
        return {
            "ok": True, "path": self.path, "name": m.name, "version": m.version,
            "sha256": self.sha256, "identity": self.identity, "size": self.size, "key_id": self.key_id,
            "classes": list(m.classes), "created": m.created,
            "default_model": m.default_model.file, "synthetic": m.synthetic,
            "selftest": self.selftest, "notes": list(self.notes),
        }


def verify_bundle(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    trusted_keys: Iterable[KeyLike] | Mapping[str, Ed25519PublicKey],
    station: StationCompat | None = None,
    run_selftest: bool = True,
    *,
    max_bytes: int = MAX_BUNDLE_BYTES,
    max_entries: int = MAX_ENTRIES,
) -> VerifiedBundle:
    """Verify a bundle (a path or its bytes) completely; raise :class:`BundleError` with the
    exact reason at the first failure (order: module docstring and ``docs/bundle.md``).

    Args:
        trusted_keys: public keys (objects, raw bytes, ``.pub`` files or directories of them)
            or a ``{key id: key}`` mapping. Empty -> every bundle is refused.
        station: the station's channels and rate; ``None`` skips the compatibility check.
        run_selftest: run the default model on the self-test inputs. When the default model is
            TFLite and ai-edge-litert is missing, the self-test is skipped with a note
            (``selftest["status"] == "skipped"``); :func:`install_bundle` refuses that.
    """
    data, path = read_source(source, max_bytes)
    keys = dict(trusted_keys) if isinstance(trusted_keys, Mapping) else load_trusted_keys(trusted_keys)
    bundle_sha = hashlib.sha256(data).hexdigest()
    entries, crcs = read_container(data, max_entries)

    for required in (MANIFEST_NAME, SIGNATURE_NAME):
        if required not in entries:
            raise BundleError(f"bundle has no {required}", "missing_file")
    manifest_bytes = entries[MANIFEST_NAME]
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST_NAME} is {len(manifest_bytes)} bytes, more than the "
                          f"{MAX_MANIFEST_BYTES}-byte limit", "too_large")

    signer, signature = parse_signature(entries[SIGNATURE_NAME])
    if signer not in keys:
        trusted = ", ".join(sorted(keys)) or "none"
        raise BundleError(f"signed by untrusted key {signer} (trusted: {trusted})", "untrusted_key")
    try:
        keys[signer].verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError(f"signature invalid: {MANIFEST_NAME} was not signed by key {signer} "
                          "(tampered or corrupted)", "bad_signature") from None

    # From here on the manifest is authentic.
    try:
        obj = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST_NAME} is not valid JSON: {exc}", "bad_manifest") from None
    manifest = Manifest.from_dict(obj)
    if manifest.signer != signer:
        raise BundleError(f"manifest names signer {manifest.signer} but {SIGNATURE_NAME} is by {signer}",
                          "bad_signature")

    listed = set(manifest.files)
    present = set(entries) - {MANIFEST_NAME, SIGNATURE_NAME}
    for name in sorted(listed - present):
        raise BundleError(f"{name} is listed in the manifest but missing from the bundle", "missing_file")
    for name in sorted(present - listed):
        raise BundleError(f"unlisted file {name!r} in the bundle (not covered by the signature)",
                          "extra_file")
    for name in sorted(listed):
        want, body = manifest.files[name], entries[name]
        if len(body) != want["size"]:
            raise BundleError(f"{name}: size mismatch (manifest {want['size']} bytes, bundle "
                              f"{len(body)} bytes)", "hash_mismatch")
        got = hashlib.sha256(body).hexdigest()
        if got != want["sha256"]:
            raise BundleError(f"{name}: sha256 mismatch (manifest {want['sha256'][:16]}…, file "
                              f"{got[:16]}…)", "hash_mismatch")
    check_crcs(entries, crcs)

    notes: list[str] = []
    _check_window(manifest, notes)
    if station is not None:
        notes += station.check(manifest)
    if manifest.synthetic:
        notes.append(f"SYNTHETIC training data: {manifest.training_data.get('notice', '')}")

    vb = VerifiedBundle(manifest=manifest, sha256=bundle_sha, size=len(data), key_id=signer,
                        entries=entries, selftest={"status": "not run"}, notes=notes, path=path,
                        identity=hashlib.sha256(manifest_bytes).hexdigest())
    if run_selftest:
        vb.selftest = _run_selftest(manifest, entries)
        if vb.selftest["status"] == "skipped":
            notes.append(vb.selftest["note"])
    return vb


def parse_signature(raw: bytes) -> tuple[str, bytes]:
    """``(key id, 64-byte signature)`` from ``signature.json``; :class:`BundleError` otherwise."""
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise BundleError(f"{SIGNATURE_NAME} is too large ({len(raw)} bytes)", "bad_signature")
    try:
        sig = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{SIGNATURE_NAME} is not valid JSON: {exc}", "bad_signature") from None
    if not isinstance(sig, dict) or sig.get("format") != SIGNATURE_FORMAT:
        got = sig.get("format") if isinstance(sig, dict) else None
        raise BundleError(f"{SIGNATURE_NAME}: unknown signature format {got!r} (expected "
                          f"{SIGNATURE_FORMAT!r})", "bad_signature")
    if sig.get("algorithm") != "ed25519":
        raise BundleError(f"{SIGNATURE_NAME}: unsupported algorithm {sig.get('algorithm')!r} "
                          "(expected 'ed25519')", "bad_signature")
    kid = sig.get("key_id")
    if not isinstance(kid, str) or not KEY_ID_PATTERN.match(kid):
        raise BundleError(f"{SIGNATURE_NAME}: key_id must be 16 lower-case hex digits, got {kid!r}",
                          "bad_signature")
    try:
        signature = base64.b64decode(sig.get("signature", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BundleError(f"{SIGNATURE_NAME}: signature is not base64", "bad_signature") from None
    if len(signature) != 64:
        raise BundleError(f"{SIGNATURE_NAME}: an ed25519 signature is 64 bytes, got {len(signature)}",
                          "bad_signature")
    # the one entry the signature does not cover: it must be exactly what the writer makes
    # (export.signing.signature_file), so its bytes cannot vary around the same signature
    canonical = (json.dumps(sig, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if set(sig) != {"format", "algorithm", "key_id", "signature"} or raw != canonical:
        raise BundleError(f"{SIGNATURE_NAME} is not in canonical form (exactly the four fields, "
                          "sorted, 2-space indent, as export.signing writes it)", "not_canonical")
    return kid, signature


def _check_window(manifest: Manifest, notes: list[str]) -> None:
    """The manifest's window must be a valid :class:`~edge.signal.preprocess.WindowSpec` of this
    station's preprocessing contract (unknown keys: a newer contract -> refused)."""
    try:  # deferred: obspy/scipy are not installed on a link-only station
        from edge.signal.preprocess import WindowSpec
    except ImportError as exc:  # a link-only install without obspy/scipy
        notes.append(f"window spec not checked (edge.signal.preprocess unavailable: {exc})")
        return
    try:
        spec = WindowSpec.from_dict(manifest.input.window)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"model input does not match the station: {exc}", "incompatible") from None
    inp = manifest.input
    if tuple(spec.components) != inp.channels or spec.sampling_rate != inp.sampling_rate \
            or spec.n_samples != inp.n_samples:
        raise BundleError(
            f"manifest: input ({','.join(inp.channels)}, {inp.sampling_rate:g} Hz, {inp.n_samples} "
            f"samples) differs from its window ({','.join(spec.components)}, {spec.sampling_rate:g} Hz, "
            f"{spec.n_samples} samples)", "bad_manifest")


def inspect_bundle(source: str | os.PathLike | bytes, *, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, Any]:
    """What a bundle says about itself, without any key and **without verifying** it (use
    :func:`verify_bundle` for that). Raises :class:`BundleError` when it cannot be read."""
    data, path = read_source(source, max_bytes)
    entries = read_entries(data)
    if MANIFEST_NAME not in entries:
        raise BundleError(f"bundle has no {MANIFEST_NAME}", "missing_file")
    try:
        obj = json.loads(entries[MANIFEST_NAME].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST_NAME} is not valid JSON: {exc}", "bad_manifest") from None
    m = Manifest.from_dict(obj)
    sig_key = None
    if SIGNATURE_NAME in entries:
        with contextlib.suppress(BundleError):
            sig_key = parse_signature(entries[SIGNATURE_NAME])[0]
    parity_summary = {k: v for k, v in m.parity.items()
                      if isinstance(v, (int, float, str, bool)) or v is None}
    return {
        "path": path,
        "name": m.name,
        "version": m.version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "format": m.format,
        "created": m.created,
        "description": m.description,
        "classes": list(m.classes),
        "magnitude_bins": m.magnitude_bins,
        "input": {"channels": list(m.input.channels), "sampling_rate": m.input.sampling_rate,
                  "n_samples": m.input.n_samples},
        "inputs": [t.to_dict() for t in m.inputs],
        "outputs": [t.to_dict() for t in m.outputs],
        "mc_dropout": m.mc_dropout,
        "models": [mf.to_dict() for mf in m.models],
        "synthetic": m.synthetic,
        "training_data": m.training_data,
        "signer": m.signer,
        "signature_key_id": sig_key,
        "parity": parity_summary,
        "entries": sorted(entries),
        "verified": False,
    }
