"""Generators from the Struct declarations: the commented example TOML, the Markdown key
reference, self-contained JSON Schemas, and argparse options (each written once, in the
Struct)."""
from __future__ import annotations

import argparse
import textwrap
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from edge.schema.core import ConfigError, Problem, _strip, convert, describe_type, extra, meta_value, show, struct_type

__all__ = ["FieldDoc", "add_options", "example_toml", "field_docs", "from_args", "inline_schema",
           "option_lines", "reference_markdown"]

T = TypeVar("T")


@dataclass(frozen=True)
class FieldDoc:
    """One field of a Struct, as the generators see it."""

    name: str  # the attribute
    key: str  # the key in TOML/JSON (``rename``)
    type: Any
    default: Any  # msgspec.NODEFAULT: required
    doc: str
    example: Any  # the first of ``Meta(examples=[...])``, or None
    extra: dict[str, Any]


def field_docs(cls: type) -> list[FieldDoc]:
    """The fields of a Struct class in order, with their defaults (factories called)."""
    out = []
    for f in msgspec.structs.fields(cls):
        default = f.default
        if default is msgspec.NODEFAULT and f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        examples = meta_value(f.type, "examples") or [None]
        doc = meta_value(f.type, "description") or ""
        out.append(FieldDoc(f.name, f.encode_name, f.type, default, doc, examples[0], extra(f.type)))
    return out


def _sections(cls: type) -> list[tuple[FieldDoc, type]]:
    out = []
    for sec in field_docs(cls):
        st = struct_type(sec.type)
        if st is None:  # pragma: no cover - a programming error in the declaration
            raise TypeError(f"{cls.__name__}.{sec.name}: a section must be a Struct")
        out.append((sec, st))
    return out


def example_toml(cls: type, header: Sequence[str]) -> str:
    """A commented TOML file for ``cls`` (whose fields are the sections): every key at its
    default, keys unset by default commented out with an example value. ``header``: the
    comment lines at the top (without ``#``)."""
    out = [f"# {line}".rstrip() for line in header]
    for sec, st in _sections(cls):
        out += ["", f"# {sec.doc}", f"[{sec.key}]"]
        for f in field_docs(st):
            out += textwrap.wrap(f.doc, 94, initial_indent="# ", subsequent_indent="#   ")
            if f.default is None:
                out.append(f"# {f.key} = {show(f.example if f.example is not None else '')}")
            else:
                out.append(f"{f.key} = {show(f.default)}")
    return "\n".join(out) + "\n"


def reference_markdown(cls: type) -> str:
    """One Markdown table per section of ``cls``: key, type, default, meaning."""
    out = []
    for sec, st in _sections(cls):
        out += [f"### `[{sec.key}]` — {sec.doc}", "", "| key | type | default | meaning |",
                "|---|---|---|---|"]
        for f in field_docs(st):
            shown = "unset" if f.default is None else f"`{show(f.default)}`"
            cells = [f"`{f.key}`", describe_type(f.type), shown, f.doc]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- JSON Schema


def inline_schema(*types: Any) -> list[dict[str, Any]]:
    """``msgspec.json.schema`` of each type with every ``$ref`` replaced by its definition
    (self-contained objects, as a contract file wants them)."""
    schemas, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref[len("#/$defs/"):]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return [walk(s) for s in schemas]


# --------------------------------------------------------------------------- argparse


def _default_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return " ".join(_default_text(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def add_options(parser: argparse.ArgumentParser | Any, cls: type,
                groups: Mapping[str, Any] | None = None) -> None:
    """An option for every field of ``cls`` with ``extra={"cli": "--name"}``; optional
    ``metavar``, ``parse`` (argparse ``type``) and ``group`` (a key of ``groups``) in
    ``extra``. Options left out keep the Struct's default (:func:`from_args`)."""
    for f in field_docs(cls):
        opt = f.extra.get("cli")
        if not opt:
            continue
        target = (groups or {}).get(f.extra.get("group"), parser)
        tp = _strip(f.type)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        help_text = f.doc
        if tp is bool:
            kw["action"] = "store_false" if f.default is True else "store_true"
        else:
            if origin is tuple:
                kw["nargs"] = len(args)
                kw["type"] = f.extra.get("parse") or _strip(args[0])
                kw["metavar"] = f.extra.get("metavar", ("MIN", "MAX"))
            elif origin is Literal:
                kw["choices"] = list(args)
            else:
                kw["type"] = f.extra.get("parse") or (tp if tp in (int, float, str) else str)
                if "metavar" in f.extra:
                    kw["metavar"] = f.extra["metavar"]
            if f.default is not None and f.default is not msgspec.NODEFAULT:
                help_text += f" (default: {_default_text(f.default)})"
        kw["help"] = help_text.replace("%", "%%")
        target.add_argument(opt, **kw)


def from_args(cls: type[T], args: argparse.Namespace, base: Mapping[str, Any] | None = None) -> T:
    """The Struct from the options :func:`add_options` made (given ones over ``base`` over
    the defaults). Raises :class:`ConfigError` whose lines name the option
    (``"--snr-db: must ..."``) or, for a cross-field problem, the field."""
    options = _options(cls)
    values = dict(base or {})
    values.update({f.key: getattr(args, f.name) for f in field_docs(cls)
                   if f.key in options and hasattr(args, f.name)})
    try:
        return convert(values, cls)
    except ConfigError as exc:
        raise ConfigError(option_lines(cls, exc), exc.problems) from None


def _options(cls: type) -> dict[str, str]:
    return {f.key: f.extra["cli"] for f in field_docs(cls) if f.extra.get("cli")}


def option_lines(cls: type, exc: ConfigError) -> list[str]:
    """The lines of ``exc`` (from converting ``cls``) with each field named by its option."""
    options = _options(cls)
    lines = []
    for p in exc.problems:
        if p.path and p.path[0] in options:
            p = Problem((options[p.path[0]],) + p.path[1:], p.text, p.kind)
        lines.append(p.render())
    return lines
