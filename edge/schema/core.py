"""Validation: a mapping (a parsed TOML/JSON document) -> a :class:`msgspec.Struct`, or a
:class:`ConfigError` with one line per problem, each naming its key path.

A Struct declares each field once: type, default, and in ``Annotated[..., msgspec.Meta(...)]``
its documentation (``description``), bounds (``gt``, ``ge``, ``lt``, ``le``, ``min_length``,
...), example values (``examples``) and project flags in ``extra``:

* ``extra={"path": True}``: a file or folder (a string or a list of strings); relative values
  resolve against ``base_dir`` when one is given.
* ``extra={"cli": "--events", "metavar": "N", "parse": func, "group": "..."}``: the option of
  this field in a generated argparse parser (:mod:`edge.schema.render`).

Cross-field and pattern checks go in ``__post_init__``, raising :class:`Invalid` with the keys
they concern. :func:`convert` checks each field on its own, so every problem is reported at
once (msgspec alone stops at the first). Numbers must be finite (TOML has ``nan`` and ``inf``).
"""
from __future__ import annotations

import difflib
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

__all__ = [
    "ConfigError", "Invalid", "Problem", "collect", "convert", "describe_type", "describe_value",
    "did_you_mean", "metas", "num", "show", "struct_type", "validate",
]

T = TypeVar("T")
Style = Literal["dotted", "toml"]


class ConfigError(ValueError):
    """Invalid settings; ``errors`` holds one line per problem (``str()`` joins them) and
    ``problems`` the structured :class:`Problem` behind each line (when known)."""

    def __init__(self, errors: str | list[str], problems: list[Problem] | None = None) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.problems = list(problems or [])
        super().__init__("\n".join(self.errors))


class Invalid(ValueError):
    """Raised by a Struct's ``__post_init__``: ``(key, problem)`` pairs, e.g.
    ``Invalid(("max_window_s", "must be > pre_s + post_s = 6, got 5"))``; a key may be a
    path tuple (``("magnitude_bins", "n")``) for a key inside a field."""

    def __init__(self, *problems: tuple[str | tuple[str | int, ...], str]) -> None:
        self.problems = [((k,) if isinstance(k, str) else tuple(k), p) for k, p in problems]
        super().__init__("; ".join(f"{_join(k)}: {p}" for k, p in self.problems))

    @classmethod
    def check(cls, problems: Iterable[tuple[str | tuple[str | int, ...], str] | None]) -> None:
        """Raise for the problems that are not None (nothing when there are none)."""
        found = [p for p in problems if p is not None]
        if found:
            raise cls(*found)


@dataclass(frozen=True)
class Problem:
    """One problem: where (``path``: keys and list indexes), what (``text``) and its kind:
    ``"value"``, ``"unknown"`` (``text`` is the did-you-mean hint) or ``"table"`` (a
    section that is not a table)."""

    path: tuple[str | int, ...]
    text: str
    kind: str = "value"
    is_table: bool = False  # for "unknown": the unknown key holds a table

    def render(self, style: Style = "dotted") -> str:
        """The line of this problem: ``"trigger.sta_s: must be > 0, got -1"`` (dotted) or
        ``"[trigger] sta_s: must be > 0, got -1"`` (toml: the first level is a section)."""
        if style == "toml" and self.path:
            head, rest = f"[{self.path[0]}]", _join(self.path[1:])
            if self.kind == "unknown" and not rest:
                if self.is_table:
                    return f"unknown section {head}{self.text}"
                return f"unknown top-level key {self.path[0]}{self.text} (keys belong in a [section])"
            if self.kind == "unknown":
                return f"unknown key {head} {rest}{self.text}"
            if self.kind == "table" and not rest:
                return f"{head} must be a table (section), {self.text}"
            return f"{head} {rest}: {self.text}" if rest else f"{head} {self.text}"
        key = _join(self.path)
        if self.kind == "unknown":
            return f"{key}: unknown key{self.text}"
        if self.kind == "table":
            return f"{key}: expected a table, {self.text}" if key else f"expected a table, {self.text}"
        return f"{key}: {self.text}" if key else self.text


