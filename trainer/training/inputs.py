"""Training data: labeled folders loaded and checked, model inputs (waveforms or
spectrograms), soft magnitude targets and augmentation.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.signal.dataset import LABELS_FILE, DatasetError
from edge.signal.labels import CLASSES, MAG_BIN_CENTRES, MAG_BIN_WIDTH, MAG_MAX, MAG_MIN, N_MAG_BINS
from edge.signal.preprocess import WindowSpec
from edge.signal.spectrogram import spectrogram, spectrogram_shape
from trainer.config import TrainError
from trainer.data import EventArrays, dataset_description, load_dataset

__all__ = [
    "Folders",
    "check_folder",
    "load_folders",
    "prepare_inputs",
    "magnitude_targets",
    "augment_waveforms",
    "augment_spectrograms",
    "print_stderr",
]


@dataclass
class Folders:
    arrays: EventArrays
    #: (resolved folder, path) of every row
    sources: list[tuple[str, str]]
    descriptions: list[dict]


def print_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check_folder(folder: str | Path, what: str) -> Path:
    p = Path(folder)
    if not p.exists():
        raise TrainError(f"{what} {folder}: no such folder")
    if not p.is_dir():
        raise TrainError(f"{what} {folder}: not a folder")
    if not (p / LABELS_FILE).is_file():
        raise TrainError(f"{what} {folder}: no {LABELS_FILE} in it")
    return p


def load_folders(folders: Sequence[str | Path], what: str, spec: WindowSpec, *,
                  cache_dir, use_cache: bool, progress: bool, say: Callable[[str], None]) -> Folders:
    parts, sources, descs = [], [], []
    for folder in folders:
        p = check_folder(folder, what)
        try:
            arrays, errors = load_dataset(p, spec, CLASSES, cache_dir=cache_dir, use_cache=use_cache,
                                          require_labels=False, progress=progress)
        except (DatasetError, OSError, ValueError) as exc:
            raise TrainError(f"{what} {folder}: {exc}") from None
        if errors:
            say(f"{folder}: {len(errors)} row(s) of {LABELS_FILE} skipped, e.g.:")
            for e in errors[:5]:
                say(f"  {folder}/{e}")
        finite = arrays.finite()
        if not finite.all():
            bad = np.flatnonzero(~finite)
            say(f"{folder}: {bad.size} event(s) with NaN/inf input dropped, e.g. "
                + ", ".join(f"{LABELS_FILE} line {arrays.lines[i]} ({arrays.paths[i]})" for i in bad[:3]))
            arrays = arrays.subset(finite)
        desc = dataset_description(p)
        desc.update(events=len(arrays), labeled=int(np.sum(arrays.y >= 0)),
                    counts=arrays.class_counts(), row_errors=len(errors), units=arrays.units)
        resolved = str(p.resolve())
        parts.append(arrays)
        sources += [(resolved, path) for path in arrays.paths]
        descs.append(desc)
    nonempty = [a for a in parts if len(a)]
    units = {a.units for a in nonempty}
    if len(units) > 1:
        raise TrainError(f"{what} folders mix amplitude units ({', '.join(sorted(units))}): "
                         "give every folder a stations.xml, or none")
    arrays = EventArrays.concatenate(parts)
    if nonempty:
        arrays.units = nonempty[0].units
    return Folders(arrays, sources, descs)


def prepare_inputs(model_name: str, x: np.ndarray, spec: WindowSpec, chunk: int = 256) -> np.ndarray:
    """Model input array: the waveforms themselves, or (spectrogram_cnn) their spectrograms."""
    if model_name != "spectrogram_cnn":
        return np.ascontiguousarray(x, dtype=np.float32)
    out = [spectrogram(x[i:i + chunk], spec.sampling_rate) for i in range(0, len(x), chunk)]
    if not out:
        f, t = spectrogram_shape(spec.n_samples, spec.sampling_rate)
        return np.zeros((0, x.shape[1], f, t), np.float32)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def magnitude_targets(m: np.ndarray, sigma: float) -> np.ndarray:
    """(N, 30) float32 soft targets over the magnitude bins; rows of NaN magnitudes are 0.

    A Gaussian of ``sigma`` magnitude units around ML (clipped into 0..3) evaluated at the bin
    centres and normalised; ``sigma == 0`` puts all the mass on ML's bin.
    """
    m = np.asarray(m, np.float64)
    out = np.zeros((m.size, N_MAG_BINS), np.float32)
    ok = np.isfinite(m)
    if not ok.any():
        return out
    mc = np.clip(m[ok], MAG_MIN, MAG_MAX)
    if sigma <= 0:
        idx = np.clip(np.floor((mc - MAG_MIN) / MAG_BIN_WIDTH + 1e-9), 0, N_MAG_BINS - 1).astype(int)
        q = np.zeros((mc.size, N_MAG_BINS))
        q[np.arange(mc.size), idx] = 1.0
    else:
        q = np.exp(-0.5 * ((MAG_BIN_CENTRES[None, :] - mc[:, None]) / sigma) ** 2)
        q /= q.sum(axis=1, keepdims=True)
    out[ok] = q
    return out


def augment_waveforms(x: np.ndarray, rng: np.random.Generator, sampling_rate: float,
                      shift_s: float = 0.3, flip: bool = True, noise_std: float = 0.0,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physics-preserving augmentation of normalised windows ``x`` (B, C, n).

    * time shift by an integer number of samples in ``[-shift_s, shift_s]`` (positive = the
      event moves later), zero padded -- an imprecise trigger time;
    * polarity flip of all components together (probability 1/2) -- the same event seen with
      the opposite first motion;
    * optional white noise of ``noise_std`` times the window peak.

    No amplitude scaling: the amplitude lives in ``log_peak``, which stays as it is.
    Returns ``(x_aug, shift in seconds (B,), sign (B,))``.
    """
    b, _, n = x.shape
    kmax = int(round(shift_s * sampling_rate))
    shifts = rng.integers(-kmax, kmax + 1, size=b) if kmax > 0 else np.zeros(b, np.int64)
    signs = np.where(rng.random(b) < 0.5, -1.0, 1.0).astype(np.float32) if flip else np.ones(b, np.float32)
    out = np.zeros_like(x)
    for i, k in enumerate(shifts):
        k = int(min(max(k, -n), n))
        if k >= 0:
            out[i, :, k:] = x[i, :, :n - k]
        else:
            out[i, :, :n + k] = x[i, :, -k:]
    out *= signs[:, None, None]
    if noise_std > 0:
        out += rng.normal(0.0, noise_std, size=out.shape).astype(np.float32)
    return out, shifts / float(sampling_rate), signs


def augment_spectrograms(s: np.ndarray, rng: np.random.Generator, frames: int) -> np.ndarray:
    """Time shift of spectrogram images (B, C, F, T) by whole frames, zero filled."""
    if frames <= 0:
        return s
    out = np.zeros_like(s)
    t = s.shape[-1]
    for i, k in enumerate(rng.integers(-frames, frames + 1, size=s.shape[0])):
        k = int(k)
        if k >= 0:
            out[i, ..., k:] = s[i, ..., :t - k]
        else:
            out[i, ..., :t + k] = s[i, ..., -k:]
    return out
