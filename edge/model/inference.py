"""Run a verified model bundle on event windows: class probabilities, MC-dropout uncertainty and
the learned magnitude -- on the station's lean runtime (ONNX Runtime, or LiteRT for TFLite).

:class:`EventClassifier` is what the daemon, ``microseis predict`` and ``microseis evaluate
--model BUNDLE`` use, so all three report the same numbers for the same window::

    clf = EventClassifier.load()                      # the shipped default bundle
    window = preprocess_stream(st, trigger_on, clf.window_spec, sensitivity=...)
    pred = clf.predict_window(window)                 # Predictions with one row

A bundle's graph takes ``x`` (B, 3, n) normalised waveforms, ``log_peak`` (B, 1) and, with
MC-dropout (``mc_dropout.how = "noise_input"``), ``noise`` (B, D) uniform [0, 1): each of the
``passes`` forward passes gets a fresh noise draw (from a seeded generator, so the same
event gives the same numbers), and :func:`edge.model.predictions.predictions_from_samples`
summarises them exactly as the trainer does.

``log_peak`` is in the units the model was trained on (``training_data.units``, m/s for the
shipped bundle). A window in other units -- counts, where the station has neither StationXML
nor sensitivity -- has no such amplitude: it is never fed as if it were one. Where the
bundle records the quantiles of its training windows' ``log_peak``
(``training_data.log_peak_quantiles``, :data:`LOG_PEAK_QUANTILES`), the unknown amplitude is
marginalised: MC pass ``p`` takes quantile ``p mod K``, so the class probabilities average
over the amplitudes the model was trained on and the uncertainty includes the missing
calibration. Without them (older bundles) the window's own ``log_peak`` is used, as before.

No torch here.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.model.format import DEFAULT_BUNDLE, BundleError
from edge.model.keys import default_trusted_keys, load_trusted_keys
from edge.model.manifest import ModelFile, StationCompat
from edge.model.predictions import Predictions, predictions_from_samples
from edge.model.runtime import open_onnx_session
from edge.model.verify import VerifiedBundle, verify_bundle
from edge.signal.preprocess import LOG_PEAK_QUANTILES, Window, WindowSpec, normalize

__all__ = ["ModelRunner", "OnnxRunner", "WindowPredictor", "EventClassifier", "ModelInfo", "RUNTIMES",
           "LOG_PEAK_QUANTILES", "select_model_file"]

#: runtimes a station can run a bundle with
RUNTIMES = ("onnx", "tflite")


class ModelRunner(Protocol):
    """One loaded model graph: named float inputs in, named outputs out."""

    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OnnxRunner:
    """An ONNX Runtime session on the CPU with ``threads`` intra-op threads."""

    def __init__(self, model: bytes | str | os.PathLike, threads: int = 1) -> None:
        self.session = open_onnx_session(model, threads=threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {k: v for k, v in inputs.items() if k in self.input_names}
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))


def _log_peak_prior(value: Any) -> list[float] | None:
    """``training_data.log_peak_quantiles`` checked: absent -> None; else 1-32 finite numbers
    within -30..30 (log10 of an amplitude), or :class:`BundleError` naming the field."""
    if value is None:
        return None
    ok = (isinstance(value, list) and 1 <= len(value) <= 32
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and -30.0 <= v <= 30.0 for v in value))
    if not ok:
        raise BundleError("manifest: training_data.log_peak_quantiles: must be a list of 1-32 numbers "
                          f"in -30..30 (log10 of the training amplitudes), got {str(value)[:80]}", "manifest")
    return [float(v) for v in value]


def select_model_file(bundle: VerifiedBundle, runtime: str = "onnx") -> ModelFile:
    """The model file to run with ``runtime``: the bundle's default model when it has that
    format, else its int8 file of that format, else any file of that format."""
    if runtime not in RUNTIMES:
        raise BundleError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}", "runtime")
    models = bundle.manifest.models
    default = bundle.manifest.default_model
    if default.format == runtime:
        return default
    ranked = sorted((m for m in models if m.format == runtime), key=lambda m: m.precision != "int8")
    if not ranked:
        have = ", ".join(sorted({m.format for m in models}))
        raise BundleError(f"bundle {bundle.manifest.name} {bundle.manifest.version} has no "
                          f"{runtime} model (it has: {have})", "runtime")
    return ranked[0]


def _make_runner(body: bytes, fmt: str, threads: int) -> ModelRunner:
    if fmt == "onnx":
        return OnnxRunner(body, threads=threads)
    from edge.model.tflite import TfliteRunner  # ai-edge-litert / tflite-runtime, optional

    return TfliteRunner(body, threads=threads)


@dataclass(frozen=True)
class ModelInfo:
    """What an event message says about the model (``model`` field of ``end``)."""

    name: str
    version: str
    sha256: str
    file: str
    format: str
    precision: str
    synthetic: bool
    #: sha256 of the bundle's manifest.json: what the station compares pushes against
    identity: str = ""

    def to_message(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


class WindowPredictor:
    """The MC-dropout loop over one model graph (any :class:`ModelRunner`).

    Args:
        runner: the loaded graph.
        waveform, log_peak, noise: names of the graph inputs (``log_peak``/``noise`` None
            when the graph has none).
        noise_dim: width D of the noise input.
        class_output, mag_output: output names (``mag_output`` None without magnitude).
        n_channels, n_samples: the window shape the graph takes.
        mc_passes: passes per window (1 without a noise input).
        seed: each window ``i`` of a :meth:`predict` call draws its noise from
            ``default_rng([seed, i])``: reproducible, independent of what ran before.
        batch: graph rows per call (a window's passes run in one call).
        log_peak_prior: ``log_peak`` values (log10 of the training units; finite, checked by
            :class:`EventClassifier` from the manifest) that a window whose amplitude is unknown
            (``log_peak`` NaN) takes, pass ``p`` value ``p mod K``.
    """

    def __init__(self, runner: ModelRunner, *, waveform: str = "x", log_peak: str | None = "log_peak",
                 noise: str | None = None, noise_dim: int = 0, class_output: str = "class_probs",
                 mag_output: str | None = "mag_probs", n_channels: int = 3, n_samples: int = 3000,
                 mc_passes: int = 1, seed: int = 0, batch: int = 64,
                 log_peak_prior: Sequence[float] | None = None) -> None:
        self.runner = runner
        self.waveform, self.log_peak, self.noise = waveform, log_peak, noise
        self.noise_dim = int(noise_dim) if noise else 0
        self.class_output, self.mag_output = class_output, mag_output
        self.shape = (int(n_channels), int(n_samples))
        self.mc_passes = max(1, int(mc_passes)) if noise else 1
        self.seed = int(seed)
        self.batch = max(1, int(batch))
        self.log_peak_prior = (np.asarray(log_peak_prior, np.float32)
                               if log_peak_prior is not None and len(log_peak_prior) else None)

    def noise_for(self, first: int, n: int) -> np.ndarray:
        """(passes, n, D) noise of windows ``first .. first + n - 1``."""
        t = self.mc_passes
        noise = np.empty((t, n, self.noise_dim), np.float32)
        for i in range(n):
            noise[:, i] = np.random.default_rng([self.seed, first + i]).random(
                (t, self.noise_dim), dtype=np.float32)
        return noise

    def predict(self, x: np.ndarray, log_peak: np.ndarray) -> Predictions:
        """Predict normalised windows ``x`` (N, 3, n) float32 (each divided by its peak) with
        ``log_peak`` (N,) log10 of the peaks (m/s, or counts for a count-trained model); NaN =
        amplitude unknown: marginalised over ``log_peak_prior`` (required then)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        lp = np.asarray(log_peak, dtype=np.float32).reshape(-1, 1)
        if x.ndim != 3 or x.shape[0] != lp.shape[0]:
            raise ValueError(f"x must be (N, channels, samples) with one log_peak per window, "
                             f"got {x.shape} and {lp.shape}")
        if np.isnan(lp).any() and self.log_peak and self.log_peak_prior is None:
            raise ValueError("log_peak NaN (amplitude unknown) needs the bundle's log_peak quantiles")
        if x.shape[1:] != self.shape:
            raise ValueError(f"the model takes windows of shape {self.shape}, got {x.shape[1:]}")
        t = self.mc_passes
        per_call = max(1, self.batch // t)
        parts: list[Predictions] = []
        for s in range(0, x.shape[0], per_call):
            xb, lb = x[s:s + per_call], lp[s:s + per_call]
            n = xb.shape[0]
            # rows are pass-major: row p * n + i = window i, pass p
            feeds = {self.waveform: np.tile(xb, (t, 1, 1))}
            if self.log_peak:
                feeds[self.log_peak] = self._log_peak_rows(lb, t)
            if self.noise:
                feeds[self.noise] = self.noise_for(s, n).reshape(t * n, self.noise_dim)
            out = self.runner.run(feeds)
            cp = np.asarray(out[self.class_output], np.float64).reshape(t, n, -1)
            mp = (np.asarray(out[self.mag_output], np.float64).reshape(t, n, -1)
                  if self.mag_output and self.mag_output in out else None)
            parts.append(predictions_from_samples(cp, mp))
        if not parts:
            return predictions_from_samples(np.zeros((1, 0, 1)))
        return Predictions.concatenate(parts)

    def _log_peak_rows(self, lb: np.ndarray, t: int) -> np.ndarray:
        """(t * n, 1) pass-major ``log_peak`` rows; an unknown (NaN) one takes prior value
        ``p mod K`` in pass ``p``."""
        rows = np.tile(lb, (t, 1)).reshape(t, -1)
        unknown = np.isnan(lb[:, 0])
        if unknown.any():
            prior = self.log_peak_prior
            assert prior is not None
            rows[:, unknown] = prior[np.arange(t) % prior.size][:, None]
        return rows.reshape(-1, 1)


class EventClassifier:
    """Classify preprocessed event windows with a verified bundle.

    Args:
        bundle: a :class:`~edge.model.verify.VerifiedBundle` (never an unverified file).
        runtime: ``"onnx"`` (default) or ``"tflite"``.
        threads: intra-op threads of the runtime (1 on a station: one core for the model).
        mc_passes: MC-dropout passes; ``None`` = the bundle's ``mc_dropout.passes``.
        seed, batch: see :class:`WindowPredictor`.
    """

    def __init__(self, bundle: VerifiedBundle, runtime: str = "onnx", threads: int = 1,
                 mc_passes: int | None = None, seed: int = 0, batch: int = 64) -> None:
        self.bundle = bundle
        m = bundle.manifest
        self.model_file = select_model_file(bundle, runtime)
        self.runtime = runtime
        runner = _make_runner(bundle.file(self.model_file.file), self.model_file.format, threads)
        self.classes: tuple[str, ...] = tuple(m.classes)
        self.window_spec = WindowSpec.from_dict(m.input.window)
        kinds = {t.kind: t for t in m.inputs}
        outs = {t.kind: t.name for t in m.outputs}
        if "waveform" not in kinds or "class_probs" not in outs:
            raise BundleError("bundle graph needs a waveform input and a class_probs output", "compat")
        noise = kinds.get("noise")
        passes = mc_passes if mc_passes is not None else int(m.mc_dropout.get("passes", 1))
        #: units of the training windows' amplitude (``log_peak``): "m/s", "counts" or None
        self.input_units: str | None = m.training_data.get("units")
        prior = _log_peak_prior(m.training_data.get("log_peak_quantiles"))
        self.predictor = WindowPredictor(
            runner, waveform=kinds["waveform"].name,
            log_peak=kinds["log_peak"].name if "log_peak" in kinds else None,
            noise=noise.name if noise is not None else None,
            noise_dim=int(noise.shape[-1]) if noise is not None else 0,
            class_output=outs["class_probs"], mag_output=outs.get("mag_probs"),
            n_channels=len(self.window_spec.components), n_samples=self.window_spec.n_samples,
            mc_passes=passes, seed=seed, batch=batch,
            log_peak_prior=prior)
        self.mc_passes = self.predictor.mc_passes
        self.info = ModelInfo(name=m.name, version=m.version, sha256=bundle.sha256,
                              file=self.model_file.file, format=self.model_file.format,
                              precision=self.model_file.precision, synthetic=m.synthetic,
                              identity=bundle.identity)

    # ----------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, trusted_keys: Iterable[Any] | None = None,
             station: StationCompat | None = None, **kw: Any) -> EventClassifier:
        """Verify the bundle at ``path`` (default: the shipped ``edge/models/default.msb``)
        against ``trusted_keys`` (default: the shipped ``edge/keys/*.pub``) and the
        station's channels/rate, then load it. Raises :class:`~edge.model.format.BundleError`."""
        path = Path(path) if path else DEFAULT_BUNDLE
        if not path.is_file():
            hint = (" (the shipped default bundle is missing: reinstall the package or pass "
                    "--model)") if path == DEFAULT_BUNDLE else ""
            raise BundleError(f"{path}: no such bundle file{hint}", "missing")
        keys = load_trusted_keys(trusted_keys) if trusted_keys else default_trusted_keys()
        bundle = verify_bundle(path, keys, station=station)
        bundle.path = str(path)
        return cls(bundle, **kw)

    # ----------------------------------------------------------------------- running
    def predict(self, x: np.ndarray, log_peak: np.ndarray) -> Predictions:
        """See :meth:`WindowPredictor.predict`."""
        return self.predictor.predict(x, log_peak)

    @property
    def marginalises_amplitude(self) -> bool:
        """True when the bundle records its training amplitudes (windows of other units are
        then classified over them, not with a number in the wrong units)."""
        return self.predictor.log_peak_prior is not None

    def model_input(self, window: Window) -> tuple[np.ndarray, float]:
        """``(x, log_peak)`` of a window for this model: ``log_peak`` NaN (amplitude unknown,
        marginalised) where the window's units are not the model's and the bundle allows it."""
        x, log_peak = normalize(window.data)
        if self.input_units and window.units != self.input_units and self.marginalises_amplitude:
            log_peak = float("nan")
        return x, log_peak

    def predict_window(self, window: Window) -> Predictions:
        """One preprocessed :class:`~edge.signal.preprocess.Window` -> one-row :class:`Predictions`."""
        x, log_peak = self.model_input(window)
        return self.predict(x[None], np.array([log_peak], np.float32))

    def row(self, pred: Predictions, i: int = 0) -> dict[str, Any]:
        """Row ``i`` of ``pred`` as plain values: class, probabilities (by name), uncertainty,
        mutual information, magnitude (learned; None without a magnitude head)."""
        probs = {c: float(pred.probs[i, k]) for k, c in enumerate(self.classes)}
        mag = None
        if pred.mag_probs is not None and np.isfinite(pred.magnitude[i]):
            mag = round(float(pred.magnitude[i]), 2)
        return {"class": self.classes[int(pred.pred[i])], "probabilities": probs,
                "uncertainty": float(pred.uncertainty[i]),
                "mutual_information": float(pred.mutual_information[i]), "magnitude": mag}
