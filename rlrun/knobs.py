"""Config fields as knobs: a default, a one-line doc naming where the value comes from, and the range
check a type cannot express, kept beside the value it checks. The run's, the env's and every
algorithm's settings are knobs; :func:`check_fields` checks a composed config against them.

A leaf module (the standard library and rlrun.errors only), so that configs are built and checked
without torch or gymnasium.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from rlrun.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """A range a value must lie in, and how the error message says so."""

    ok: Callable[[Any], bool]
    allowed: str


POSITIVE = Check(lambda v: v > 0 and math.isfinite(v), "must be > 0")
NON_NEGATIVE = Check(lambda v: v >= 0 and math.isfinite(v), "must be >= 0")
AT_LEAST_ONE = Check(lambda v: v >= 1, "must be >= 1")
FINITE = Check(math.isfinite, "must be finite")
ABOVE_ONE = Check(lambda v: v > 1, "must be > 1")
FRACTION_OPEN = Check(lambda v: 0 < v < 1, "must be in (0, 1)")  # 0 < x < 1
FRACTION_CLOSED = Check(lambda v: 0 <= v <= 1, "must be in [0, 1]")


def one_of(*options: str) -> Check:
    return Check(lambda v: v in options, f"one of {', '.join(options)}")


SCHEDULES = one_of("constant", "linear")  # a knob's value over training: fixed, or linear to 0 at total_steps


def knob(default: Any, doc: str, check: Check | None = None) -> Any:
    """A config field: its default, what it is and where the value comes from, and its range.
    ``None`` (for Optional fields) always passes the check."""
    metadata = {"doc": doc, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def check_fields(cfg: Any, schema: type, prefix: str = "") -> None:
    """Every field's range check on ``cfg`` (a config node or dataclass of ``schema``); raises
    ConfigError naming the first bad key (``<prefix>.<field>``, or the field alone without a prefix)."""
    for f in fields(schema):
        check = f.metadata.get("check")
        value = getattr(cfg, f.name)
        if check is not None and value is not None and not check.ok(value):
            shown = list(value) if not isinstance(value, (int, float, str)) else value
            key = f"{prefix}.{f.name}" if prefix else f.name
            raise ConfigError(f"{key}={shown!r} is not allowed: {check.allowed}")
