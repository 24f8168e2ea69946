"""``[trigger]`` settings of the streaming STA/LTA trigger (:class:`TriggerConfig`) and
their checks: every problem is reported with the key it belongs to."""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np

__all__ = ["METHODS", "TriggerConfig"]

#: the characteristic functions :class:`~edge.trigger.stream.StreamingTrigger` computes
#: (ObsPy's names)
METHODS = ("recstalta", "classicstalta")


@dataclass
class TriggerConfig:
    """``[trigger]``: the streaming STA/LTA trigger.

    Attributes:
        method: characteristic function, ``"recstalta"`` (ObsPy's ``recursive_sta_lta``)
            or ``"classicstalta"`` (``classic_sta_lta``).
        sta_s: short-term average window (s).
        lta_s: long-term average window (s); > ``sta_s``.
        on: STA/LTA ratio that turns a channel's trigger on.
        off: STA/LTA ratio below which it turns off; 0 < ``off`` < ``on``.
        freqmin: band-pass low corner (Hz).
        freqmax: band-pass high corner (Hz); at or above Nyquist ObsPy (and this trigger)
            applies a high-pass at ``freqmin`` instead.
        corners: band-pass corners (filter order per side, as ObsPy's ``corners``).
        min_duration_s: an event shorter than this is withdrawn ("cancel") (s).
        max_duration_s: an event (and a channel trigger) still on after this long is
            closed (s).
        dead_time_s: after an event's off, channel triggers starting within this long do
            not count (s).
        hold_s: a channel's trigger stays on this long after its ratio falls below
            ``off`` (s); back above ``off`` within it, the trigger goes on.
        coincidence_sum: sum of the weights of the channels on at once that turns an event
            on.
        weights: weight of a channel in the coincidence sum, keyed by SEED id
            (``"XX.S1..HHZ"``) or channel code (``"HHZ"``); a channel not listed weighs 1;
            weight 0 leaves the channel out.
        warmup_s: no trigger in the first ``warmup_s`` of data of a channel and after each
            gap (s); None: ``lta_s``.
    """

    method: str = "recstalta"
    sta_s: float = 0.2
    lta_s: float = 10.0
    on: float = 5.0
    off: float = 1.5
    freqmin: float = 1.0
    freqmax: float = 20.0
    corners: int = 4
    min_duration_s: float = 0.0
    max_duration_s: float = 120.0
    dead_time_s: float = 0.0
    hold_s: float = 0.0
    coincidence_sum: float = 1.0
    weights: dict[str, float] = field(default_factory=dict)
    warmup_s: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TriggerConfig":
        """Build and validate from a mapping of field names to values (a parsed
        ``[trigger]`` table); missing keys take their default. Raises ValueError whose
        message starts with the key, e.g. ``"sta_s: must be > 0, got -1"`` (all problems,
        joined with ``"; "``)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a table of trigger settings, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        problems = [f"{k}: unknown key" + _did_you_mean(str(k), names)
                    for k in d if k not in names]
        values: dict[str, Any] = {}
        for key, value in d.items():
            if key not in names:
                continue
            problem = _type_problem(key, value)
            if problem:
                problems.append(problem)
            else:
                values[key] = _normalise(key, value)
        if problems:
            raise ValueError("; ".join(problems))
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (``weights`` copied); an unset ``warmup_s`` is left
        out, so ``from_dict(to_dict())`` gives an equal configuration."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["weights"] = dict(self.weights)
        return {k: v for k, v in out.items() if v is not None}

    def validate(self) -> None:
        """Check types and ranges; raises ValueError naming the key (see :meth:`from_dict`)."""
        problems = []
        for f in fields(self):
            p = _type_problem(f.name, getattr(self, f.name))
            if p:
                problems.append(p)
        if not problems:
            problems = self._range_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _range_problems(self) -> list[str]:
        out: list[str] = []

        def bad(key: str, rule: str, extra: str = "") -> None:
            out.append(f"{key}: must be {rule}{extra}, got {_show(getattr(self, key))}")

        if self.method not in METHODS:
            out.append(f"method: must be one of {', '.join(_show(m) for m in METHODS)}, "
                       f"got {_show(self.method)}")
        if not self.sta_s > 0:
            bad("sta_s", "> 0")
        if not self.lta_s > self.sta_s:
            bad("lta_s", "> sta_s", f" = {_show(self.sta_s)}")
        if not self.off > 0:
            bad("off", "> 0")
        if not self.on > self.off:
            bad("on", "> off", f" = {_show(self.off)}")
        if not self.freqmin > 0:
            bad("freqmin", "> 0")
        if not self.freqmax > self.freqmin:
            bad("freqmax", "> freqmin", f" = {_show(self.freqmin)}")
        if not 1 <= self.corners <= 20:
            bad("corners", "within [1, 20]")
        if not self.min_duration_s >= 0:
            bad("min_duration_s", ">= 0")
        if not self.max_duration_s > 0:
            bad("max_duration_s", "> 0")
        elif not self.max_duration_s > self.min_duration_s:
            bad("max_duration_s", "> min_duration_s", f" = {_show(self.min_duration_s)}")
        if not self.dead_time_s >= 0:
            bad("dead_time_s", ">= 0")
        if not self.hold_s >= 0:
            bad("hold_s", ">= 0")
        if not self.coincidence_sum > 0:
            bad("coincidence_sum", "> 0")
        for k, w in self.weights.items():
            if not k:
                out.append("weights: a key must be a SEED id or channel code, got \"\"")
            elif not w >= 0:
                out.append(f"weights.{k}: must be >= 0, got {_show(w)}")
        if self.warmup_s is not None and not self.warmup_s >= 0:
            bad("warmup_s", ">= 0")
        return out

    def weight(self, seed_id: str) -> float:
        """The coincidence weight of a channel: ``weights[seed_id]``, else
        ``weights[channel code]``, else 1."""
        w = self.weights.get(seed_id)
        if w is None:
            w = self.weights.get(seed_id.rsplit(".", 1)[-1], 1.0)
        return float(w)


_INT_KEYS = {"corners"}
_STR_KEYS = {"method"}
_OPTIONAL_KEYS = {"warmup_s"}


def _show(v: Any) -> str:
    """A value in a message: -1.0 as -1, strings quoted."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _number_problem(v: Any) -> str | None:
    if not _is_number(v):
        return f"expected a number, got {_describe(v)}"
    if not math.isfinite(float(v)):
        return f"must be a finite number, got {_show(v)}"
    return None


