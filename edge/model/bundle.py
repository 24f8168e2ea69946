"""Signed model bundles: the format and the station-side verifier and installer.

A bundle (``*.msb``) is the one file a station accepts a model in -- pushed as bytes on
``{prefix}/{station}/model/push`` or shipped as ``edge/models/default.msb``. It is a plain,
uncompressed ZIP archive with flat entry names::

    manifest.json      what the model is (this module's :class:`Manifest`), UTF-8 JSON
    signature.json     {"format": "microseis-signature/1", "algorithm": "ed25519",
                        "key_id": "<16 hex>", "signature": "<base64 of 64 bytes>"}
    model.int8.onnx    model files (any names listed in the manifest)
    selftest.npz       self-test inputs and expected outputs

The ed25519 signature covers the exact bytes of ``manifest.json``; the manifest lists every
other entry (except ``signature.json``) with its sha256 and size, so the signature covers the
whole bundle. A key id is the first 16 hex digits of the sha256 of the raw 32-byte public key.
The format is documented in ``docs/bundle.md``.

:func:`verify_bundle` checks, in this order, and raises :class:`BundleError` with the exact
reason at the first failure: size limit; ZIP structure (not a ZIP, truncated, compressed or
encrypted entries, unsafe or duplicate names, too many entries); ``manifest.json`` and
``signature.json`` present; signature file readable; signer trusted; signature valid; manifest
JSON and fields; format version; files listed vs. present; sizes and sha256s; compatibility
with the station; self-test of the default model. Nothing untrusted is parsed beyond the ZIP
directory and the small signature file before the signature has been checked.

:func:`install_bundle` verifies in a temporary directory and then switches the ``current``
symlink atomically; :func:`rollback` returns to the previous model.

The station imports this module: numpy and cryptography only at import time; onnxruntime
(and ai-edge-litert for TFLite bundles) when a self-test runs; no torch, no ``trainer`` or
``export``.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "BUNDLE_FORMAT",
    "SIGNATURE_FORMAT",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "SELFTEST_NAME",
    "BUNDLE_SUFFIX",
    "MAX_BUNDLE_BYTES",
    "MAX_ENTRIES",
    "MAX_MANIFEST_BYTES",
    "DEFAULT_BUNDLE",
    "KEYS_DIR",
    "BundleError",
    "StationCompat",
    "TensorSpec",
    "ModelFile",
    "InputSpec",
    "SelfTestSpec",
    "Manifest",
    "VerifiedBundle",
    "key_id",
    "load_public_key",
    "load_trusted_keys",
    "default_trusted_keys",
    "read_entries",
    "verify_bundle",
    "inspect_bundle",
    "install_bundle",
    "rollback",
    "current_model_dir",
    "previous_model_dir",
    "read_manifest",
    "open_onnx_session",
    "run_onnx",
    "selftest_arrays",
    "npz_bytes",
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
#: Public keys the station trusts by default: the project key's public half, ``*.pub``.
KEYS_DIR = _PKG / "keys"

#: Entry names: flat, no directories, no leading dot, portable characters.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")

_COMPONENT_ALIASES = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}
_MAX_RESAMPLE_FACTOR = 1000  # as edge.signal.preprocess.MAX_RESAMPLE_FACTOR

_INPUT_KINDS = ("waveform", "log_peak", "spectrogram", "scalars", "noise", "other")
_OUTPUT_KINDS = ("class_probs", "class_logits", "mag_probs", "mag_logits", "other")
_DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
_ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}
_MODEL_FORMATS = ("onnx", "tflite")
_PRECISIONS = ("fp32", "fp16", "int8")
_MC_HOW = ("none", "noise_input")


class BundleError(ValueError):
    """A bundle that must not be used. ``str(err)`` is the exact, human reason (one line);
    :attr:`code` is a short machine-readable category for status messages."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# --------------------------------------------------------------------------- keys


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


KeyLike = Union[Ed25519PublicKey, bytes, str, os.PathLike]


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


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the model graph. ``shape`` holds ints for fixed dimensions and
    strings for symbolic ones (``"B"`` for the batch)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    kind: str = "other"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "kind": self.kind}


@dataclass(frozen=True)
class ModelFile:
    """One model file of the bundle; exactly one is the ``default`` the station runs."""

    file: str
    format: str
    precision: str
    sha256: str
    size: int
    default: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "precision": self.precision,
                "sha256": self.sha256, "size": self.size, "default": self.default}


@dataclass(frozen=True)
class InputSpec:
    """What the station must feed: channel order, sampling rate, window length and the
    preprocessing (``window``: :meth:`edge.signal.preprocess.WindowSpec.to_dict`)."""

    channels: tuple[str, ...]
    sampling_rate: float
    n_samples: int
    window: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "sampling_rate": self.sampling_rate,
                "n_samples": self.n_samples, "window": dict(self.window)}


@dataclass(frozen=True)
class SelfTestSpec:
    """The self-test: ``file`` (an ``.npz`` with ``input.<name>`` for every graph input and
    ``expected.<name>`` for every graph output), the absolute tolerance per output, and
    whether the top class (argmax of ``class_output``) must match for every row."""

    file: str
    atol: dict[str, float]
    top_class_must_match: bool = True
    class_output: str = "class_probs"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "atol": dict(self.atol),
                "top_class_must_match": self.top_class_must_match, "class_output": self.class_output}


