"""Environment worker process: ``python -m tgrpo_lib.envs.worker FD SPEC``, started by GroupEngine.

It runs some of the engine's environments. Commands and small replies (task success, method
results, tracebacks) travel over the socket ``FD``; observations go into the engine's shared
memory (``shared_obs``), into the buffer each command names.

The parent owns the worker's lifetime: Ctrl-C in a terminal (SIGINT to the whole process group)
and a scheduler's SIGTERM are ignored here, so the parent can stop its loop, close the workers
and leave a resumable run; a worker exits on the parent's ``close`` or when its socket closes
(the parent died). A worker that stops answering (SIGSTOP, a stuck driver call) is killed by
the parent after ``$TGRPO_WORKER_TIMEOUT_S`` (``group.DEFAULT_REPLY_TIMEOUT_S``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from .config import EnvConfig
from .core import make_env
from .shared_obs import SharedObservations


def worker_pids(parent_pid: int) -> set[int]:
    """The environment worker processes ``parent_pid`` has started and that are still there (Linux
    /proc; empty elsewhere): what the fault tests and benchmark check for orphans."""
    found = set()
    for task in Path(f"/proc/{parent_pid}/task").glob("*"):
        try:
            found |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            pass
    return {p for p in found if b"tgrpo_lib.envs.worker" in _cmdline(p)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def process_state_code(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (``R``, ``S``, ``T``, ``Z``, ... from /proc/<pid>/stat),
    or None when there is no such process (or no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    return process_state_code(pid) not in (None, "Z")


def main(fd: int, spec_json: str) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    spec = json.loads(spec_json)
    conn = Connection(fd)
    conn.send(("ok", os.getpid()))  # started: the parent's start-up timeout ends here
    slots = spec["slots"]  # the engine's indices of this worker's environments
    try:
        envs = [make_env(spec["suite"], spec["task_id"], EnvConfig(**spec["cfg"])) for _ in slots]
        obs_spec = envs[0].observation_spec()
        conn.send(("ok", obs_spec))
    except BaseException:  # report construction failures to the parent instead of hanging it
        conn.send(("error", traceback.format_exc()))
        return
    shared = None
    try:
        while True:
            cmd, payload = conn.recv()
            try:
                if cmd == "attach":
                    shared = SharedObservations.attach(payload, obs_spec, spec["n_envs"])
                    out = None
                elif cmd == "reset":  # [(init state, buffer) or None (leave it) per environment]
                    out = []
                    for env, i, job in zip(envs, slots, payload):
                        if job is not None:
                            shared.write(job[1], i, env.reset(job[0]))
                        out.append(None)
                elif cmd == "step":  # [(action, buffer) or None (stay put)]; replies task success
                    out = []
                    for env, i, job in zip(envs, slots, payload):
                        if job is None:
                            out.append(None)
                            continue
                        obs, success = env.step(job[0])
                        shared.write(job[1], i, obs)
                        out.append(success)
                elif cmd == "call":
                    idx, method, args, kwargs = payload
                    out = getattr(envs[idx], method)(*args, **kwargs)
                elif cmd == "close":
                    break
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                conn.send(("ok", out))
            except BaseException:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the parent went away: nothing left to serve
        pass
    finally:
        for env in envs:
            env.close()
        if shared is not None:
            shared.close()
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
