"""The two checks every config layer uses (kept free of imports, so any layer may use them)."""
from __future__ import annotations

import math
import numbers
import re

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,-]*$")


def check_name(what: str, name: str) -> None:
    """A run or kind name must be one plain directory name."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{what} {name!r} is not a valid directory name; use letters, digits and "
                         "'_.+=,-' (no '/' or spaces), e.g. the default run_name(cfg)")


def check_number(name: str, value, low: float | None = None, high: float | None = None, integer: bool = False,
                 low_open: bool = False) -> None:
    """One clear error for a non-number, NaN/inf, a float where an int belongs, or a value out of range."""
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name}={value!r}: pass {kind}.")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name}={value!r}: pass a value {'>' if low_open else '>='} {low}.")
    if high is not None and value > high:
        raise ValueError(f"{name}={value!r}: pass a value <= {high}.")