@dataclass(frozen=True)
class Manifest:
    """The parsed, checked ``manifest.json`` (field meanings: ``docs/bundle.md``)."""

    format: str
    name: str
    version: str
    created: str
    description: str
    classes: tuple[str, ...]
    magnitude_bins: dict[str, Any]
    input: InputSpec
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    mc_dropout: dict[str, Any]
    models: tuple[ModelFile, ...]
    files: dict[str, dict[str, Any]]
    training_data: dict[str, Any]
    parity: dict[str, Any]
    selftest: SelfTestSpec
    signer: str
    software: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``microseis adapt`` provenance (None in other bundles): {name, version, sha256} of the
    #: bundle it was adapted from, and {counts per class, labels_sha256} of the site data
    adapted_from: dict[str, Any] | None = None
    adapted_on: dict[str, Any] | None = None

    @property
    def default_model(self) -> ModelFile:
        return next(m for m in self.models if m.default)

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data.get("synthetic"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "name": self.name, "version": self.version,
            "created": self.created, "description": self.description,
            "classes": list(self.classes), "magnitude_bins": dict(self.magnitude_bins),
            "input": self.input.to_dict(),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "mc_dropout": dict(self.mc_dropout),
            "models": [m.to_dict() for m in self.models],
            "files": {k: dict(v) for k, v in self.files.items()},
            "training_data": dict(self.training_data), "parity": self.parity,
            "selftest": self.selftest.to_dict(), "signer": self.signer,
            "software": self.software, "extra": self.extra,
            **({"adapted_from": dict(self.adapted_from)} if self.adapted_from is not None else {}),
            **({"adapted_on": dict(self.adapted_on)} if self.adapted_on is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Manifest":
        """Parse and check a manifest object; :class:`BundleError` names the first bad field."""
        return _parse_manifest(d)


_MANIFEST_FIELDS = {
    "format", "name", "version", "created", "description", "classes", "magnitude_bins", "input",
    "inputs", "outputs", "mc_dropout", "models", "files", "training_data", "parity", "selftest",
    "signer", "software", "extra", "adapted_from", "adapted_on",
}
_OPTIONAL_FIELDS = {"description", "parity", "software", "extra", "adapted_from", "adapted_on"}


def _bad(msg: str) -> BundleError:
    return BundleError(f"manifest: {msg}", "bad_manifest")


def _req(d: Mapping, key: str, where: str, types: type | tuple, what: str) -> Any:
    if key not in d:
        raise _bad(f"{where}{key} is missing")
    v = d[key]
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _bad(f"{where}{key} must be {what}, got {v!r}")
    if not isinstance(v, types):
        raise _bad(f"{where}{key} must be {what}, got {json.dumps(v)[:60]}")
    return v


def _number(d: Mapping, key: str, where: str) -> float:
    v = _req(d, key, where, (int, float), "a number")
    if not math.isfinite(v):
        raise _bad(f"{where}{key} must be finite, got {v}")
    return float(v)


def _name(v: Any, where: str, pattern: re.Pattern = _SAFE_NAME) -> str:
    if not isinstance(v, str) or not pattern.match(v):
        raise _bad(f"{where} must match {pattern.pattern}, got {v!r}")
    return v


def _tensor(d: Any, where: str, kinds: tuple[str, ...]) -> TensorSpec:
    if not isinstance(d, dict):
        raise _bad(f"{where} must be an object")
    name = _req(d, "name", where + ".", str, "a string")
    if not name:
        raise _bad(f"{where}.name is empty")
    shape = _req(d, "shape", where + ".", list, "a list")
    for s in shape:
        if isinstance(s, bool) or not (isinstance(s, str) and s or isinstance(s, int) and s > 0):
            raise _bad(f"{where}.shape entries must be positive ints or names, got {shape}")
    dtype = _req(d, "dtype", where + ".", str, "a string")
    if dtype not in _DTYPES:
        raise _bad(f"{where}.dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    kind = d.get("kind", "other")
    if kind not in kinds:
        raise _bad(f"{where}.kind must be one of {', '.join(kinds)}, got {kind!r}")
    return TensorSpec(name=name, shape=tuple(shape), dtype=dtype, kind=kind)


def _parse_manifest(d: Any) -> Manifest:
    if not isinstance(d, dict):
        raise _bad("must be a JSON object")
    fmt = d.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(f"unknown bundle format {fmt!r} (this station reads {BUNDLE_FORMAT!r})",
                          "unknown_format")
    unknown = sorted(set(d) - _MANIFEST_FIELDS)
    if unknown:
        raise _bad(f"unknown field(s) {', '.join(unknown)} for format {BUNDLE_FORMAT} "
                   "(opaque additions go into 'extra')")
    missing = sorted(_MANIFEST_FIELDS - _OPTIONAL_FIELDS - set(d))
    if missing:
        raise _bad(f"missing field(s) {', '.join(missing)}")

    name = _name(d["name"], "name", _SAFE_ID)
    version = _name(d["version"], "version", _SAFE_ID)
    created = _req(d, "created", "", str, "an ISO 8601 UTC time string")
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$", created):
        raise _bad(f"created must be ISO 8601 UTC (e.g. 2026-05-01T12:00:03Z), got {created!r}")
    description = d.get("description", "")
    if not isinstance(description, str):
        raise _bad("description must be a string")

    classes = _req(d, "classes", "", list, "a list of class names")
    if not classes or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise _bad(f"classes must be distinct non-empty names, got {classes}")

    mb = _req(d, "magnitude_bins", "", dict, "an object")
    mb_min, mb_max = _number(mb, "min", "magnitude_bins."), _number(mb, "max", "magnitude_bins.")
    width = _number(mb, "width", "magnitude_bins.")
    n = _req(mb, "n", "magnitude_bins.", int, "an integer")
    if not (width > 0 and n > 0 and mb_max > mb_min and abs((mb_max - mb_min) / width - n) < 1e-6):
        raise _bad(f"magnitude_bins: n = {n} bins of {width} do not span {mb_min}..{mb_max}")

    ind = _req(d, "input", "", dict, "an object")
    channels = _req(ind, "channels", "input.", list, "a list")
    if not channels or any(c not in ("Z", "N", "E") for c in channels) or len(set(channels)) != len(channels):
        raise _bad(f"input.channels must be distinct names from Z, N, E, got {channels}")
    rate = _number(ind, "sampling_rate", "input.")
    if rate <= 0:
        raise _bad(f"input.sampling_rate must be > 0 Hz, got {rate}")
    n_samples = _req(ind, "n_samples", "input.", int, "an integer")
    if n_samples <= 0:
        raise _bad(f"input.n_samples must be > 0, got {n_samples}")
    window = _req(ind, "window", "input.", dict, "an object (WindowSpec.to_dict)")
    if "components" in window and list(window["components"]) != list(channels):
        raise _bad(f"input.window.components {window['components']} differ from input.channels {channels}")
    if "sampling_rate" in window and window["sampling_rate"] != rate:
        raise _bad(f"input.window.sampling_rate {window['sampling_rate']} differs from "
                   f"input.sampling_rate {rate}")
    if "length_s" in window and isinstance(window["length_s"], (int, float)) \
            and round(window["length_s"] * rate) != n_samples:
        raise _bad(f"input.n_samples {n_samples} differs from window length_s * sampling_rate "
                   f"({window['length_s']} s * {rate:g} Hz)")
    inspec = InputSpec(channels=tuple(channels), sampling_rate=rate, n_samples=n_samples, window=dict(window))

    inputs = tuple(_tensor(t, f"inputs[{i}]", _INPUT_KINDS)
                   for i, t in enumerate(_req(d, "inputs", "", list, "a list")))
    outputs = tuple(_tensor(t, f"outputs[{i}]", _OUTPUT_KINDS)
                    for i, t in enumerate(_req(d, "outputs", "", list, "a list")))
    if not inputs or not outputs:
        raise _bad("inputs and outputs must each name at least one graph tensor")
    for what, ts in (("inputs", inputs), ("outputs", outputs)):
        names = [t.name for t in ts]
        if len(set(names)) != len(names):
            raise _bad(f"{what} has duplicate names {names}")
    for t in inputs:
        if t.kind == "waveform":
            if len(t.shape) != 3:
                raise _bad(f"waveform input {t.name!r} must be (batch, channels, samples), got {list(t.shape)}")
            if isinstance(t.shape[1], int) and t.shape[1] != len(channels):
                raise _bad(f"waveform input {t.name!r} has {t.shape[1]} channels but input.channels "
                           f"has {len(channels)}")
            if isinstance(t.shape[2], int) and t.shape[2] != n_samples:
                raise _bad(f"waveform input {t.name!r} has {t.shape[2]} samples but input.n_samples "
                           f"is {n_samples}")
    for t in outputs:
        want = {"class_probs": len(classes), "class_logits": len(classes), "mag_probs": n,
                "mag_logits": n}.get(t.kind)
        if want is not None and isinstance(t.shape[-1], int) and t.shape[-1] != want:
            raise _bad(f"output {t.name!r} ({t.kind}) has {t.shape[-1]} values per row, expected {want}")

    mc = _req(d, "mc_dropout", "", dict, "an object")
    how = mc.get("how")
    if how not in _MC_HOW:
        hint = (" (a graph that samples inside, e.g. RandomUniformLike, cannot be self-tested; "
                "feed the dropout noise as a graph input: how = 'noise_input')") if how == "random_op" else ""
        raise _bad(f"mc_dropout.how must be one of {', '.join(_MC_HOW)}, got {how!r}{hint}")
    passes = _req(mc, "passes", "mc_dropout.", int, "an integer")
    if passes < 1 or (how == "none" and passes != 1):
        raise _bad(f"mc_dropout.passes must be >= 1 (1 when how is 'none'), got {passes}")
    if how == "noise_input":
        nin = mc.get("input")
        if nin not in {t.name for t in inputs if t.kind == "noise"}:
            raise _bad(f"mc_dropout.input {nin!r} must name a graph input of kind 'noise'")
    elif any(t.kind == "noise" for t in inputs):
        raise _bad("a graph input of kind 'noise' needs mc_dropout.how = 'noise_input'")

    files_d = _req(d, "files", "", dict, "an object {name: {sha256, size}}")
    files: dict[str, dict[str, Any]] = {}
    for fname, meta in files_d.items():
        _name(fname, f"files key {fname!r}")
        if fname in (MANIFEST_NAME, SIGNATURE_NAME):
            raise _bad(f"files must not list {fname}")
        if not isinstance(meta, dict):
            raise _bad(f"files[{fname!r}] must be an object")
        sha = _req(meta, "sha256", f"files[{fname!r}].", str, "64 lower-case hex digits")
        if not _HEX64.match(sha):
            raise _bad(f"files[{fname!r}].sha256 must be 64 lower-case hex digits")
        size = _req(meta, "size", f"files[{fname!r}].", int, "an integer")
        if size < 0:
            raise _bad(f"files[{fname!r}].size must be >= 0")
        files[fname] = {"sha256": sha, "size": size}

    models_l = _req(d, "models", "", list, "a list")
    models = []
    for i, m in enumerate(models_l):
        w = f"models[{i}]."
        if not isinstance(m, dict):
            raise _bad(f"models[{i}] must be an object")
        f = _name(_req(m, "file", w, str, "a file name"), w + "file")
        if f not in files:
            raise _bad(f"{w}file {f!r} is not listed in files")
        fmt_ = _req(m, "format", w, str, "a string")
        if fmt_ not in _MODEL_FORMATS:
            raise _bad(f"{w}format must be one of {', '.join(_MODEL_FORMATS)}, got {fmt_!r}")
        prec = _req(m, "precision", w, str, "a string")
        if prec not in _PRECISIONS:
            raise _bad(f"{w}precision must be one of {', '.join(_PRECISIONS)}, got {prec!r}")
        sha = m.get("sha256", files[f]["sha256"])
        size = m.get("size", files[f]["size"])
        if sha != files[f]["sha256"] or size != files[f]["size"]:
            raise _bad(f"{w}sha256/size of {f} differ from files[{f!r}]")
        default = m.get("default", False)
        if not isinstance(default, bool):
            raise _bad(f"{w}default must be true or false")
        models.append(ModelFile(file=f, format=fmt_, precision=prec, sha256=sha, size=size, default=default))
    if [m.default for m in models].count(True) != 1:
        raise _bad(f"exactly one model must be the default, got {[m.file for m in models if m.default]}")
    if len({m.file for m in models}) != len(models):
        raise _bad("models lists a file twice")

    td = _req(d, "training_data", "", dict, "an object")
    desc = _req(td, "description", "training_data.", str, "a string")
    if not desc.strip():
        raise _bad("training_data.description is empty: say what the model was trained on")
    synthetic = _req(td, "synthetic", "training_data.", bool, "true or false")
    notice = td.get("notice", "")
    if not isinstance(notice, str):
        raise _bad("training_data.notice must be a string")
    if synthetic and not notice.strip():
        raise _bad("training_data.synthetic is true but training_data.notice is empty: a model "
                   "trained on synthetic data must say so plainly")

    parity = d.get("parity", {})
    if not isinstance(parity, dict):
        raise _bad("parity must be an object")

    st = _req(d, "selftest", "", dict, "an object")
    st_file = _name(_req(st, "file", "selftest.", str, "a file name"), "selftest.file")
    if st_file not in files:
        raise _bad(f"selftest.file {st_file!r} is not listed in files")
    atol_d = _req(st, "atol", "selftest.", dict, "an object {output: tolerance}")
    atol = {}
    for t in outputs:
        if t.name not in atol_d:
            raise _bad(f"selftest.atol has no tolerance for output {t.name!r}")
        v = atol_d[t.name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < math.inf):
            raise _bad(f"selftest.atol[{t.name!r}] must be a number >= 0, got {v!r}")
        atol[t.name] = float(v)
    extra_atol = sorted(set(atol_d) - set(atol))
    if extra_atol:
        raise _bad(f"selftest.atol names unknown output(s) {', '.join(extra_atol)}")
    top = st.get("top_class_must_match", True)
    if not isinstance(top, bool):
        raise _bad("selftest.top_class_must_match must be true or false")
    class_output = st.get("class_output", next((t.name for t in outputs if t.kind.startswith("class")),
                                               outputs[0].name))
    if class_output not in {t.name for t in outputs}:
        raise _bad(f"selftest.class_output {class_output!r} is not a graph output")
    selftest = SelfTestSpec(file=st_file, atol=atol, top_class_must_match=top, class_output=class_output)

    signer = _req(d, "signer", "", str, "a key id")
    if not _KEY_ID.match(signer):
        raise _bad(f"signer must be a key id (16 lower-case hex digits), got {signer!r}")
    software = d.get("software", "")
    extra = d.get("extra", {})
    if not isinstance(software, str) or not isinstance(extra, dict):
        raise _bad("software must be a string and extra an object")

    return Manifest(
        format=fmt, name=name, version=version, created=created, description=description,
        classes=tuple(classes), magnitude_bins=dict(mb), input=inspec, inputs=inputs,
        outputs=outputs, mc_dropout=dict(mc), models=tuple(models), files=files,
        training_data=dict(td), parity=parity, selftest=selftest, signer=signer,
        software=software, extra=extra, **_provenance(d),
    )


def _provenance(d: Mapping) -> dict[str, Any]:
    """The optional ``adapted_from`` / ``adapted_on`` fields of an adapted bundle, checked."""
    out: dict[str, Any] = {}
    if "adapted_from" in d:
        a = d["adapted_from"]
        if not isinstance(a, dict):
            raise _bad("adapted_from must be an object")
        for key in ("name", "version", "sha256"):
            if not isinstance(a.get(key), str) or not a[key]:
                raise _bad(f"adapted_from.{key} must be a non-empty string")
        if not _HEX64.match(a["sha256"]):
            raise _bad(f"adapted_from.sha256 must be 64 lower-case hex digits, got {a['sha256']!r}")
        out["adapted_from"] = dict(a)
    if "adapted_on" in d:
        a = d["adapted_on"]
        if not isinstance(a, dict):
            raise _bad("adapted_on must be an object")
        counts = a.get("counts")
        if not isinstance(counts, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for k, v in counts.items()):
            raise _bad("adapted_on.counts must map class names to event counts")
        if not isinstance(a.get("labels_sha256"), str) or not _HEX64.match(a["labels_sha256"]):
            raise _bad("adapted_on.labels_sha256 must be 64 lower-case hex digits")
        out["adapted_on"] = dict(a)
    return out


# --------------------------------------------------------------------------- station


@dataclass(frozen=True)
class StationCompat:
    """What a station can feed a model: its components and the sampling rate its digitizer
    delivers. ``None`` skips that check. A station whose rate is *higher* than the model's
    may downsample to it (``allow_downsample``, as :func:`edge.signal.preprocess.preprocess_stream`
    does); a lower rate cannot make up the missing band and is refused. ``classes``, when
    given, must equal the model's classes (for stations whose consumers rely on them)."""

    channels: tuple[str, ...] | None = ("Z", "N", "E")
    sampling_rate: float | None = None
    allow_downsample: bool = True
    classes: tuple[str, ...] | None = None

    def check(self, manifest: Manifest) -> list[str]:
        """Raise :class:`BundleError` (code ``incompatible``) naming both values when the
        model's input does not match this station; return notes (e.g. downsampling)."""
        notes: list[str] = []
        inp = manifest.input
        if self.channels is not None:
            have = [_COMPONENT_ALIASES.get(str(c).upper()[-1:], str(c)) for c in self.channels]
            missing = [c for c in inp.channels if c not in have]
            if missing:
                raise BundleError(
                    f"model input does not match the station: the model needs channels "
                    f"{','.join(inp.channels)} but the station has {','.join(have) or 'none'} "
                    f"(missing {','.join(missing)})", "incompatible")
        if self.sampling_rate is not None:
            st, mo = float(self.sampling_rate), inp.sampling_rate
            if abs(st - mo) > 1e-6 * mo:
                ok = False
                if self.allow_downsample and st > mo:
                    ratio = Fraction(round(mo * 1000), round(st * 1000))
                    ok = max(ratio.numerator, ratio.denominator) <= _MAX_RESAMPLE_FACTOR
                if not ok:
                    raise BundleError(
                        f"model input does not match the station: the model needs {mo:g} Hz but "
                        f"the station samples at {st:g} Hz", "incompatible")
                notes.append(f"station downsamples {st:g} Hz to the model's {mo:g} Hz")
        if self.classes is not None and tuple(self.classes) != manifest.classes:
            raise BundleError(
                f"model classes {','.join(manifest.classes)} differ from the station's "
                f"{','.join(self.classes)}", "incompatible")
        return notes


# --------------------------------------------------------------------------- zip reading


def _read_source(source: str | os.PathLike | bytes | bytearray | memoryview,
                 max_bytes: int) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        path = None
    else:
        p = Path(source)
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise BundleError(f"no such bundle file: {p}", "not_found") from None
        except OSError as exc:
            raise BundleError(f"cannot read {p}: {exc.strerror or exc}", "not_found") from None
        if not p.is_file():
            raise BundleError(f"{p} is not a file", "not_found")
        if size > max_bytes:
            raise BundleError(f"bundle is {size} bytes, more than the {max_bytes}-byte limit", "too_large")
        data = p.read_bytes()
        path = str(p)
    if len(data) > max_bytes:
        raise BundleError(f"bundle is {len(data)} bytes, more than the {max_bytes}-byte limit", "too_large")
    return data, path


def read_entries(data: bytes, max_entries: int = MAX_ENTRIES) -> dict[str, bytes]:
    """Every entry of a bundle's ZIP as ``{name: bytes}``, after the structural checks
    (not a ZIP / truncated, entry count, unsafe or duplicate names, compressed or encrypted
    entries). The stored bytes are read as they are: integrity is the manifest's sha256s'
    job (the ZIP CRCs are not relied upon)."""
    if len(data) < 22 or not (data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06")):
        raise BundleError("not a bundle: not a ZIP archive", "not_zip")
    # Count the entries from the end-of-central-directory record before zipfile builds an
    # object per entry: a crafted archive must not make the station allocate millions.
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if eocd < 0 or len(data) - eocd < 22:
        raise BundleError("not a valid bundle: truncated or corrupt ZIP archive (no end of central "
                          "directory)", "not_zip")
    n_total = struct.unpack_from("<H", data, eocd + 10)[0]
    if n_total > max_entries:
        raise BundleError(f"bundle has {n_total} entries, more than the limit of {max_entries}",
                          "too_large")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise BundleError(f"not a valid bundle: truncated or corrupt ZIP archive ({exc})", "not_zip") from None
    if len(infos) > max_entries:
        raise BundleError(f"bundle has {len(infos)} entries, more than the limit of {max_entries}",
                          "too_large")
    entries: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        if not _SAFE_NAME.match(name) or name in (".", ".."):
            raise BundleError(f"unsafe entry name {name!r} in bundle (entries must be plain file "
                              "names: no directories, '..' or absolute paths)", "unsafe_name")
        if name in entries:
            raise BundleError(f"duplicate entry {name!r} in bundle", "unsafe_name")
        if info.flag_bits & 0x1:
            raise BundleError(f"entry {name!r} is encrypted", "not_zip")
        if info.compress_type != zipfile.ZIP_STORED:
            raise BundleError(f"entry {name!r} is compressed (method {info.compress_type}); bundle "
                              "entries are stored uncompressed", "not_zip")
        if info.compress_size != info.file_size:
            raise BundleError(f"entry {name!r}: corrupt ZIP header (sizes differ)", "not_zip")
        entries[name] = _stored_bytes(data, info)
    return entries


def _stored_bytes(data: bytes, info: zipfile.ZipInfo) -> bytes:
    off = info.header_offset
    hdr = data[off: off + zipfile.sizeFileHeader]
    if len(hdr) != zipfile.sizeFileHeader:
        raise BundleError(f"not a valid bundle: truncated ZIP archive (entry {info.filename!r})", "not_zip")
    fh = struct.unpack(zipfile.structFileHeader, hdr)
    if fh[zipfile._FH_SIGNATURE] != zipfile.stringFileHeader:
        raise BundleError(f"not a valid bundle: corrupt ZIP archive (entry {info.filename!r})", "not_zip")
    n, m = fh[zipfile._FH_FILENAME_LENGTH], fh[zipfile._FH_EXTRA_FIELD_LENGTH]
    raw_name = data[off + 30: off + 30 + n]
    enc = "utf-8" if fh[zipfile._FH_GENERAL_PURPOSE_FLAG_BITS] & 0x800 else "cp437"
    if raw_name.decode(enc, "replace") != info.filename:
        raise BundleError(f"entry {info.filename!r}: local header names {raw_name!r} (ambiguous ZIP)",
                          "unsafe_name")
    start = off + 30 + n + m
    body = data[start: start + info.compress_size]
    if len(body) != info.compress_size:
        raise BundleError(f"not a valid bundle: truncated ZIP archive (entry {info.filename!r})", "not_zip")
    return body


# --------------------------------------------------------------------------- verification


@dataclass
class VerifiedBundle:
    """A bundle that passed :func:`verify_bundle`.

    Attributes:
        manifest: the parsed manifest.
        sha256: sha256 of the whole bundle file (hex); the bundle's identity.
        size: bundle size, bytes.
        key_id: the trusted key that signed it.
        entries: every entry's verified bytes (``manifest.json``, ``signature.json``, files).
        selftest: ``{"status": "passed" | "skipped" | "not run", "model": file,
            "outputs": {name: {"max_abs_diff", "atol"}}, "rows": n, "note": str}``.
        notes: remarks (downsampling, skipped checks, synthetic training data).
        path: the file it was read from, if any.
    """

    manifest: Manifest
    sha256: str
    size: int
    key_id: str
    entries: dict[str, bytes]
    selftest: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    path: str | None = None

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
            "sha256": self.sha256, "size": self.size, "key_id": self.key_id,
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
    data, path = _read_source(source, max_bytes)
    keys = dict(trusted_keys) if isinstance(trusted_keys, Mapping) else load_trusted_keys(trusted_keys)
    bundle_sha = hashlib.sha256(data).hexdigest()
    entries = read_entries(data, max_entries)

    for required in (MANIFEST_NAME, SIGNATURE_NAME):
        if required not in entries:
            raise BundleError(f"bundle has no {required}", "missing_file")
    manifest_bytes = entries[MANIFEST_NAME]
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST_NAME} is {len(manifest_bytes)} bytes, more than the "
                          f"{MAX_MANIFEST_BYTES}-byte limit", "too_large")

    signer, signature = _parse_signature(entries[SIGNATURE_NAME])
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

    notes: list[str] = []
    _check_window(manifest, notes)
    if station is not None:
        notes += station.check(manifest)
    if manifest.synthetic:
        notes.append(f"SYNTHETIC training data: {manifest.training_data.get('notice', '')}")

    vb = VerifiedBundle(manifest=manifest, sha256=bundle_sha, size=len(data), key_id=signer,
                        entries=entries, selftest={"status": "not run"}, notes=notes, path=path)
    if run_selftest:
        vb.selftest = _run_selftest(manifest, entries)
        if vb.selftest["status"] == "skipped":
            notes.append(vb.selftest["note"])
    return vb


def _parse_signature(raw: bytes) -> tuple[str, bytes]:
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
    if not isinstance(kid, str) or not _KEY_ID.match(kid):
        raise BundleError(f"{SIGNATURE_NAME}: key_id must be 16 lower-case hex digits, got {kid!r}",
                          "bad_signature")
    try:
        signature = base64.b64decode(sig.get("signature", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BundleError(f"{SIGNATURE_NAME}: signature is not base64", "bad_signature") from None
    if len(signature) != 64:
        raise BundleError(f"{SIGNATURE_NAME}: an ed25519 signature is 64 bytes, got {len(signature)}",
                          "bad_signature")
    return kid, signature


def _check_window(manifest: Manifest, notes: list[str]) -> None:
    """The manifest's window must be a valid :class:`~edge.signal.preprocess.WindowSpec` of this
    station's preprocessing contract (unknown keys: a newer contract -> refused)."""
    try:
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


# --------------------------------------------------------------------------- self-test


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A deterministic, uncompressed ``.npz`` (fixed timestamps, sorted names) that
    ``np.load`` reads; no pickled objects allowed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name])
            if arr.dtype == object:
                raise ValueError(f"self-test array {name!r} has dtype object")
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, body.getvalue())
    return buf.getvalue()


def selftest_arrays(npz: bytes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, expected)`` from a self-test ``.npz`` (keys ``input.<name>`` and
    ``expected.<name>``); raises :class:`BundleError` for anything else in it."""
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the same verdict
        raise BundleError(f"self-test file is not a readable .npz: {exc}", "selftest") from None
    inputs, expected = {}, {}
    for k, v in arrays.items():
        if k.startswith("input."):
            inputs[k[6:]] = v
        elif k.startswith("expected."):
            expected[k[9:]] = v
        else:
            raise BundleError(f"self-test file has an unexpected array {k!r} (keys are input.<name> "
                              "and expected.<name>)", "selftest")
    return inputs, expected


#: onnxruntime graph optimizers the station switches off (see :func:`open_onnx_session`)
DISABLED_ORT_OPTIMIZERS = ("NhwcTransformer",)


def open_onnx_session(model: bytes | str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session the way the station runs models (``threads`` intra-op
    threads, one inter-op thread, warnings off).

    ONNX Runtime's ``NhwcTransformer`` is switched off: on these 1-D models it wraps every
    int8 ``QLinearConv`` in a pair of Transposes (NCHW <-> NHWC) that cost more than the int8
    convolution saves (measured on a Conv-only int8 graph: 0.97x fp32 with it, 0.86x without;
    docs/performance.md).
    fp32 graphs are not affected."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = model if isinstance(model, (bytes, bytearray)) else str(model)
    return ort.InferenceSession(bytes(src) if isinstance(src, bytearray) else src,
                                sess_options=so, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_ORT_OPTIMIZERS))


def run_onnx(model: bytes | str | os.PathLike, inputs: Mapping[str, np.ndarray],
             threads: int = 1) -> dict[str, np.ndarray]:
    """Run an ONNX model once with the station's session settings: ``{output: array}``.
    The export side computes a bundle's expected self-test outputs with this."""
    sess = open_onnx_session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(inputs))))


