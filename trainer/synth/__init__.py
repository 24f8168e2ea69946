"""Physically grounded synthetic benchmark: 3-component geophone records of fractures,
rockfalls, local earthquakes (ML-consistent amplitudes) and noise transients, written as a
dataset folder (``docs/spec/dataset.md``). See ``docs/synthetic.md``.

Only numpy, scipy and obspy are needed (no torch). Entry point: :func:`generate_dataset`.
"""
from .config import BALANCES, BOSSEA_COUNTS, CLASSES, SynthConfig, class_counts

__all__ = [
    "BALANCES",
    "BOSSEA_COUNTS",
    "CLASSES",
    "SynthConfig",
    "class_counts",
    "event_plan",
    "generate_dataset",
    "make_event",
]


def __getattr__(name: str):
    # deferred: the generator imports numpy, scipy and obspy; `microseis synth` builds its
    # options from SynthConfig at every start of the `microseis` command (on a station too)
    if name in ("event_plan", "generate_dataset", "make_event"):
        from . import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
