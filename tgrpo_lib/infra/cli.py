"""Command-line plumbing shared by the project's commands: bad input ends in one line
(``<prog>: error: ... naming the fix``, exit code 2) before any work starts, never a traceback;
a fault during the work (a dead or hung simulator worker, a full disk, a run held by another
process) ends in one line too (exit code 1), and Ctrl-C / SIGTERM in one line saying what resumes
(exit code 130; a second Ctrl-C exits at once): ``run_guarded``."""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
USER_ERRORS = (ValueError, FileNotFoundError, TypeError)


def checked(parser: argparse.ArgumentParser, build: Callable[[], T]) -> T:
    """``build()`` (config construction and other cheap checks), or exit 2 with its message on one line."""
    try:
        return build()
    except USER_ERRORS as exc:
        parser.error(" ".join(str(exc).split()))


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM raise KeyboardInterrupt(signal name) once, so the work
    unwinds: engines stop their workers, the last checkpoint stays the resume point. A second
    signal exits at once (the workers see their sockets close and exit by themselves)."""
    hits = []

    def handler(signum, frame):
        hits.append(signum)
        if len(hits) > 1:
            os.write(2, f"\n{signal.Signals(signum).name} again: exiting now\n".encode())
            os._exit(128 + signum)
        raise KeyboardInterrupt(f"interrupted by {signal.Signals(signum).name}")
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def run_guarded(prog: str, work: Callable[[], T]) -> T:
    """``work()`` under ``interruptible``; a run fault or an interrupt becomes one line on
    stderr (``<prog>: error: ...`` exit 1, ``<prog>: ...`` exit 130), not a traceback."""
    try:
        with interruptible():
            return work()
    except KeyboardInterrupt as exc:
        print(f"{prog}: {' '.join(str(exc).split()) or 'interrupted'}", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - only the run faults below are turned into one line
        if _is_disk_full(exc):
            print(f"{prog}: error: {exc.strerror} while writing {exc.filename or 'a file'}: free disk space, then "
                  "rerun the same command (a run resumes from its last checkpoint)", file=sys.stderr)
            raise SystemExit(1) from None
        if not _is_run_fault(exc):
            raise
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(1) from None


def _is_disk_full(exc: Exception) -> bool:
    """A full disk or quota hit by a write that has no fault message of its own (RunError's writers have)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _is_run_fault(exc: Exception) -> bool:
    # deferred: a command refuses bad flags before torch (which runs imports) has loaded
    from tgrpo_lib.envs.group import EnvWorkerError
    from tgrpo_lib.infra.runs import RunError

    return isinstance(exc, (RunError, EnvWorkerError))


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
