"""edge.schema: Structs declared once -> validation with key paths, example TOML, Markdown,
JSON Schema, argparse options; the generated files in the repository are current."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta

from edge.schema import ConfigError, Invalid, convert, did_you_mean, validate
from edge.schema.render import add_options, example_toml, from_args, reference_markdown

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    """``[inner]``."""

    rate: Annotated[float, Meta(gt=0, le=1, description="a rate in (0, 1]")] = 0.5
    count: Annotated[int, Meta(ge=1, description="how many", extra={"cli": "--count", "metavar": "N"})] = 3
    names: Annotated[list[str], Meta(description="some names")] = []
    weights: Annotated[dict[str, Annotated[float, Meta(ge=0)]], Meta(description="name -> weight")] = {}
    mode: Annotated[Literal["fast", "slow"], Meta(description="how", extra={"cli": "--mode"})] = "fast"
    span: Annotated[tuple[float, float], Meta(description="min and max",
                                              extra={"cli": "--span"})] = (1.0, 2.0)
    cap: Annotated[Annotated[float, Meta(gt=0)] | None, Meta(description="unset = none",
                                                                examples=[7.5])] = None
    quiet: Annotated[bool, Meta(description="say less", extra={"cli": "--quiet"})] = False
    file: Annotated[str, Meta(description="a file", extra={"path": True})] = ""

    def __post_init__(self) -> None:
        Invalid.check([("span", "min must be <= max") if self.span[0] > self.span[1] else None])


class Outer(msgspec.Struct, forbid_unknown_fields=True):
    inner: Annotated[Inner, Meta(description="the inner section")] = msgspec.field(default_factory=Inner)


def problems(data: object, tp: type = Outer) -> list[str]:
    with pytest.raises(ConfigError) as err:
        convert(data, tp)
    assert isinstance(err.value, ValueError)
    return err.value.errors


def test_every_problem_with_its_key_path() -> None:
    got = problems({"inner": {"rate": 0, "count": 2.5, "names": ["a", 3], "weights": {"x": 1, "y": "z"},
                              "mode": "medium", "cap": -1, "quiet": "yes", "ratte": 1}, "outer": 1})
    assert got == [
        "outer: unknown key",
        "inner.ratte: unknown key (did you mean rate?)",
        "inner.rate: must be within (0, 1], got 0",
        "inner.count: expected an integer, got float 2.5",
        "inner.names[1]: expected a string, got integer 3",
        "inner.weights.y: expected a number, got string \"z\"",
        "inner.mode: must be one of \"fast\", \"slow\", got \"medium\"",
        "inner.cap: must be > 0, got -1",
        "inner.quiet: expected a boolean (true or false), got string \"yes\"",
    ]


def test_toml_style_sections_and_finite_numbers() -> None:
    with pytest.raises(ConfigError) as err:
        convert({"inner": {"rate": float("nan"), "weights": {"x": -1}}, "iner": {}, "x": 1},
                Outer, source="c.toml", style="toml")
    assert err.value.errors == [
        "c.toml: unknown section [iner] (did you mean inner?)",
        "c.toml: unknown top-level key x (keys belong in a [section])",
        "c.toml: [inner] rate: must be a finite number, got nan",
        "c.toml: [inner] weights.x: must be >= 0, got -1",
    ]
    assert problems({"inner": 3}) == ["inner: expected a table, got integer 3"]


def test_post_init_problems_name_the_key_and_conversion_is_exact(tmp_path: Path) -> None:
    assert problems({"inner": {"span": [3, 1]}}) == ["inner.span: min must be <= max"]
    cfg = convert({"inner": {"rate": 1, "span": [0, 5], "cap": 2, "file": "a/b.txt"}}, Outer,
                  base_dir=tmp_path)
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.span == (0.0, 5.0) and cfg.inner.cap == 2.0
    assert cfg.inner.file == str(tmp_path / "a" / "b.txt")
    assert convert({"inner": {"file": "a"}}, Outer).inner.file == "a"  # no base_dir: as written
    with pytest.raises(ConfigError, match=r"^inner\.count: must be >= 1, got 0$"):
        validate(Outer(Inner(count=0)))
    with pytest.raises(ValueError, match="span: min must be <= max"):
        Inner(span=(2.0, 1.0))  # construction runs __post_init__


def test_did_you_mean() -> None:
    assert did_you_mean("hots", ["host", "port"]) == " (did you mean host?)"
    assert did_you_mean("zzz", ["host", "port"]) == ""


def test_example_and_reference_from_the_declarations() -> None:
    text = example_toml(Outer, ["a header"])
    assert text.startswith("# a header\n\n# the inner section\n[inner]\n# a rate in (0, 1]\nrate = 0.5\n")
    assert "\n# unset = none\n# cap = 7.5\n" in text and "span = [1.0, 2.0]" in text
    assert convert(tomllib.loads(text), Outer) == Outer()
    md = reference_markdown(Outer)
    assert "### `[inner]` — the inner section" in md
    assert "| `names` | an array of strings | `[]` | some names |" in md
    assert "| `cap` | a number | unset | unset = none |" in md
    assert "| `mode` | one of \"fast\", \"slow\" | `\"fast\"` | how |" in md


def test_argparse_options_from_the_struct() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, Inner)
    assert {a.dest for a in parser._actions} == {"help", "count", "mode", "span", "quiet"}
    assert from_args(Inner, parser.parse_args([])) == Inner()
    got = from_args(Inner, parser.parse_args(["--count", "5", "--span", "0", "9", "--quiet", "--mode", "slow"]))
    assert got == Inner(count=5, span=(0.0, 9.0), quiet=True, mode="slow")
    with pytest.raises(ConfigError) as err:
        from_args(Inner, parser.parse_args(["--count", "0", "--span", "3", "1"]))
    assert err.value.errors == ["--count: must be >= 1, got 0"]
    with pytest.raises(ConfigError, match=r"^--span: min must be <= max$"):
        from_args(Inner, parser.parse_args(["--span", "3", "1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "medium"])


# --------------------------------------------------------------------------- the event contract


def _station_messages() -> list[dict]:
    from edge.comms.messages import EventEnd, EventNew, Magnitude, ModelRef

    new = EventNew.create("XX.S1", 1275000273.21, 7.12)
    end = EventEnd(id=new.id, station="XX.S1", trigger_on=new.trigger_on,
                   trigger_off="2010-05-27T22:44:45.610000Z", duration_s=12.4, cft_peak=7.12,
                   event_class="earthquake", probabilities={"earthquake": 0.9, "noise": 0.1},
                   uncertainty=0.2, magnitude=Magnitude(None, 1.1, "no station response", None,
                                                        {"s_minus_p_s": 1.5}),
                   model=ModelRef("m", "1.0.0", "ab" * 32), latency_ms=85.4,
                   channels=["HHZ", "HHN", "HHE"], mutual_information=0.01, extra={"closed_by": "off"})
    return [new.to_dict(), end.to_dict()]


def test_event_messages_round_trip_and_leave_unset_keys_out() -> None:
    from edge.comms.messages import EventEnd

    new, end = _station_messages()
    assert list(new) == ["schema", "type", "id", "station", "trigger_on", "cft_peak"]
    assert end["class"] == "earthquake" and "snippet" not in end and end["closed_by"] == "off"
    assert end["magnitude"] == {"ml": None, "model": 1.1, "reason": "no station response", "s_minus_p_s": 1.5}
    again = EventEnd.from_dict(end)
    assert again.to_dict() == end and again.extra == {"closed_by": "off"}


def test_generated_event_schema_keeps_the_contract(spec_dir: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from edge.comms.messages import event_schema

    contract = json.loads((spec_dir / "schemas" / "event.schema.json").read_text())
    ours = event_schema()
    jsonschema.Draft202012Validator.check_schema(ours)
    for key in ("$schema", "$id", "title", "type", "required", "if", "then"):
        assert ours[key] == contract[key], key
    assert set(contract["properties"]) <= set(ours["properties"])
    for message in _station_messages():
        jsonschema.validate(message, ours)
        jsonschema.validate(message, contract)
    minimal_new = {"schema": "microseis/event/1", "type": "new", "id": "XX.S1-2010", "station": "XX.S1",
                   "trigger_on": "2010-05-27T22:44:33.210000Z"}
    jsonschema.validate(minimal_new, ours)  # what the contract accepts, the generated schema accepts
    bad = dict(_station_messages()[1], uncertainty=1.5)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ours)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(bad, uncertainty=0.1, magnitude={"ml": 1.0, "model": None, "reason": None}), ours)


# --------------------------------------------------------------------------- generated files


def test_generated_files_are_current() -> None:
    from edge.schema import docs

    assert [str(p.relative_to(docs.REPO)) for p in docs.stale()] == [], \
        "regenerate with: python -m edge.schema.docs --write"


def test_regenerating_rewrites_a_stale_file(tmp_path: Path) -> None:
    from edge.schema import docs

    (tmp_path / "docs").mkdir()
    conf = tmp_path / "docs" / "configuration.md"
    conf.write_text(f"intro\n{docs.BEGIN}\nold table\n{docs.END}\nafter\n")
    assert set(docs.stale(tmp_path)) == set(docs.generated(tmp_path))
    for path, text in docs.generated(tmp_path).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert docs.stale(tmp_path) == []
    text = conf.read_text()
    assert text.startswith(f"intro\n{docs.BEGIN}\n### `[station]`") and text.endswith(f"{docs.END}\nafter\n")
    assert "old table" not in text
