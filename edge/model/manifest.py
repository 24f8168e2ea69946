"""The bundle manifest (``manifest.json``): its fields, their checks, and whether a station
can feed the model it describes (:class:`StationCompat`). Field meanings: ``docs/bundle.md``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping

from edge.model.format import BUNDLE_FORMAT, MANIFEST_NAME, SAFE_NAME, SIGNATURE_NAME, BundleError
from edge.model.keys import KEY_ID_PATTERN

__all__ = [
    "TensorSpec",
    "ModelFile",
    "InputSpec",
    "SelfTestSpec",
    "Manifest",
    "StationCompat",
]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_COMPONENT_ALIASES = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}
_MAX_RESAMPLE_FACTOR = 1000  # as edge.signal.preprocess.MAX_RESAMPLE_FACTOR

_INPUT_KINDS = ("waveform", "log_peak", "spectrogram", "scalars", "noise", "other")
_OUTPUT_KINDS = ("class_probs", "class_logits", "mag_probs", "mag_logits", "other")
_DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
_MODEL_FORMATS = ("onnx", "tflite")
_PRECISIONS = ("fp32", "fp16", "int8")
_MC_HOW = ("none", "noise_input")



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


def _name(v: Any, where: str, pattern: re.Pattern = SAFE_NAME) -> str:
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
    if not KEY_ID_PATTERN.match(signer):
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


