"""The bundle manifest (``manifest.json``): its fields declared as msgspec Structs on
:mod:`edge.schema` (types, bounds, patterns; the relations between fields in
``Manifest.__post_init__``), and whether a station can feed the model it describes
(:class:`StationCompat`). Field meanings: ``docs/bundle.md``.

A manifest is untrusted input (a pushed bundle): :meth:`Manifest.from_dict` checks every field
and raises :class:`BundleError` (code ``bad_manifest``) naming the first bad one, e.g.
``manifest: input.sampling_rate: must be > 0, got 0``; an unknown ``format`` is
``unknown_format``. Unknown top-level fields are refused (opaque additions go into ``extra``);
the open objects (``magnitude_bins``, ``mc_dropout``, ``training_data``, ``parity``) keep keys
they do not declare.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from edge.model.format import BUNDLE_FORMAT, MANIFEST_NAME, SAFE_NAME, SIGNATURE_NAME, BundleError
from edge.model.keys import KEY_ID_PATTERN
from edge.schema import Invalid, collect, show
from edge.signal.resample import resample_factors

__all__ = [
    "TensorSpec",
    "ModelFile",
    "InputSpec",
    "SelfTestSpec",
    "Manifest",
    "StationCompat",
]

_SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
_ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$"

_COMPONENT_ALIASES = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}

InputKind = Literal["waveform", "log_peak", "spectrogram", "scalars", "noise", "other"]
OutputKind = Literal["class_probs", "class_logits", "mag_probs", "mag_logits", "other"]
_INPUT_KINDS: tuple[str, ...] = InputKind.__args__
_OUTPUT_KINDS: tuple[str, ...] = OutputKind.__args__
Dtype = Literal["float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool"]
SafeId = Annotated[str, Meta(pattern=_SAFE_ID)]
FileName = Annotated[str, Meta(pattern=SAFE_NAME.pattern)]
Hex64 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="64 lower-case hex digits")]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
Dim = Annotated[int, Meta(gt=0)] | Annotated[str, Meta(min_length=1)]


def _plain(obj: Any) -> Any:
    """The JSON object of a Struct (tuples as lists)."""
    return msgspec.json.decode(msgspec.json.encode(obj))


class _Part(Struct, frozen=True):
    """A part of the manifest; keys it does not declare are ignored (as before: a reader of
    format 1 takes what it knows from each part)."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


class TensorSpec(_Part):
    """One input or output of the model graph. ``shape`` holds ints for fixed dimensions and
    strings for symbolic ones (``"B"`` for the batch)."""

    name: Annotated[str, Meta(min_length=1)]
    shape: tuple[Dim, ...]
    dtype: Dtype
    kind: InputKind | OutputKind = "other"


class ModelFile(_Part):
    """One model file of the bundle; exactly one is the ``default`` the station runs.
    ``sha256`` and ``size`` default to those of the file in ``files``."""

    file: FileName
    format: Literal["onnx", "tflite"]
    precision: Literal["fp32", "fp16", "int8"]
    sha256: Hex64 | None = None
    size: Annotated[int, Meta(ge=0)] | None = None
    default: bool = False


class InputSpec(_Part):
    """What the station must feed: channel order, sampling rate, window length and the
    preprocessing (``window``: :meth:`edge.signal.preprocess.WindowSpec.to_dict`)."""

    channels: Annotated[tuple[Literal["Z", "N", "E"], ...], Meta(min_length=1)]
    sampling_rate: Annotated[float, Meta(gt=0, description="Hz")]
    n_samples: Annotated[int, Meta(gt=0)]
    window: dict[str, Any]

    def __post_init__(self) -> None:
        ch, w, rate = list(self.channels), self.window, self.sampling_rate
        length = w.get("length_s")
        Invalid.check([
            ("channels", f"must be distinct, got {show(ch)}") if len(set(ch)) != len(ch) else None,
            ("window", f"components {show(w['components'])} differ from input.channels {show(ch)}")
            if "components" in w and list(w["components"]) != ch else None,
            ("window", f"sampling_rate {w.get('sampling_rate')} differs from input.sampling_rate {rate}")
            if "sampling_rate" in w and w["sampling_rate"] != rate else None,
            ("n_samples", f"{self.n_samples} differs from window length_s * sampling_rate "
                          f"({length} s * {rate:g} Hz)")
            if isinstance(length, (int, float)) and round(length * rate) != self.n_samples else None,
        ])


