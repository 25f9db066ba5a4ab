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