def _check_graph(sess, manifest: Manifest, model_file: str) -> None:
    """The session's graph inputs/outputs must be what the manifest declares."""
    for what, declared, actual in (("input", manifest.inputs, sess.get_inputs()),
                                   ("output", manifest.outputs, sess.get_outputs())):
        have = {a.name: a for a in actual}
        want = {t.name for t in declared}
        if what == "input" and set(have) != want:
            raise BundleError(f"{model_file}: graph inputs {sorted(have)} differ from the manifest's "
                              f"{sorted(want)}", "bad_manifest")
        for t in declared:
            a = have.get(t.name)
            if a is None:
                raise BundleError(f"{model_file}: the graph has no {what} {t.name!r} (manifest "
                                  f"declares it)", "bad_manifest")
            dtype = _ORT_DTYPES.get(a.type, a.type)
            if dtype != t.dtype:
                raise BundleError(f"{model_file}: {what} {t.name!r} is {dtype} in the graph but "
                                  f"{t.dtype} in the manifest", "bad_manifest")
            shape = list(a.shape) if a.shape is not None else None
            if shape is None:
                continue
            if len(shape) != len(t.shape) or any(
                    isinstance(g, int) and (isinstance(m, str) or g != m)
                    for g, m in zip(shape, t.shape)):
                raise BundleError(f"{model_file}: {what} {t.name!r} has shape {shape} in the graph but "
                                  f"{list(t.shape)} in the manifest", "bad_manifest")


