"""The committed files generated from the schemas, and the command that regenerates them.

* ``docs/config.example.toml``: the commented example configuration (what
  ``microseis run --print-example-config`` prints);
* ``docs/configuration.md``: the key reference, between the ``<!-- BEGIN generated ... -->``
  and ``<!-- END generated -->`` lines;
* ``docs/spec/schemas/event.schema.json``: the event JSON Schema
  (:func:`edge.comms.messages.event_schema`).

``python -m edge.schema.docs`` lists the files that differ from what the schemas give (exit
status 1 when one does); ``--write`` rewrites them. tests/test_schema.py fails while one
differs. Works in a source checkout (the files live in docs/, not in the package).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.comms.messages import event_schema
from edge.station.config import example_config, reference_markdown

__all__ = ["REPO", "generated", "stale", "main"]

REPO = Path(__file__).resolve().parents[2]
BEGIN = "<!-- BEGIN generated: python -m edge.schema.docs --write -->"
END = "<!-- END generated -->"


def _between(path: Path, body: str) -> str:
    """The text of ``path`` with the part between :data:`BEGIN` and :data:`END` replaced."""
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition(BEGIN + "\n")
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        raise ValueError(f"{path}: no {BEGIN!r} ... {END!r} lines")
    return f"{head}{BEGIN}\n{body.rstrip()}\n{END}{tail}"


def generated(repo: Path = REPO) -> dict[Path, str]:
    """Each generated file -> the text it must have."""
    conf = repo / "docs" / "configuration.md"
    return {
        repo / "docs" / "config.example.toml": example_config(),
        conf: _between(conf, reference_markdown()),
        repo / "docs" / "spec" / "schemas" / "event.schema.json":
            json.dumps(event_schema(), indent=2, ensure_ascii=False) + "\n",
    }


def stale(repo: Path = REPO) -> list[Path]:
    """The generated files that are missing or differ from what the schemas give."""
    return [p for p, text in generated(repo).items()
            if not p.is_file() or p.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.schema.docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the files that differ")
    args = parser.parse_args(argv)
    if not (REPO / "docs").is_dir():
        print(f"{REPO}: not a source checkout (no docs/)", file=sys.stderr)
        return 2
    try:
        todo = stale()
        if args.write:
            for path, text in generated().items():
                if path in todo:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
                    print(f"wrote {path.relative_to(REPO)}")
            return 0
    except (OSError, ValueError) as exc:
        print(f"edge.schema.docs: {exc}", file=sys.stderr)
        return 2
    for path in todo:
        print(f"{path.relative_to(REPO)}: differs from the schema (python -m edge.schema.docs --write)")
    return 1 if todo else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