def _join(path: Iterable[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{_bare(p)}" if out else _bare(p))
    return out


def _bare(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


# --------------------------------------------------------------------------- wording


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean host?)"`` for the closest known name, or ``""``: the one
    suggestion formatter of the project."""
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def num(x: float) -> str:
    """A number in a message: ``0`` not ``0.0``, ``0.25``, ``1e-09``."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e16 else repr(x)


def show(v: Any) -> str:
    """A value as it is written in TOML: ``true``, ``"text"``, ``[1, 2]``, ``{ a = 1 }``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_bare(str(k))} = {show(x)}" for k, x in v.items()) + " }"
    return repr(v)


def describe_value(v: Any) -> str:
    """What a value is, for "got ...": ``string "1883"``, ``integer 3``, ``a table``."""
    if isinstance(v, bool):
        return f"boolean {show(v)}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"float {show(v)}"
    if isinstance(v, str):
        return f"string {show(v)}"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v!r}"


def _strip(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and without ``None`` in a union of one other type."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = typing.get_args(tp)
    if type(None) in args and len(args) == 2:
        return _strip(next(a for a in args if a is not type(None)))
    return tp


def describe_type(tp: Any) -> str:
    """What a field takes, in words: ``a number``, ``an array of strings``, ``one of "a", "b"``."""
    tp = _strip(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    simple = {str: "a string", bool: "a boolean (true or false)", int: "an integer", float: "a number"}
    if tp in simple:
        return simple[tp]
    if origin is Literal:
        return "one of " + ", ".join(show(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"an array of {len(args)} " + _plural(args[0])
        return "an array of " + _plural(args[0] if args else Any)
    if origin is dict:
        return "a table of " + _plural(args[1] if args else Any)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return "a table"
    if origin is not None and args:  # a union
        return " or ".join(describe_type(a) for a in args if a is not type(None))
    return "a value"


def _plural(tp: Any) -> str:
    word = describe_type(tp).split(" ", 1)[-1].split(" (")[0]
    head, _, rest = word.partition(" of ")
    if rest and head in ("array", "table"):  # "array of numbers" -> "arrays of numbers"
        return f"{head}s of {rest}"
    return word if word.endswith("s") or word == "value" else word + "s"


def metas(tp: Any) -> list[msgspec.Meta]:
    """Every ``msgspec.Meta`` on ``tp``, outer first (through ``Optional``)."""
    out: list[msgspec.Meta] = []
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp, *rest = typing.get_args(tp)
            out += [m for m in rest if isinstance(m, msgspec.Meta)]
            continue
        args = typing.get_args(tp)
        if type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
            continue
        return out


def meta_value(tp: Any, name: str, default: Any = None) -> Any:
    """The first ``Meta`` attribute ``name`` set on ``tp`` (``description``, ``gt``, ...)."""
    for m in metas(tp):
        v = getattr(m, name, None)
        if v is not None:
            return v
    return default


def extra(tp: Any) -> dict[str, Any]:
    """The merged ``Meta(extra=...)`` dicts of ``tp``."""
    out: dict[str, Any] = {}
    for m in reversed(metas(tp)):
        out.update(m.extra or {})
    return out


def struct_type(tp: Any) -> type | None:
    """The Struct class ``tp`` is (through ``Annotated``), else None."""
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else None


def _bounds(tp: Any) -> str | None:
    """``"must be > 0"``, ``"must be within (0, 1]"``, ... from the bounds of ``tp``."""
    lo = [(meta_value(tp, "gt"), "("), (meta_value(tp, "ge"), "[")]
    hi = [(meta_value(tp, "lt"), ")"), (meta_value(tp, "le"), "]")]
    lo_v, lo_b = next(((v, b) for v, b in lo if v is not None), (None, ""))
    hi_v, hi_b = next(((v, b) for v, b in hi if v is not None), (None, ""))
    if lo_v is not None and hi_v is not None:
        return f"must be within {lo_b}{num(lo_v)}, {num(hi_v)}{hi_b}"
    if lo_v is not None:
        return f"must be {'>' if lo_b == '(' else '>='} {num(lo_v)}"
    if hi_v is not None:
        return f"must be {'<' if hi_b == ')' else '<='} {num(hi_v)}"
    return None


def _length(tp: Any, v: Any) -> str | None:
    lo, hi = meta_value(tp, "min_length"), meta_value(tp, "max_length")
    what = "characters" if isinstance(v, str) else "items"
    if lo is not None and hi is not None:
        rule = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
    elif lo is not None:
        rule = f"at least {lo}"
    elif hi is not None:
        rule = f"at most {hi}"
    else:
        return None
    return f"must have {rule} {what}, got {len(v)}"


# --------------------------------------------------------------------------- conversion


_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")


def _explain(exc: msgspec.ValidationError, tp: Any, value: Any) -> tuple[tuple[str | int, ...], str]:
    """(sub-path, problem) of a msgspec error for ``value`` converted to ``tp``."""
    msg, _, where = str(exc).partition(" - at `")
    sub: list[str | int] = []
    for m in _SEGMENT.finditer(where.rstrip("`")[1:]):
        inner = _strip(tp)
        args = typing.get_args(inner)
        if m.group(1) is not None:  # a Struct field inside a value
            st = struct_type(inner)
            tp = next((f.type for f in msgspec.structs.fields(st) if f.encode_name == m.group(1)), Any) \
                if st else Any
            value, key = (value.get(m.group(1)) if isinstance(value, dict) else None), m.group(1)
        elif m.group(2) is not None:
            key = int(m.group(2))
            tp = args[key] if typing.get_origin(inner) is tuple and len(args) > key and args[-1] is not Ellipsis \
                else (args[0] if args else Any)
            value = value[key]
        else:  # "[...]": msgspec does not name the dict key; find the first key or value that fails
            kt, vt = args if len(args) == 2 else (Any, Any)
            d = value if isinstance(value, dict) else {}
            bad_key = next((k for k in d if not _converts(k, kt)), None)
            key = bad_key if bad_key is not None else next((k for k, x in d.items() if not _converts(x, vt)), "...")
            tp, value = (kt, bad_key) if bad_key is not None else (vt, d.get(key))
        sub.append(key)
    inner = _strip(tp)
    if typing.get_origin(inner) is dict and isinstance(value, dict) and not msg.startswith("Expected `object`") \
            and "of length" not in msg:  # a bad key: msgspec names the table, not the key
        kt = (typing.get_args(inner) or (Any,))[0]
        bad_key = next((k for k in value if not _converts(k, kt)), None)
        if bad_key is not None:
            sub.append(bad_key)
            tp, value = kt, bad_key
    tp = _member(tp, value)
    path = tuple(sub)
    if msg.startswith("Invalid enum value") and typing.get_origin(_strip(tp)) is Literal:
        return path, f"must be {describe_type(tp)}, got {show(value)}"
    if re.match(r"Expected `[^`]*`, got `", msg) or msg.startswith("Expected `null`"):
        return path, f"expected {describe_type(tp)}, got {describe_value(value)}"
    if "of length" in msg and isinstance(value, (str, list, tuple, dict)):
        text = _length(tp, value)
        if text:
            return path, text
    if "matching regex" in msg:
        return path, f"must match {meta_value(tp, 'pattern')}, got {show(value)}"
    bound = _bounds(tp) if re.match(r"Expected `(int|float)` [<>]", msg) else None
    if bound:
        return path, f"{bound}, got {show(value)}"
    return path, msg


def _member(tp: Any, value: Any) -> Any:
    """The member of a union (``int | str``) that ``value``'s type would take, else ``tp``."""
    args = [a for a in typing.get_args(_strip(tp)) if a is not type(None)]
    if typing.get_origin(_strip(tp)) is Literal or len(args) < 2:
        return tp
    for a in args:
        base = _strip(a)
        if isinstance(base, type) and type(value) is base:
            return a
    return tp


def _converts(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError:
        return False
    return True


def _non_finite(v: Any, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], float] | None:
    if isinstance(v, float) and not math.isfinite(v):
        return path, v
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, (list, tuple)) else ()
    for k, x in items:
        found = _non_finite(x, path + (k,))
        if found:
            return found
    return None


def _resolve(v: Any, base_dir: Path) -> Any:
    if isinstance(v, (list, tuple)):
        return type(v)(_resolve(x, base_dir) for x in v)
    if not isinstance(v, str) or not v:
        return v
    p = Path(v).expanduser()
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def collect(data: Any, tp: Any, *, base_dir: str | Path | None = None,
            path: tuple[str | int, ...] = ()) -> tuple[Any, list[Problem]]:
    """``(value, problems)``: ``data`` converted to ``tp`` (a Struct: field by field, its
    ``__post_init__`` last), or ``(None, problems)``. Nothing is raised."""
    problems: list[Problem] = []
    base = Path(base_dir) if base_dir is not None else None
    value = _collect(data, tp, base, path, problems)
    return (None if problems else value), problems


def _collect(data: Any, tp: Any, base: Path | None, path: tuple[str | int, ...],
             problems: list[Problem]) -> Any:
    cls = struct_type(tp)
    if cls is None:
        bad = _non_finite(data)
        if bad:
            problems.append(Problem(path + bad[0], f"must be a finite number, got {bad[1]!r}"))
            return None
        try:
            value = msgspec.convert(data, tp)
        except msgspec.ValidationError as exc:
            sub, text = _explain(exc, tp, data)
            problems.append(Problem(path + sub, text))
            return None
        return _resolve(value, base) if base is not None and extra(tp).get("path") else value
    if not isinstance(data, Mapping):
        problems.append(Problem(path, f"got {describe_value(data)}", kind="table"))
        return None
    fields = msgspec.structs.fields(cls)
    names = [f.encode_name for f in fields]
    forbid = cls.__struct_config__.forbid_unknown_fields  # else unknown keys are ignored, as msgspec does
    for key, value in data.items():
        if forbid and key not in names:
            problems.append(Problem(path + (str(key),), did_you_mean(str(key), names), kind="unknown",
                                    is_table=isinstance(value, Mapping)))
    n0 = len(problems)
    problems.extend(Problem(path + (f.encode_name,), "is missing") for f in fields if f.required
                    and f.encode_name not in data and f.encode_name != _tag_field(cls))
    kwargs = {f.name: _collect(data[f.encode_name], f.type, base, path + (f.encode_name,), problems)
              for f in fields if f.encode_name in data}
    if len(problems) > n0:
        return None
    try:
        return cls(**kwargs)
    except Invalid as exc:
        problems.extend(Problem(path + k, p) for k, p in exc.problems)
    except (ValueError, TypeError) as exc:
        problems.append(Problem(path, str(exc)))
    return None


def _tag_field(cls: type) -> str | None:
    return getattr(getattr(cls, "__struct_config__", None), "tag_field", None)


def convert(data: Any, tp: type[T], *, source: str | None = None, style: Style = "dotted",
            base_dir: str | Path | None = None) -> T:
    """``data`` as ``tp``, or :class:`ConfigError` listing every problem, each line
    ``"{source}: {key path}: {problem}"`` (no source prefix when ``source`` is None)."""
    value, problems = collect(data, tp, base_dir=base_dir)
    if problems:
        prefix = f"{source}: " if source else ""
        raise ConfigError([prefix + p.render(style) for p in problems], problems)
    return value


def validate(obj: T) -> T:
    """Check a Struct built in Python (``__init__`` does not check types or bounds): the
    same checks as :func:`convert`; returns ``obj``, raises :class:`ConfigError`."""
    convert(msgspec.to_builtins(obj), type(obj))
    return obj
