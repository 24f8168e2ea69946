"""The one declarative schema layer of the project's settings and messages (msgspec Structs).

A setting is declared once, in a :class:`msgspec.Struct`: its type, default and, in
``Annotated[type, msgspec.Meta(description=..., ge=..., examples=[...], extra={...})]``, its
documentation, bounds and flags. From that declaration come

* validation (:func:`convert`): a parsed TOML/JSON mapping -> the Struct, or a
  :class:`ConfigError` whose lines name the key path (``trigger.sta_s: must be > 0, got -1``,
  ``mqtt.hots: unknown key (did you mean host?)``), every problem at once;
* the commented example TOML and the Markdown key reference (:mod:`edge.schema.render`);
* JSON Schemas (``msgspec.json.schema``; :func:`edge.schema.render.inline_schema`);
* argparse options (:func:`edge.schema.render.add_options` / ``from_args``).

Checks that bounds cannot express (patterns with a friendly message, cross-field rules) go in
the Struct's ``__post_init__`` and raise :class:`Invalid` naming the key.
``python -m edge.schema.docs --write`` regenerates the committed files made from the schemas
(``--check`` says whether they are current).
"""
from edge.schema.core import (
                              ConfigError,
                              Invalid,
                              Problem,
                              collect,
                              convert,
                              describe_type,
                              describe_value,
                              did_you_mean,
                              num,
                              show,
                              validate,
)

__all__ = ["ConfigError", "Invalid", "Problem", "collect", "convert", "describe_type",
           "describe_value", "did_you_mean", "num", "show", "validate"]