def _describe(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return f"boolean {str(bool(v)).lower()}"
    if v is None:
        return "nothing (None)"
    if isinstance(v, str):
        return f"string {_show(v)}"
    if isinstance(v, (int, np.integer)):
        return f"integer {v}"
    if isinstance(v, (float, np.floating)):
        return f"float {v!r}"
    return f"{type(v).__name__} {v!r}"


def _type_problem(key: str, v: Any) -> str | None:
    """``"key: problem"`` when ``v`` has the wrong type for field ``key``, else None."""
    if key in _STR_KEYS:
        return None if isinstance(v, str) else f"{key}: expected a string, got {_describe(v)}"
    if key in _INT_KEYS:
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return None
        return f"{key}: expected an integer, got {_describe(v)}"
    if key == "weights":
        if not isinstance(v, Mapping):
            return f"{key}: expected a table of numbers, got {_describe(v)}"
        for k, w in v.items():
            if not isinstance(k, str):
                return f"{key}: keys must be strings (SEED id or channel code), got {_describe(k)}"
            p = _number_problem(w)
            if p:
                return f"{key}.{k}: {p}"
        return None
    if key in _OPTIONAL_KEYS and v is None:
        return None
    p = _number_problem(v)
    return None if p is None else f"{key}: {p}"


def _normalise(key: str, v: Any) -> Any:
    if key in _STR_KEYS or (key in _OPTIONAL_KEYS and v is None):
        return v
    if key in _INT_KEYS:
        return int(v)
    if key == "weights":
        return {str(k): float(w) for k, w in v.items()}
    return float(v)


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
