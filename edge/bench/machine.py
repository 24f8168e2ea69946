"""The machine a benchmark ran on: CPU model (/proc/cpuinfo), cores, library versions."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "machine_info", "versions"]


def cpu_model() -> str:
    """The CPU model line of /proc/cpuinfo (``model name``; ``Hardware``/``Model`` on ARM
    boards), or the platform's processor string."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for key in ("model name", "hardware", "cpu model", "model"):
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    """Versions of python, numpy, onnxruntime, obspy, microseis-edge (None: not installed)."""
    from edge import __version__

    out: dict[str, str | None] = {"python": platform.python_version(), "microseis": __version__}
    for dist, key in (("numpy", "numpy"), ("onnxruntime", "onnxruntime"), ("obspy", "obspy"),
                      ("ai-edge-litert", "litert"), ("paho-mqtt", "paho_mqtt")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def machine_info() -> dict[str, Any]:
    """CPU model, logical CPUs (all and usable by this process), kernel, Python, numpy."""
    import numpy as np

    uname = platform.uname()
    try:
        affinity: list[int] | None = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "processor": platform.processor() or uname.machine,
        "uname": f"{uname.system} {uname.release} {uname.machine}",
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
    }
