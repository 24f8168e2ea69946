"""A compiled extension module of a package loaded from its file, without the package's init.

Why: ``import scipy.signal._sosfilt`` or ``import scipy.linalg._flapack`` first runs
``scipy/signal/__init__.py`` or ``scipy/linalg/__init__.py``; scipy.signal's init alone
imports scipy.stats, optimize, interpolate and spatial (+75 MB resident, +0.6 s on the
development VM, docs/performance.md "Half the memory"). The station needs one compiled
kernel (``sosfilt``). The module is
registered in ``sys.modules`` under its own dotted name, so a later ``import scipy.signal`` or
``import scipy.linalg`` (a feature that needs the whole package) reuses it.

These are private scipy modules: the callers fall back to the public function (same
results, the import cost) where :func:`load_extension` returns None, and their tests fail
loudly when that happens.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_extension"]

log = logging.getLogger(__name__)


def load_extension(dotted: str) -> ModuleType | None:
    """The extension module ``dotted`` (e.g. ``"scipy.signal._sosfilt"``) loaded from its
    file without running its parent packages' inits (only the top-level package, here
    ``scipy``, is imported), or None where it is not there or does not load."""
    mod = sys.modules.get(dotted)
    if mod is not None:
        return mod
    top, *middle, leaf = dotted.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*middle)
    path = next((folder / f"{leaf}{s}" for s in importlib.machinery.EXTENSION_SUFFIXES
                 if (folder / f"{leaf}{s}").is_file()), None)
    if path is None:
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader(dotted, str(path))
        ext_spec = importlib.util.spec_from_file_location(dotted, str(path), loader=loader)
        mod = importlib.util.module_from_spec(ext_spec)  # type: ignore[arg-type]
        loader.exec_module(mod)
    except Exception as exc:  # noqa: BLE001 -- any failure: the caller's public fallback
        log.debug("%s did not load from %s: %s", dotted, path, exc)
        return None
    sys.modules[dotted] = mod
    return mod
