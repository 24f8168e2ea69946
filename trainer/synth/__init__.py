"""Physically grounded synthetic benchmark: 3-component geophone records of fractures,
rockfalls, local earthquakes (ML-consistent amplitudes) and noise transients, written as a
dataset folder (``docs/spec/dataset.md``). See ``docs/synthetic.md``.

Only numpy, scipy and obspy are needed (no torch). Entry point: :func:`generate_dataset`.
"""
from .config import BALANCES, BOSSEA_COUNTS, CLASSES, SynthConfig, class_counts
from .generate import event_plan, generate_dataset, make_event

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