def _litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _run_tflite(model: bytes, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One run of a TFLite model's first signature in ai-edge-litert; int8 outputs are
    dequantised with their scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model, num_threads=1)
    sigs = interp.get_signature_list()
    if not sigs:
        raise BundleError("TFLite model has no signature to run", "selftest")
    key = next(iter(sigs))
    runner = interp.get_signature_runner(key)
    raw = runner(**{k: np.asarray(v) for k, v in inputs.items()})
    details = runner.get_output_details()
    out = {}
    for name, arr in raw.items():
        scale, zero = details.get(name, {}).get("quantization", (0.0, 0))
        if scale and np.issubdtype(arr.dtype, np.integer):
            arr = (arr.astype(np.float32) - zero) * scale
        out[name] = arr
    return out


def _run_selftest(manifest: Manifest, entries: Mapping[str, bytes]) -> dict[str, Any]:
    model = manifest.default_model
    inputs, expected = selftest_arrays(entries[manifest.selftest.file])
    for t in manifest.inputs:
        if t.name not in inputs:
            raise BundleError(f"self-test file has no input {t.name!r}", "selftest")
        if inputs[t.name].dtype.name != t.dtype:
            raise BundleError(f"self-test input {t.name!r} is {inputs[t.name].dtype.name}, the "
                              f"graph takes {t.dtype}", "selftest")
    for name in sorted(set(inputs) - {t.name for t in manifest.inputs}):
        raise BundleError(f"self-test file has input {name!r} that the graph does not take", "selftest")
    for t in manifest.outputs:
        if t.name not in expected:
            raise BundleError(f"self-test file has no expected output {t.name!r}", "selftest")

    body = entries[model.file]
    if model.format == "onnx":
        try:
            sess = open_onnx_session(body)
        except Exception as exc:  # noqa: BLE001
            raise BundleError(f"self-test: onnxruntime cannot load {model.file}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                              "selftest") from None
        _check_graph(sess, manifest, model.file)
        names = [t.name for t in manifest.outputs]

        def run_once() -> dict[str, np.ndarray]:
            try:
                return dict(zip(names, sess.run(names, inputs)))
            except Exception as exc:  # noqa: BLE001
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BundleError(f"self-test: {model.file} failed to run: {msg}", "selftest") from None
    else:
        if not _litert_available():
            return {"status": "skipped", "model": model.file,
                    "note": f"self-test skipped: default model {model.file} is TFLite and "
                            "ai-edge-litert is not installed (pip install ai-edge-litert)"}

        def run_once() -> dict[str, np.ndarray]:
            try:
                return _run_tflite(body, inputs)
            except BundleError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise BundleError(f"self-test: {model.file} failed to run in ai-edge-litert: {exc}",
                                  "selftest") from None

    got = run_once()
    again = run_once()
    for t in manifest.outputs:
        if t.name not in got:
            raise BundleError(f"self-test: {model.file} produced no output {t.name!r}", "selftest")
        if not np.array_equal(got[t.name], again[t.name], equal_nan=True):
            diff = float(np.max(np.abs(np.asarray(got[t.name], np.float64) - again[t.name])))
            raise BundleError(
                f"self-test: {model.file} is not deterministic (output {t.name!r} changed by "
                f"{diff:.3g} between two identical runs); bundle format 1 needs the MC-dropout "
                "noise as a graph input (mc_dropout.how = 'noise_input')", "selftest")

    report: dict[str, Any] = {}
    rows = None
    for t in manifest.outputs:
        g = np.asarray(got[t.name], dtype=np.float64)
        e = np.asarray(expected[t.name], dtype=np.float64)
        atol = manifest.selftest.atol[t.name]
        if g.shape != e.shape:
            raise BundleError(f"self-test mismatch: output {t.name!r} has shape {list(g.shape)}, "
                              f"expected {list(e.shape)}", "selftest")
        if not np.all(np.isfinite(g)):
            raise BundleError(f"self-test mismatch: output {t.name!r} contains NaN/inf", "selftest")
        diff = float(np.max(np.abs(g - e))) if g.size else 0.0
        if not diff <= atol:
            raise BundleError(f"self-test mismatch: output {t.name!r} differs from the expected "
                              f"values by up to {diff:.3g} (tolerance {atol:g})", "selftest")
        report[t.name] = {"max_abs_diff": diff, "atol": atol}
        rows = g.shape[0] if g.ndim else rows
    if manifest.selftest.top_class_must_match:
        name = manifest.selftest.class_output
        g = np.asarray(got[name])
        e = np.asarray(expected[name])
        if g.ndim >= 1 and g.size:
            bad = np.flatnonzero(np.argmax(g.reshape(g.shape[0], -1), -1) != np.argmax(e.reshape(e.shape[0], -1), -1))
            if bad.size:
                raise BundleError(f"self-test mismatch: top class of {name!r} differs from the "
                                  f"expected one in {bad.size} of {g.shape[0]} rows (first row {int(bad[0])})",
                                  "selftest")
    return {"status": "passed", "model": model.file, "rows": rows, "outputs": report,
            "note": f"default model {model.file} reproduced the expected outputs"}


# --------------------------------------------------------------------------- inspect


def inspect_bundle(source: str | os.PathLike | bytes, *, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, Any]:
    """What a bundle says about itself, without any key and **without verifying** it (use
    :func:`verify_bundle` for that). Raises :class:`BundleError` when it cannot be read."""
    data, path = _read_source(source, max_bytes)
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
            sig_key = _parse_signature(entries[SIGNATURE_NAME])[0]
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


# --------------------------------------------------------------------------- install


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(models_dir: Path):
    import fcntl

    with open(models_dir / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _point(models_dir: Path, link: str, target: str) -> None:
    """Atomically make ``models_dir/link`` a relative symlink to ``target``."""
    tmp = models_dir / f".{link}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, models_dir / link)


def _target(models_dir: Path, link: str) -> Path | None:
    p = models_dir / link
    if not p.is_symlink():
        return None
    t = models_dir / os.readlink(p)
    return t if t.is_dir() else None


def current_model_dir(models_dir: str | os.PathLike) -> Path | None:
    """The installed model the station runs (``models_dir/current``), or ``None``."""
    return _target(Path(models_dir), "current")


def previous_model_dir(models_dir: str | os.PathLike) -> Path | None:
    """The model :func:`rollback` returns to (``models_dir/previous``), or ``None``."""
    return _target(Path(models_dir), "previous")


def install_bundle(
    data: bytes,
    models_dir: str | os.PathLike,
    trusted_keys: Iterable[KeyLike] | Mapping[str, Ed25519PublicKey],
    station: StationCompat,
    *,
    require_selftest: bool = True,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> Path:
    """Verify ``data`` fully and make it the station's current model.

    The bundle is verified (signature, hashes, compatibility with ``station``, self-test) and
    unpacked into a temporary directory inside ``models_dir``; only then is that directory
    renamed to ``models_dir/<name>-<version>-<sha12>/`` and the ``current`` symlink switched
    atomically, the old target becoming ``previous``. Installs that are neither current nor
    previous are removed. On any failure a :class:`BundleError` is raised and ``current``,
    ``previous`` and the installed models are untouched, with no partial directory left.

    Returns the new model directory (it holds every bundle entry plus ``bundle.msb``).
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    data = bytes(data)
    with _locked(models_dir):
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=models_dir))
        try:
            vb = verify_bundle(data, trusted_keys, station=station, run_selftest=True, max_bytes=max_bytes)
            if require_selftest and vb.selftest.get("status") != "passed":
                raise BundleError(f"not installed: {vb.selftest.get('note', 'self-test did not run')}",
                                  "selftest")
            for name, body in vb.entries.items():
                _write_synced(tmp / name, body)
            _write_synced(tmp / INSTALLED_BUNDLE_NAME, data)
            # re-read what landed on disk: a full disk or a bad card must not install garbage
            for name, meta in vb.manifest.files.items():
                if hashlib.sha256((tmp / name).read_bytes()).hexdigest() != meta["sha256"]:
                    raise BundleError(f"{name}: written copy differs from the bundle (disk error?)",
                                      "io_error")
            _fsync_dir(tmp)
            m = vb.manifest
            final = models_dir / f"{m.name}-{m.version}-{vb.sha256[:12]}"
            if final.exists():
                same = (final / INSTALLED_BUNDLE_NAME).is_file() and hashlib.sha256(
                    (final / INSTALLED_BUNDLE_NAME).read_bytes()).hexdigest() == vb.sha256
                if not same:
                    if final == current_model_dir(models_dir):
                        raise BundleError(f"{final.name} is the current model but its files are damaged; "
                                          "roll back first", "io_error")
                    shutil.rmtree(final)
            created = not final.exists()
            if created:
                os.rename(tmp, final)
            _fsync_dir(models_dir)
            try:
                old = current_model_dir(models_dir)
                if old is not None and old.resolve() != final.resolve():
                    _point(models_dir, "previous", old.name)
                _point(models_dir, "current", final.name)
                _fsync_dir(models_dir)
            except OSError:
                if created and current_model_dir(models_dir) != final:
                    shutil.rmtree(final, ignore_errors=True)
                raise
        except OSError as exc:
            raise BundleError(f"install failed: {exc}", "io_error") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(models_dir)
    return final


def _write_synced(path: Path, body: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())


def _prune(models_dir: Path) -> None:
    keep = {p.resolve() for p in (current_model_dir(models_dir), previous_model_dir(models_dir)) if p}
    for p in models_dir.iterdir():
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") \
                and (p / INSTALLED_BUNDLE_NAME).is_file() and p.resolve() not in keep:
            shutil.rmtree(p, ignore_errors=True)


def rollback(models_dir: str | os.PathLike) -> Path:
    """Make the previous model current again (and the current one previous, so a second
    rollback undoes the first). Raises :class:`BundleError` when there is nothing to return to."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise BundleError(f"no models directory {models_dir}", "no_previous")
    with _locked(models_dir):
        prev = previous_model_dir(models_dir)
        cur = current_model_dir(models_dir)
        if prev is None:
            raise BundleError("no previous model to roll back to", "no_previous")
        if cur is not None:
            _point(models_dir, "previous", cur.name)
        _point(models_dir, "current", prev.name)
        _fsync_dir(models_dir)
    return prev


def read_manifest(model_dir: str | os.PathLike) -> Manifest:
    """The manifest of an installed model directory (for the daemon; re-verify the directory's
    ``bundle.msb`` with :func:`verify_bundle` at start-up if the card may be tampered with)."""
    raw = (Path(model_dir) / MANIFEST_NAME).read_bytes()
    return Manifest.from_dict(json.loads(raw.decode("utf-8")))
