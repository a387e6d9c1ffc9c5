"""Typed trainable configs: one dataclass per trainable, one `knob` per field.

A knob carries its default, its allowed range or choices and a one-line doc. The same declaration
validates `--set` overrides in the driver and the config a trial receives, so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable
from typing import Any


class ConfigError(ValueError):
    """A config value of the wrong type, out of range, or for a key that does not exist."""


def knob(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple | None = None,
    pattern: str | None = None,
    lo_open: bool = False,
    check: Callable[[Any], None] | None = None,
) -> Any:
    """A dataclass field with its doc and validity rule: lo/hi bounds, choices, a regex, or a `check`
    that raises ValueError for rules a regex cannot state (a ResNet's depth is 6n+2)."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "pattern": pattern, "lo_open": lo_open,
            "check": check}
    return dataclasses.field(default=default, metadata=meta)


def field_types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_value(cls: type, key: str, text: str) -> Any:
    """Turns the text of `--set key=text` into the field's type."""
    types = field_types(cls)
    if key not in types:
        raise ConfigError(f"unknown key '{key}' (known: {', '.join(sorted(types))})")
    kind = types[key]
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return low in {"true", "1", "yes"}
        return kind(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a valid {kind.__name__}") from None


def check_value(cls: type, key: str, value: Any) -> None:
    """Raises ConfigError when `value` breaks the field's type or range."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"unknown key '{key}' (known: {', '.join(sorted(fields))})")
    kind = field_types(cls)[key]
    ok_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok_type = True
    if not ok_type:
        raise ConfigError(f"{key}={value!r} is not a {kind.__name__}")
    if kind is float and not math.isfinite(value):  # NaN passes every range comparison
        raise ConfigError(f"{key}={value!r} is not a finite number")
    meta = fields[key].metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, meta['choices']))}")
    if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(f"{key}={value!r} does not name a known {key} ({meta['doc']})")
    if meta.get("check"):
        try:
            meta["check"](value)
        except ValueError as err:
            raise ConfigError(f"{key}={value!r}: {err}") from None
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        bound = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{key}={value!r} is out of range: must be {bound} {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}={value!r} is out of range: must be <= {hi}")


def build(cls: type, values: dict[str, Any]) -> Any:
    """Validates every known value and returns the dataclass. Keys Ray adds are not allowed here."""
    for key, value in values.items():
        check_value(cls, key, value)
    return cls(**values)