class SelfTestSpec(_Part):
    """The self-test: ``file`` (an ``.npz`` with ``input.<name>`` for every graph input and
    ``expected.<name>`` for every graph output), the absolute tolerance per output, and
    whether the top class (argmax of ``class_output``) must match for every row
    (``class_output`` defaults to the first class output)."""

    file: FileName
    atol: dict[str, Annotated[float, Meta(ge=0)]]
    top_class_must_match: bool = True
    class_output: str | None = None


# the declared keys of the open objects (others are kept as they are)
class _MagnitudeBins(Struct):
    min: float
    max: float
    width: Annotated[float, Meta(gt=0)]
    n: Annotated[int, Meta(gt=0)]


class _McDropout(Struct):
    how: Literal["none", "noise_input"]
    passes: Annotated[int, Meta(ge=1)]
    input: str | None = None


class _TrainingData(Struct):
    description: Annotated[str, Meta(pattern=r"\S", description="what the model was trained on")]
    synthetic: bool
    notice: str = ""


class _FileEntry(Struct):
    sha256: Hex64
    size: Annotated[int, Meta(ge=0)]


class Manifest(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The parsed, checked ``manifest.json`` (field meanings: ``docs/bundle.md``)."""

    format: Literal["microseis-bundle/1"]
    name: SafeId
    version: SafeId
    created: Annotated[str, Meta(pattern=_ISO_UTC, description="ISO 8601 UTC, e.g. 2026-05-01T12:00:03Z")]
    description: str = ""
    classes: Annotated[tuple[Annotated[str, Meta(min_length=1)], ...], Meta(min_length=1)]
    magnitude_bins: dict[str, Any]
    input: InputSpec
    inputs: Annotated[tuple[TensorSpec, ...], Meta(min_length=1)]
    outputs: Annotated[tuple[TensorSpec, ...], Meta(min_length=1)]
    mc_dropout: dict[str, Any]
    models: tuple[ModelFile, ...]
    files: dict[FileName, dict[str, Any]]
    training_data: dict[str, Any]
    parity: dict[str, Any] = {}
    selftest: SelfTestSpec
    signer: Annotated[str, Meta(pattern=KEY_ID_PATTERN.pattern, description="a key id")]
    software: str = ""
    #: optional: class -> [low, high] Hz, the band each event class carries its energy in; the
    #: station's default trigger bands (:func:`edge.trigger.bands.station_bands`)
    class_bands: dict[str, tuple[Annotated[float, Meta(gt=0)], Annotated[float, Meta(gt=0)]]] = {}
    #: ``microseis adapt`` provenance (None in other bundles): {name, version, sha256} of the
    #: bundle it was adapted from, and {counts per class, labels_sha256} of the site data
    adapted_from: dict[str, Any] | None = None
    adapted_on: dict[str, Any] | None = None
    extra: dict[str, Any] = {}

    def __post_init__(self) -> None:
        Invalid.check(_open_objects(self))
        Invalid.check(_relations(self))
        # the defaults that come from other fields
        files = self.files
        models = tuple(msgspec.structs.replace(m, sha256=m.sha256 or files[m.file]["sha256"],
                                               size=files[m.file]["size"] if m.size is None else m.size)
                       for m in self.models)
        msgspec.structs.force_setattr(self, "models", models)
        if self.selftest.class_output is None:
            first = next((t.name for t in self.outputs if t.kind.startswith("class")), self.outputs[0].name)
            msgspec.structs.force_setattr(self, "selftest",
                                          msgspec.structs.replace(self.selftest, class_output=first))

    @property
    def default_model(self) -> ModelFile:
        return next(m for m in self.models if m.default)

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data.get("synthetic"))

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        # optional fields: a bundle without them keeps its manifest as it was
        for key in ("class_bands", "adapted_from", "adapted_on"):
            if not d.get(key):
                d.pop(key, None)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """Parse and check a manifest object; :class:`BundleError` names the first bad field."""
        if not isinstance(d, dict):
            raise _bad("must be a JSON object")
        fmt = d.get("format")
        if fmt != BUNDLE_FORMAT:
            raise BundleError(f"unknown bundle format {fmt!r} (this station reads {BUNDLE_FORMAT!r})",
                              "unknown_format")
        value, problems = collect(d, cls)
        if problems:
            p = problems[0]
            if p.kind == "unknown":
                unknown = sorted(str(q.path[0]) for q in problems if q.kind == "unknown" and len(q.path) == 1)
                raise _bad(f"unknown field(s) {', '.join(unknown)} for format {BUNDLE_FORMAT} "
                           "(opaque additions go into 'extra')")
            raise _bad(p.render())
        return value


def _bad(msg: str) -> BundleError:
    return BundleError(f"manifest: {msg}", "bad_manifest")


def _open_objects(m: Manifest) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of the declared keys of the open objects (each keeps its other keys)."""
    out = []
    parts = [("magnitude_bins", m.magnitude_bins, _MagnitudeBins), ("mc_dropout", m.mc_dropout, _McDropout),
             ("training_data", m.training_data, _TrainingData)]
    parts += [(("files", name), meta, _FileEntry) for name, meta in m.files.items()]
    for key, value, cls in parts:
        key = (key,) if isinstance(key, str) else key
        out += [(key + p.path, p.text) for p in collect(value, cls)[1]]
    if m.mc_dropout.get("how") == "random_op":  # what an exporter may try: say what to do instead
        out = [(k, p + " (a graph that samples inside, e.g. RandomUniformLike, cannot be self-tested; feed "
                       "the dropout noise as a graph input: how = 'noise_input')" if k == ("mc_dropout", "how")
                else p) for k, p in out]
    return out


def _relations(m: Manifest) -> list[tuple[Any, str] | None]:
    """The checks that relate fields to each other."""
    mb, mc, td = m.magnitude_bins, m.mc_dropout, m.training_data
    names = {what: [t.name for t in ts] for what, ts in (("inputs", m.inputs), ("outputs", m.outputs))}
    out: list[tuple[Any, str] | None] = [
        ("classes", f"must be distinct, got {show(list(m.classes))}") if len(set(m.classes)) != len(m.classes)
        else None,
        ("magnitude_bins", f"n = {mb['n']} bins of {mb['width']} do not span {mb['min']}..{mb['max']}")
        if not (mb["max"] > mb["min"] and abs((mb["max"] - mb["min"]) / mb["width"] - mb["n"]) < 1e-6) else None,
    ]
    out += [(what, f"has duplicate names {ns}") for what, ns in names.items() if len(set(ns)) != len(ns)]
    out += _provenance(m)
    for c, (lo, hi) in m.class_bands.items():
        if c not in m.classes:
            out.append((("class_bands", c), f"{c!r} is not one of the classes {', '.join(m.classes)}"))
        elif not lo < hi:
            out.append((("class_bands", c), f"must have 0 < low < high (Hz), got [{lo:g}, {hi:g}]"))
    for i, t in enumerate(m.inputs):
        if t.kind not in _INPUT_KINDS:
            out.append((("inputs", i, "kind"), f"must be one of {', '.join(_INPUT_KINDS)}, got {t.kind!r}"))
        if t.kind == "waveform":
            if len(t.shape) != 3:
                out.append(("inputs", f"waveform input {t.name!r} must be (batch, channels, samples), "
                                      f"got {list(t.shape)}"))
            elif isinstance(t.shape[1], int) and t.shape[1] != len(m.input.channels):
                out.append(("inputs", f"waveform input {t.name!r} has {t.shape[1]} channels but "
                                      f"input.channels has {len(m.input.channels)}"))
            elif isinstance(t.shape[2], int) and t.shape[2] != m.input.n_samples:
                out.append(("inputs", f"waveform input {t.name!r} has {t.shape[2]} samples but "
                                      f"input.n_samples is {m.input.n_samples}"))
    for i, t in enumerate(m.outputs):
        if t.kind not in _OUTPUT_KINDS:
            out.append((("outputs", i, "kind"), f"must be one of {', '.join(_OUTPUT_KINDS)}, got {t.kind!r}"))
        want = {"class_probs": len(m.classes), "class_logits": len(m.classes), "mag_probs": mb["n"],
                "mag_logits": mb["n"]}.get(t.kind)
        if want is not None and isinstance(t.shape[-1], int) and t.shape[-1] != want:
            out.append(("outputs", f"{t.name!r} ({t.kind}) has {t.shape[-1]} values per row, expected {want}"))
    noise = {t.name for t in m.inputs if t.kind == "noise"}
    out += [
        ("mc_dropout", f"passes must be 1 when how is 'none', got {mc['passes']}")
        if mc["how"] == "none" and mc["passes"] != 1 else None,
        ("mc_dropout", f"input {mc.get('input')!r} must name a graph input of kind 'noise'")
        if mc["how"] == "noise_input" and mc.get("input") not in noise else None,
        ("mc_dropout", "a graph input of kind 'noise' needs how = 'noise_input'")
        if mc["how"] != "noise_input" and noise else None,
    ]
    out += [("files", f"must not list {f}") for f in m.files if f in (MANIFEST_NAME, SIGNATURE_NAME)]
    for i, f in enumerate(m.models):
        if f.file not in m.files:
            out.append((("models", i, "file"), f"{f.file!r} is not listed in files"))
        elif (f.sha256 or m.files[f.file]["sha256"]) != m.files[f.file]["sha256"] or \
                (m.files[f.file]["size"] if f.size is None else f.size) != m.files[f.file]["size"]:
            out.append((("models", i), f"sha256/size of {f.file} differ from files[{f.file!r}]"))
    defaults = [f.file for f in m.models if f.default]
    out += [
        ("models", f"exactly one model must be the default, got {defaults}") if len(defaults) != 1 else None,
        ("models", "lists a file twice") if len({f.file for f in m.models}) != len(m.models) else None,
        ("training_data", "synthetic is true but notice is empty: a model trained on synthetic data must "
                          "say so plainly") if td["synthetic"] and not str(td.get("notice", "")).strip() else None,
    ]
    st, outputs = m.selftest, [t.name for t in m.outputs]
    out += [
        ("selftest", f"file {st.file!r} is not listed in files") if st.file not in m.files else None,
        *((("selftest", "atol"), f"has no tolerance for output {name!r}") for name in outputs if name not in st.atol),
        (("selftest", "atol"), f"names unknown output(s) {', '.join(sorted(set(st.atol) - set(outputs)))}")
        if set(st.atol) - set(outputs) else None,
        (("selftest", "class_output"), f"{st.class_output!r} is not a graph output")
        if st.class_output is not None and st.class_output not in outputs else None,
    ]
    return out


def _provenance(m: Manifest) -> list[tuple[Any, str] | None]:
    """The optional ``adapted_from`` / ``adapted_on`` fields of an adapted bundle."""
    out: list[tuple[Any, str] | None] = []
    a = m.adapted_from
    if a is not None:
        out += [(("adapted_from", k), "must be a non-empty string") for k in ("name", "version", "sha256")
                if not isinstance(a.get(k), str) or not a.get(k)]
        if isinstance(a.get("sha256"), str) and a["sha256"] and not _HEX64.match(a["sha256"]):
            out.append((("adapted_from", "sha256"), f"must be 64 lower-case hex digits, got {a['sha256']!r}"))
    o = m.adapted_on
    if o is not None:
        counts = o.get("counts")
        if not isinstance(counts, dict) or not all(isinstance(k, str) and isinstance(v, int)
                                                    and not isinstance(v, bool) and v >= 0
                                                    for k, v in counts.items()):
            out.append((("adapted_on", "counts"), "must map class names to event counts"))
        if not isinstance(o.get("labels_sha256"), str) or not _HEX64.match(o["labels_sha256"]):
            out.append((("adapted_on", "labels_sha256"), "must be 64 lower-case hex digits"))
    return out


# --------------------------------------------------------------------------- station


@dataclass(frozen=True)
class StationCompat:
    """What a station can feed a model: its components and the sampling rate its digitizer
    delivers. ``None`` skips that check. Any digitizer rate the resampler can bring to the
    model's rate (:func:`edge.signal.resample.resample_factors`: the reduced fraction of the
    two rates, to 1 mHz, with factors up to 1000) is accepted, as
    :func:`edge.signal.preprocess.preprocess_stream` resamples each event window to the
    model's rate. A *lower* rate is accepted with a note saying what the model cannot see
    (nothing above the digitizer's Nyquist frequency), unless ``allow_upsample`` is False; a
    rate the resampler cannot serve (e.g. 333.3333 Hz) is refused. ``classes``, when given,
    must equal the model's classes (for stations whose consumers rely on them)."""

    channels: tuple[str, ...] | None = ("Z", "N", "E")
    sampling_rate: float | None = None
    allow_downsample: bool = True
    classes: tuple[str, ...] | None = None
    allow_upsample: bool = True

    def check(self, manifest: Manifest) -> list[str]:
        """Raise :class:`BundleError` (code ``incompatible``) naming both values when the
        model's input does not match this station; return notes (downsampling, and for a
        slower digitizer a warning starting with ``"digitizer "``, see :meth:`rate_warning`)."""
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
            try:
                up, down = resample_factors(st, mo)
            except ValueError as exc:
                why = str(exc).split(": ", 1)[-1]  # "the rates (to 1 mHz) make the fraction ..."
                raise BundleError(f"model input does not match the station: the station's "
                                  f"sampling_rate {st:.10g} Hz cannot be resampled to the model's "
                                  f"{mo:g} Hz: {why}", "incompatible") from None
            if up > down and not self.allow_upsample or up < down and not self.allow_downsample:
                raise BundleError(
                    f"model input does not match the station: the model needs {mo:g} Hz but "
                    f"the station samples at {st:g} Hz", "incompatible")
            if up < down:
                notes.append(f"station downsamples {st:g} Hz to the model's {mo:g} Hz")
            elif up > down:
                notes.append(self.rate_warning(manifest)
                             or f"station upsamples {st:g} Hz to the model's {mo:g} Hz")
        if self.classes is not None and tuple(self.classes) != manifest.classes:
            raise BundleError(
                f"model classes {','.join(manifest.classes)} differ from the station's "
                f"{','.join(self.classes)}", "incompatible")
        return notes

    def rate_warning(self, manifest: Manifest) -> str | None:
        """The warning for a digitizer slower than the model whose Nyquist frequency is
        below the top of the model's band (``input.window.freqmax``; the model's Nyquist
        frequency when the window does not say), e.g. ``"digitizer 50 Hz < model 250 Hz: the
        model cannot see above 25 Hz"``; None otherwise."""
        if self.sampling_rate is None:
            return None
        st, mo = float(self.sampling_rate), manifest.input.sampling_rate
        top = manifest.input.window.get("freqmax", 0.5 * mo)
        if not isinstance(top, (int, float)) or isinstance(top, bool):
            top = 0.5 * mo
        if round(st * 1000) >= round(mo * 1000) or 0.5 * st >= min(float(top), 0.5 * mo):
            return None
        return (f"digitizer {st:g} Hz < model {mo:g} Hz: the model cannot see above "
                f"{0.5 * st:g} Hz (upsampled to {mo:g} Hz)")
