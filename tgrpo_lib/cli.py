"""Command-line plumbing shared by the project's commands: bad input ends in one line
(``<prog>: error: ... naming the fix``, exit code 2) before any work starts, never a traceback."""
from __future__ import annotations

import argparse
from typing import Callable, TypeVar

T = TypeVar("T")
USER_ERRORS = (ValueError, FileNotFoundError, TypeError)


def checked(parser: argparse.ArgumentParser, build: Callable[[], T]) -> T:
    """``build()`` (config construction and other cheap checks), or exit 2 with its message on one line."""
    try:
        return build()
    except USER_ERRORS as exc:
        parser.error(" ".join(str(exc).split()))


def parse_sets(items: list[str] | None) -> dict:
    """``--set key=value`` pairs (dotted keys for nested fields, values as JSON or plain strings)
    as an ``override`` dict, e.g. ``--set policy.feature_grid=4 env.max_steps=50``."""
    import json

    out = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write key=value, e.g. policy.feature_grid=4")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
