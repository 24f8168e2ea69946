"""Float weights that belong to a signed int8 bundle: where ``microseis adapt`` starts from.

A bundle ships only the int8 graph; fine-tuning needs the float weights it was exported from.
They live in a *weights folder*, a run directory (:mod:`trainer.run`: ``model.pt`` with the
model config and run info, ``run.json``) plus ``bundle.json``, which ties them to exactly
one bundle::

    bundle.json   {"bundle_sha256": sha256 of the whole .msb file, "bundle_name", "bundle_version",
                   "model_sha256": sha256 of model.pt, "classes", "architecture", "created"}

Where :func:`find_float_weights` looks for a bundle's weights:

1. ``<bundle without .msb>.weights/`` beside the bundle (``microseis adapt`` writes one for
   every bundle it makes, so an adapted bundle can be adapted again);
2. the package data ``trainer/models/default/`` (the float weights of the shipped
   ``edge/models/default.msb``; ``bench/default_bundle.py`` writes them with
   :func:`write_float_weights` whenever it regenerates the bundle).

A folder whose ``bundle_sha256`` is not the bundle's sha256, or whose ``model.pt`` does not
match ``model_sha256``, is refused: fine-tuning other weights than the bundle's would report
a "before" that is not the model on the station.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from edge.model.format import DEFAULT_BUNDLE
from edge.model.verify import inspect_bundle
from trainer.run import MODEL_FILE, RUN_FILE

__all__ = ["WeightsError", "BUNDLE_INFO_FILE", "DEFAULT_WEIGHTS_DIR", "weights_dir_for",
           "write_float_weights", "check_float_weights", "find_float_weights", "file_sha256"]

#: the file of a weights folder that names its bundle
BUNDLE_INFO_FILE = "bundle.json"
#: package data: the float weights of the shipped default bundle
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "models" / "default"
#: files copied from the run directory into a weights folder (model.pt and run.json required);
#: not split.json: it names every training file by its path on the training machine, which is
#: of no use where the weights are installed (and was 0.7 MB of package data)
_RUN_FILES = (MODEL_FILE, RUN_FILE, "history.json", "metrics.json")


class WeightsError(ValueError):
    """Float weights missing, or not those of the bundle: the message says which and why."""


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_dir_for(bundle: str | os.PathLike) -> Path:
    """The sidecar weights folder of ``bundle``: ``site.msb`` -> ``site.weights/``."""
    b = Path(bundle)
    return b.with_name((b.stem if b.suffix == ".msb" else b.name) + ".weights")


def write_float_weights(run_dir: str | os.PathLike, bundle: str | os.PathLike,
                        dest: str | os.PathLike) -> Path:
    """Copy a run's float weights into ``dest`` with the ``bundle.json`` that names ``bundle``
    (the bundle exported from that run). ``dest`` is replaced if it exists."""
    run_dir, bundle, dest = Path(run_dir), Path(bundle), Path(dest)
    if not (run_dir / MODEL_FILE).is_file() or not (run_dir / RUN_FILE).is_file():
        raise WeightsError(f"{run_dir}: not a run directory (no {MODEL_FILE} / {RUN_FILE})")
    try:
        manifest = inspect_bundle(bundle)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{bundle}: not a readable bundle: {exc}") from None
    info = json.loads((run_dir / RUN_FILE).read_text())
    if list(info.get("classes") or []) != list(manifest.get("classes") or []):
        raise WeightsError(f"{run_dir}: classes {info.get('classes')} differ from the bundle's "
                           f"{manifest.get('classes')}: not the run this bundle was exported from")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in _RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, tmp / name)
    record = {
        "bundle_sha256": file_sha256(bundle), "bundle_name": manifest.get("name"),
        "bundle_version": manifest.get("version"), "model_sha256": file_sha256(tmp / MODEL_FILE),
        "classes": info.get("classes"), "architecture": (info.get("model") or {}).get("name"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (tmp / BUNDLE_INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def check_float_weights(weights: str | os.PathLike, bundle_sha256: str) -> dict:
    """``bundle.json`` of ``weights`` after checking it belongs to the bundle with that sha256
    and that ``model.pt`` is the file it recorded."""
    w = Path(weights)
    try:
        record = json.loads((w / BUNDLE_INFO_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{w}: no readable {BUNDLE_INFO_FILE}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("bundle_sha256"), str):
        raise WeightsError(f"{w / BUNDLE_INFO_FILE}: bundle_sha256 missing")
    if record["bundle_sha256"] != bundle_sha256:
        raise WeightsError(f"{w}: float weights of bundle sha256 {record['bundle_sha256'][:16]}..., "
                           f"not of this bundle ({bundle_sha256[:16]}...); refusing to fine-tune "
                           "weights that are not the bundle's")
    model = w / MODEL_FILE
    if not model.is_file():
        raise WeightsError(f"{w}: no {MODEL_FILE}")
    if record.get("model_sha256") != file_sha256(model):
        raise WeightsError(f"{model}: sha256 differs from {BUNDLE_INFO_FILE}'s model_sha256 "
                           "(changed after it was written)")
    return record


def find_float_weights(bundle: str | os.PathLike | None = None,
                       default_dir: str | os.PathLike = DEFAULT_WEIGHTS_DIR) -> tuple[Path, dict]:
    """``(weights folder, its bundle.json)`` for ``bundle`` (None: the shipped default bundle).

    Raises :class:`WeightsError` when none is found or the one found belongs to another bundle.
    """
    is_default = bundle is None
    b = Path(DEFAULT_BUNDLE if bundle is None else bundle)
    if not b.is_file():
        raise WeightsError(f"{b}: no such bundle file")
    sha = file_sha256(b)
    default_dir = Path(default_dir)
    if is_default:
        if not (default_dir / MODEL_FILE).is_file():
            raise WeightsError("the shipped bundle's float weights are not installed "
                               f"({default_dir} has no {MODEL_FILE}): pass --from RUN "
                               "(a `microseis train` run directory)")
        return default_dir, check_float_weights(default_dir, sha)
    side = weights_dir_for(b)
    if side.is_dir():
        return side, check_float_weights(side, sha)
    if (default_dir / BUNDLE_INFO_FILE).is_file():
        try:
            return default_dir, check_float_weights(default_dir, sha)
        except WeightsError:
            pass
    raise WeightsError(f"{b}: no float weights found for this bundle (looked for {side}/ and the "
                       f"shipped weights in {default_dir}); pass --from RUN, the run it was "
                       "exported from")
