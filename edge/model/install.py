"""Installing bundles on a station: verify in a temporary directory, then switch the
``current`` symlink atomically (the old target becomes ``previous``); :func:`rollback`
returns to the previous model; installs that are neither current nor previous are pruned.

Anti-rollback: a bundle older than the model the station runs (SemVer order,
:func:`edge.model.versions.compare_versions`) is refused unless the caller names its sha256 in
``allow_downgrade`` (the daemon does so once, after a signed ``downgrade`` command); the
bundle the station already runs (same identity: sha256 of its ``manifest.json``) changes
nothing (``already_installed``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.model.format import INSTALLED_BUNDLE_NAME, MANIFEST_NAME, MAX_BUNDLE_BYTES, BundleError
from edge.model.keys import KeyLike
from edge.model.manifest import Manifest, StationCompat
from edge.model.verify import verify_bundle
from edge.model.versions import compare_versions

__all__ = [
    "install_bundle",
    "rollback",
    "current_model_dir",
    "previous_model_dir",
    "read_manifest",
    "installed_identity",
]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(models_dir: Path):
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
    running: tuple[str, str] | None = None,
    allow_downgrade: str | None = None,
) -> Path:
    """Verify ``data`` fully and make it the station's current model.

    The bundle is verified (signature, hashes, compatibility with ``station``, self-test) and
    unpacked into a temporary directory inside ``models_dir``; only then is that directory
    renamed to ``models_dir/<name>-<version>-<sha12>/`` and the ``current`` symlink switched
    atomically, the old target becoming ``previous``. Installs that are neither current nor
    previous are removed. On any failure a :class:`BundleError` is raised and ``current``,
    ``previous`` and the installed models are untouched, with no partial directory left.

    ``running``: ``(version, identity)`` of the model the station runs now (default: the
    installed ``current`` one, if any). A bundle with the same identity raises
    :class:`BundleError` code ``already_installed`` (nothing changes); an older version raises
    code ``downgrade`` unless ``allow_downgrade`` is this bundle's sha256.

    Returns the new model directory (it holds every bundle entry plus ``bundle.msb``), named
    ``<name>-<version>-<first 12 hex digits of the identity>``.
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    data = bytes(data)
    with _locked(models_dir):
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=models_dir))
        try:
            vb = verify_bundle(data, trusted_keys, station=station, run_selftest=True, max_bytes=max_bytes)
            _check_upgrade(vb.manifest.version, vb.identity, vb.sha256,
                           running if running is not None else installed_identity(models_dir), allow_downgrade)
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
            final = models_dir / f"{m.name}-{m.version}-{vb.identity[:12]}"
            if final.exists():
                same = (final / MANIFEST_NAME).is_file() and hashlib.sha256(
                    (final / MANIFEST_NAME).read_bytes()).hexdigest() == vb.identity \
                    and (final / INSTALLED_BUNDLE_NAME).is_file()
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


def _check_upgrade(version: str, identity: str, sha256: str, running: tuple[str, str] | None,
                   allow_downgrade: str | None) -> None:
    if running is None:
        return
    run_version, run_identity = running
    if identity == run_identity:
        raise BundleError(f"already installed: the station runs this model ({version}, identity "
                          f"{identity[:12]})", "already_installed")
    if compare_versions(version, run_version) < 0 and allow_downgrade != sha256:
        raise BundleError(f"version {version} is older than the installed {run_version} (downgrade "
                          "refused; send a signed downgrade command naming this bundle's sha256 first: "
                          "microseis push-model --downgrade)", "downgrade")


def installed_identity(models_dir: str | os.PathLike) -> tuple[str, str] | None:
    """``(version, identity)`` of the installed current model, or None."""
    cur = current_model_dir(models_dir) if Path(models_dir).is_dir() else None
    if cur is None:
        return None
    try:
        raw = (cur / MANIFEST_NAME).read_bytes()
        return read_manifest(cur).version, hashlib.sha256(raw).hexdigest()
    except (OSError, ValueError, BundleError):
        return None


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
