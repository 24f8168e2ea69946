"""Turn a training run into a signed model bundle (``microseis export``).

Steps: load the run -> fp32 ONNX (MC-dropout noise as an input) -> static int8 QDQ calibrated
on training windows -> optionally TFLite fp32/int8 (litert-torch) -> parity of every format
against the fp32 graph on a labeled dataset (agreement, macro-F1, magnitude hit rates,
latency, sizes) -> manifest (input contract, training-data description, parity, self-test)
-> ed25519-signed bundle, verified (self-test included) before it is written.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.model.format import BundleError
from edge.model.inference import OnnxRunner, WindowPredictor
from edge.signal.labels import N_MAG_BINS

from .onnx_export import calibration_feeds, export_fp32, quantize_int8
from .parity import FormatResult, format_table, interleaved_latency_ms, parity_report

__all__ = ["ExportOptions", "ExportError", "build_bundle", "SYNTHETIC_NOTICE", "PRETRAINED_SYNTHETIC_NOTICE"]

log = logging.getLogger(__name__)

#: what a bundle trained on synthetic data says, in its manifest and everywhere it is shown
SYNTHETIC_NOTICE = ("Trained on SYNTHETIC data only (microseis synth). Not validated on real "
                    "recordings: re-train or fine-tune on the site's labeled events before "
                    "relying on its classes or magnitudes.")
#: what a bundle fine-tuned on real events from a synthetic-trained model says
PRETRAINED_SYNTHETIC_NOTICE = ("Pre-trained on SYNTHETIC data (microseis synth), then fine-tuned on the "
                               "labeled events its description names. Check it on the site's own "
                               "recordings before relying on its classes or magnitudes.")


#: architectures a station does not run (comparison models), with the reason
NOT_EXPORTED = {"spectrogram_cnn": "the spectrogram CNN is a comparison model and is not exported to "
                                   "stations (use a resnet18_cbam or cnn1d run)"}

class ExportError(ValueError):
    """A run or option that cannot be exported; the message says why."""


@dataclass
class ExportOptions:
    """What ``microseis export`` builds.

    Attributes:
        int8: ship the static int8 ONNX graph as the default model.
        fp32: also ship the fp32 ONNX graph (default: only when ``int8`` is off).
        tflite: also build TFLite fp32 + int8 (needs litert-torch) and ship the int8 one.
        parity_data: labeled dataset folder for the parity report (default: the run's first
            training folder -- optimistic; pass the test split).
        calibration_data: folder of training windows for int8 calibration (default: the
            run's first training folder).
        calibration_events: windows used for calibration.
        parity_events: at most this many events of ``parity_data`` (None: all).
        mc_passes: MC-dropout passes the station runs per event.
        name, version, description: manifest fields.
        latency_repeats: timed forward passes per format.
        calibration_arrays, parity_arrays: already loaded events
            (:class:`trainer.data.EventArrays`) used instead of loading ``calibration_data`` /
            ``parity_data`` (``microseis adapt``: its training part and held-out part); the
            ``*_data`` strings then only name them in the report.
        manifest_fields: extra top-level manifest fields (``adapted_from``, ``adapted_on``:
            docs/bundle.md); only fields the manifest format knows are accepted.
    """

    int8: bool = True
    fp32: bool | None = None
    tflite: bool = False
    parity_data: str | None = None
    calibration_data: str | None = None
    calibration_events: int = 256
    parity_events: int | None = None
    mc_passes: int = 20
    name: str | None = None
    version: str = "0.1.0"
    description: str | None = None
    latency_repeats: int = 300
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    calibration_arrays: Any = None
    parity_arrays: Any = None
    manifest_fields: dict[str, Any] = field(default_factory=dict)


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(f"export: {msg}", file=sys.stderr, flush=True)


def _train_folders(info: Mapping[str, Any]) -> list[str]:
    folders = ((info.get("data") or {}).get("folders") or {}).get("train") or []
    out = []
    for d in folders:
        p = d.get("path") if isinstance(d, Mapping) else d
        if p:
            out.append(str(p))
    return out


class _TorchRunner:
    """The torch model behind the runner interface (the parity report's own reference)."""

    def __init__(self, model) -> None:
        import torch

        from trainer.models.heads import ProbabilityModel

        self.torch = torch
        self.model = model
        self.wrapped = ProbabilityModel(model).eval()
        self.input_names = ["x", "log_peak", "noise"]
        self.output_names = ["class_probs", "mag_probs"]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from trainer.models.layers import set_mc_dropout

        t = self.torch
        set_mc_dropout(self.model, "noise" in feeds)
        try:
            with t.no_grad():
                args = [t.from_numpy(feeds["x"]), t.from_numpy(feeds["log_peak"])]
                noise = t.from_numpy(feeds["noise"]) if "noise" in feeds else None
                c, m = self.wrapped(*args, noise=noise)
        finally:
            set_mc_dropout(self.model, False)
        return {"class_probs": c.numpy(), "mag_probs": m.numpy()}


def build_bundle(run_dir: str | os.PathLike, out: str | os.PathLike, key_path: str | os.PathLike,
                 options: ExportOptions | None = None, progress: bool = True) -> dict[str, Any]:
    """Build, verify and write the bundle; return ``{"path", "manifest", "parity", "table"}``.

    Raises:
        ExportError: the run, the data or an option is unusable (message says which).
        edge.model.format.BundleError: the finished bundle failed its own verification (nothing
            is written then).
    """
    from edge.signal.preprocess import WindowSpec
    from export.bundle_writer import make_selftest, write_bundle
    from export.signing import load_private_key
    from trainer.data import load_dataset
    from trainer.run import RunError, load_run

    opts = options or ExportOptions()
    if not opts.int8 and opts.fp32 is False:
        raise ExportError("nothing to ship: --no-fp32 without --int8")
    try:
        key = load_private_key(key_path)
    except (OSError, ValueError) as exc:
        raise ExportError(f"signing key {key_path}: {exc}") from None
    try:
        model, info = load_run(run_dir)
    except RunError as exc:
        raise ExportError(str(exc)) from None
    arch = model.config.name
    if arch in NOT_EXPORTED:
        raise ExportError(f"{run_dir}: {NOT_EXPORTED[arch]}")
    spec = WindowSpec.from_dict(info["window"])
    classes = tuple(info["classes"])
    n = spec.n_samples
    noise_dim = int(model.noise_dim)
    synthetic = bool(info.get("synthetic"))

    folders = _train_folders(info)
    calib_dir = opts.calibration_data or (folders[0] if folders else None)
    parity_dir = opts.parity_data or calib_dir
    if calib_dir is None:
        raise ExportError(f"{run_dir}: run info names no training folder; pass --calibration DIR")
    for what, d, given in (("calibration", calib_dir, opts.calibration_arrays),
                           ("parity", parity_dir, opts.parity_arrays)):
        if given is None and not Path(d, "labels.csv").is_file():
            raise ExportError(f"{what} data {d}: not a dataset folder (no labels.csv)")

    if opts.calibration_arrays is not None:
        cal = opts.calibration_arrays
    else:
        _say(f"loading calibration windows from {calib_dir}", progress)
        cal, _ = load_dataset(calib_dir, spec, classes, cache_dir=opts.cache_dir, progress=progress)
    if len(cal) == 0:
        raise ExportError(f"calibration data {calib_dir}: no usable events")
    if opts.parity_arrays is not None:
        par = opts.parity_arrays
    elif opts.calibration_arrays is None and Path(parity_dir).resolve() == Path(calib_dir).resolve():
        par = cal
    else:
        _say(f"loading parity events from {parity_dir}", progress)
        par, _ = load_dataset(parity_dir, spec, classes, cache_dir=opts.cache_dir, progress=progress)
    if opts.parity_events:
        par = par.subset(np.arange(min(len(par), int(opts.parity_events))))
    if len(par) == 0:
        raise ExportError(f"parity data {parity_dir}: no usable events")

    _say(f"exporting {arch} to ONNX fp32 (noise input {noise_dim})", progress)
    fp32 = export_fp32(model, n)
    files: dict[str, bytes] = {"model.fp32.onnx": fp32}
    if opts.int8:
        _say(f"quantizing to int8 (static QDQ, {min(opts.calibration_events, len(cal))} calibration windows)",
             progress)
        files["model.int8.onnx"] = quantize_int8(
            fp32, calibration_feeds(cal.x, cal.log_peak, noise_dim, n=opts.calibration_events))
    if opts.tflite:
        files.update(_build_tflite(model, n, cal, noise_dim, opts, progress))

    # --- parity: every format through the station's own predictor, same noise draws
    def predictor(runner) -> WindowPredictor:
        return WindowPredictor(runner, noise="noise", noise_dim=noise_dim, n_samples=n,
                               n_channels=len(spec.components), mc_passes=opts.mc_passes)

    single = {"x": par.x[:1].astype(np.float32), "log_peak": par.log_peak[:1].reshape(1, 1).astype(np.float32),
              "noise": np.random.default_rng(0).random((1, noise_dim), dtype=np.float32)}
    runners, all_preds = {}, {}
    for fname, body in files.items():
        label = _label(fname)
        _say(f"parity: {label} on {len(par)} events x {opts.mc_passes} passes", progress)
        runners[label] = OnnxRunner(body, threads=1) if fname.endswith(".onnx") else _tflite_runner(body)
        all_preds[label] = predictor(runners[label]).predict(par.x, par.log_peak)
    _say(f"latency: {opts.latency_repeats} single-thread passes per format, interleaved", progress)
    lats = interleaved_latency_ms({k: (lambda r=r: r.run(single)) for k, r in runners.items()},
                                  repeats=opts.latency_repeats)
    results: dict[str, FormatResult] = {
        _label(f): FormatResult(_label(f), f, len(b), all_preds[_label(f)], lats[_label(f)])
        for f, b in files.items()}
    torch_preds = predictor(_TorchRunner(model)).predict(par.x, par.log_peak)
    report = parity_report(results, "onnx-fp32", par.y, par.magnitude, classes, str(parity_dir),
                           torch_ref=torch_preds, mc_passes=opts.mc_passes)
    table = format_table(report)
    _say("\n" + table, progress)

    # --- what ships
    ship: list[str] = []
    if opts.int8:
        ship.append("model.int8.onnx")
    if opts.fp32 or (opts.fp32 is None and not opts.int8):
        ship.append("model.fp32.onnx")
    if opts.tflite:
        ship.append("model.int8.tflite")
    default = ship[0]
    ship_files = {f: files[f] for f in ship}

    # --- self-test: 4 real windows with a clear top class, fixed noise, expected = default model
    sel = _selftest_rows(results[_label(default)].preds, k=4)
    st_in = {"x": par.x[sel].astype(np.float32), "log_peak": par.log_peak[sel].reshape(-1, 1).astype(np.float32),
             "noise": np.random.default_rng(12345).random((len(sel), noise_dim), dtype=np.float32)}
    default_runner = OnnxRunner(files[default]) if default.endswith(".onnx") else _tflite_runner(files[default])
    st_out = default_runner.run(st_in)
    selftest = make_selftest(st_in, {k: np.asarray(v, np.float32) for k, v in st_out.items()})

    dropout = float(model.config.to_dict().get("dropout") or 0.0)
    train_desc = info.get("data") or {}
    name = opts.name or f"microseis-{arch.replace('_', '-')}"
    description = opts.description or (
        f"{arch} ({sum(p.numel() for p in model.parameters()):,} parameters), "
        f"{'int8 QDQ' if opts.int8 else 'fp32'} ONNX, MC-dropout heads ({opts.mc_passes} passes)"
        + (" -- trained on synthetic data" if synthetic else ""))
    manifest = {
        "name": name,
        "version": opts.version,
        "description": description,
        "classes": list(classes),
        "magnitude_bins": {k: v for k, v in info["magnitude_bins"].items() if k in ("min", "max", "width", "n")},
        "input": {"channels": list(spec.components), "sampling_rate": spec.sampling_rate,
                  "n_samples": n, "window": spec.to_dict()},
        "inputs": [{"name": "x", "shape": ["B", len(spec.components), n], "dtype": "float32", "kind": "waveform"},
                   {"name": "log_peak", "shape": ["B", 1], "dtype": "float32", "kind": "log_peak"},
                   {"name": "noise", "shape": ["B", noise_dim], "dtype": "float32", "kind": "noise"}],
        "outputs": [{"name": "class_probs", "shape": ["B", len(classes)], "dtype": "float32", "kind": "class_probs"},
                    {"name": "mag_probs", "shape": ["B", N_MAG_BINS], "dtype": "float32", "kind": "mag_probs"}],
        "mc_dropout": {"how": "noise_input", "input": "noise", "passes": int(opts.mc_passes), "p": dropout},
        "models": [{"file": f, "format": "onnx" if f.endswith(".onnx") else "tflite",
                    "precision": "int8" if ".int8." in f else "fp32", "default": f == default} for f in ship],
        "training_data": {
            **_describe_training(train_desc, synthetic),
            "synthetic": synthetic,
            "units": train_desc.get("units"),
            "counts": (train_desc.get("counts") or {}).get("train"),
            **({"log_peak_quantiles": train_desc["log_peak_quantiles"]}
               if train_desc.get("log_peak_quantiles") else {}),
        },
        "parity": report,
        "selftest": {"atol": {"class_probs": 0.05, "mag_probs": 0.05}, "top_class_must_match": True,
                     "class_output": "class_probs"},
        "software": f"microseis-edge {__version__}",
        "extra": {"architecture": model.config.to_dict(), "run": {
            "created": info.get("created"), "best_epoch": info.get("best_epoch"),
            "validation": info.get("validation")}, **opts.extra},
        **opts.manifest_fields,
    }
    _say(f"signing and verifying {out}", progress)
    try:
        path = write_bundle(out, manifest, ship_files, selftest, key)
    except ValueError as exc:
        if isinstance(exc, BundleError):
            raise
        raise ExportError(str(exc)) from None
    return {"path": str(path), "size": path.stat().st_size, "manifest": manifest, "parity": report,
            "table": table, "shipped": ship}


def _label(fname: str) -> str:
    fmt = "onnx" if fname.endswith(".onnx") else "tflite"
    return f"{fmt}-{'int8' if '.int8.' in fname else 'fp32'}"


def _selftest_rows(preds, k: int = 8) -> np.ndarray:
    """Rows whose top class leads the runner-up clearly (robust on other CPUs), one per
    predicted class first, then by margin."""
    p = np.sort(preds.probs, axis=1)
    margin = p[:, -1] - p[:, -2] if p.shape[1] > 1 else p[:, -1]
    order = np.argsort(-margin, kind="stable")
    chosen: list[int] = []
    for c in np.unique(preds.pred):
        rows = [i for i in order if preds.pred[i] == c and margin[i] > 0.3]
        if rows:
            chosen.append(int(rows[0]))
    for i in order:
        if len(chosen) >= k:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return np.array(sorted(chosen[:k]), dtype=int)


def _describe_training(data: Mapping[str, Any], synthetic: bool) -> dict[str, str]:
    """``description``: one line naming each training folder, with the generator's events and
    seed when the folder was made by ``microseis synth``; ``notice`` of a synthetic run: trained
    on synthetic folders, or synthetic only through the model it started from (fine-tuned)."""
    parts, synth_folders = [], False
    for d in ((data.get("folders") or {}).get("train") or []):
        if not isinstance(d, Mapping):
            continue
        gen = d.get("generator") or {}
        bits = []
        if d.get("synthetic"):
            synth_folders = True
            bits.append("microseis synth")
        for k in ("n_events", "seed"):
            if gen.get(k) is not None:
                bits.append(f"{k.replace('n_', '')} {gen[k]}")
        name = Path(str(d.get("path", "?"))).name
        parts.append(name + (f" ({', '.join(bits)})" if bits else ""))
    text = "; ".join(parts) or "unknown"
    if not synthetic:
        return {"description": text}
    if synth_folders:
        return {"description": "SYNTHETIC: " + text, "notice": SYNTHETIC_NOTICE}
    return {"description": "fine-tuned from a SYNTHETIC-trained model on: " + text,
            "notice": PRETRAINED_SYNTHETIC_NOTICE}


def _tflite_runner(body: bytes):
    from edge.model.tflite import TfliteRunner

    return TfliteRunner(body, threads=1)


def _build_tflite(model, n: int, cal, noise_dim: int, opts: ExportOptions,
                  progress: bool) -> dict[str, bytes]:
    try:
        from export.tflite_export import export_tflite
    except ImportError as exc:
        raise ExportError(f"--tflite: {exc}") from None
    out: dict[str, bytes] = {}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="microseis-tflite-") as tmp:
        for int8 in (False, True):
            _say(f"TFLite {'int8' if int8 else 'fp32'} (litert-torch)", progress)
            path = Path(tmp, f"model.{'int8' if int8 else 'fp32'}.tflite")
            try:
                export_tflite(model, path, n_samples=n, int8=int8, calibration=(cal.x, cal.log_peak),
                              calibration_events=opts.calibration_events)
            except ImportError as exc:
                raise ExportError(f"--tflite: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
                raise ExportError(f"--tflite: litert-torch could not convert the model "
                                  f"({'int8' if int8 else 'fp32'}): {type(exc).__name__}: {exc}") from None
            out[path.name] = path.read_bytes()
    return out
