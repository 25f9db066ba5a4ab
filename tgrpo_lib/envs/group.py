"""Group engine: N environments of one task in worker processes, one worker per core.

This module holds ``GroupEngine`` and its worker protocol: starting the workers (fresh
interpreters running ``tgrpo_lib.envs.worker``), the commands and replies on their sockets, the
observations in shared memory (``shared_obs``), and how a worker that dies or hangs is reported
(``EnvWorkerError``, ``worker_reply_timeout``).

Rollouts are pipelined: the policy acts on one worker's environments while the other workers
simulate theirs (``GroupEngine.pipeline``, the loop in ``pipeline.Pipeline``), so on 2 cores the
policy forward no longer leaves a core idle (``benchmarks/rollout_pipeline.py`` compares with
lock-step stepping). The paper's group rollout lives in ``rollout`` (``rollout_group``), the
evaluation episodes in ``episodes`` (``run_episodes``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .config import EnvConfig, render_threads_env
from .pipeline import Pipeline, PolicyFn
from .registry import get_task
from .render_quality import SCENE_WORKER_ENV
from .shared_obs import SharedObservations
from .worker import process_state_code

WORKER_START_TIMEOUT_S = 300
"""A worker that has not started its interpreter by then is reported instead of waited for."""
WORKER_EXIT_WAIT_S = 5
"""How long a worker whose socket closed may take to exit before it is reported as hung and killed."""
REPLY_TIMEOUT_ENV = "TGRPO_WORKER_TIMEOUT_S"
DEFAULT_REPLY_TIMEOUT_S = 120.0
"""How long the engine waits for a worker's reply to one command (a step, a reset, building its
environments) before it reports the worker as hung and kills it. A step takes well under a
second on 2 loaded cores, so only a worker that stopped answering (stopped by SIGSTOP, stuck
in a driver call, deadlocked) reaches it. An operational setting, not part of any config (run
names hash the config tree): ``TGRPO_WORKER_TIMEOUT_S`` or ``GroupEngine(reply_timeout_s=...)``."""


def worker_reply_timeout(value: float | None = None) -> float:
    """``value``, else ``$TGRPO_WORKER_TIMEOUT_S``, else DEFAULT_REPLY_TIMEOUT_S; refused in one
    line unless a positive number of seconds."""
    raw = os.environ.get(REPLY_TIMEOUT_ENV) if value is None else value
    if raw is None or raw == "":
        return DEFAULT_REPLY_TIMEOUT_S
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        where = f"{REPLY_TIMEOUT_ENV}={raw!r}" if value is None else f"reply_timeout_s={raw!r}"
        raise ValueError(f"{where}: give the seconds to wait for a simulator worker's reply as a positive "
                         f"number (default {DEFAULT_REPLY_TIMEOUT_S:.0f})")
    return seconds


class EnvWorkerError(RuntimeError):
    """An environment worker process failed or died. The message is one line naming the worker
    (index, pid, environments) and how it ended (its signal, its exit code, or the last line of
    the exception it raised); the worker's full traceback, if any, is a note (``__notes__``),
    shown in tracebacks but not in ``str(exc)``."""

    def __init__(self, message: str, worker: int | None = None, pid: int | None = None,
                 signal_name: str | None = None, traceback_text: str | None = None):
        super().__init__(message)
        self.worker, self.pid, self.signal_name, self.traceback_text = worker, pid, signal_name, traceback_text
        if traceback_text:
            self.add_note(f"traceback of environment worker {pid}:\n{traceback_text}")


def exit_description(code: int | None) -> tuple[str, str | None]:
    """How a process ended, from its ``Popen.returncode``: ("killed by SIGSEGV", "SIGSEGV"),
    ("exited with code 1", None), or ("did not exit", None) for None."""
    if code is None:
        return "did not exit", None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}", name
    return f"exited with code {code}", None


_STATES = {"R": "running", "S": "sleeping", "D": "in uninterruptible sleep", "T": "stopped", "t": "stopped by a tracer",
           "Z": "a zombie"}


def process_state(pid: int) -> str:
    """What the kernel says a process is doing, e.g. "stopped" for one sent SIGSTOP."""
    code = process_state_code(pid)
    return "state unknown" if code is None else _STATES.get(code, f"state {code}")


# ---------------------------------------------------------------------------- the engine
class GroupEngine:
    """N copies of one task spread over worker processes (one per core by default).

    Observations travel through shared memory (``shared_obs``): a worker writes a step's frames
    and state in place and the parent copies out only the rows it returns, so the parent's
    share of a step stays small beside the workers' simulation even with ``fast`` frames. Only
    commands, actions and task success go over the sockets.

    A worker that dies is reported at once; one that stops answering is killed after
    ``reply_timeout_s`` (``$TGRPO_WORKER_TIMEOUT_S``, default 120 s): either way ``EnvWorkerError``,
    one line naming the worker, and no process left behind.
    """

    def __init__(self, suite: str, task_id: int, n_envs: int, cfg: EnvConfig = EnvConfig(), num_workers: int | None = None,
                 reply_timeout_s: float | None = None):
        if int(n_envs) < 1:
            raise ValueError(f"n_envs={n_envs}: pass at least 1 environment.")
        self.reply_timeout_s = worker_reply_timeout(reply_timeout_s)  # see DEFAULT_REPLY_TIMEOUT_S
        self.task = get_task(suite, task_id)  # any shipped suite, perturbation suites included
        self.cfg, self.n = cfg, int(n_envs)
        self.max_steps = cfg.max_steps or self.task.max_steps
        cores = os.cpu_count() or 1
        workers = max(1, min(self.n, num_workers or cores))
        self._slots = [[int(i) for i in part] for part in np.array_split(np.arange(self.n), workers)]
        self._conns: list[Connection] = []
        self._procs: list[subprocess.Popen] = []
        self._shared: SharedObservations | None = None
        self._front = np.zeros(self.n, dtype=np.intp)  # which of its two buffers holds each env's observation
        self._in_flight: set[int] = set()  # workers with a step sent and not yet received
        self._has_obs = False
        try:
            self._start_workers(render_threads=render_threads_env(workers, cores))
        except BaseException:
            self.close()
            raise

    def _start_workers(self, render_threads: str) -> None:
        # Workers are fresh interpreters (`python -m tgrpo_lib.envs.worker`): no fork of a process
        # that may hold a GL context or torch threads, and no re-import of the user's __main__.
        # Each talks to the parent over its own socket pair, inherited by file descriptor.
        env = {**os.environ, "LP_NUM_THREADS": render_threads,
               SCENE_WORKER_ENV: "1"}  # this process's bar is the one shown
        for slots in self._slots:
            mine, theirs = socket.socketpair()
            spec = json.dumps({"suite": self.task.suite, "task_id": self.task.task_id, "cfg": asdict(self.cfg),
                               "slots": slots, "n_envs": self.n})
            try:
                proc = subprocess.Popen([sys.executable, "-m", "tgrpo_lib.envs.worker", str(theirs.fileno()), spec],
                                        env=env, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
            except BaseException:
                mine.close()
                raise
            finally:
                theirs.close()
            self._procs.append(proc)
            self._conns.append(Connection(mine.detach()))
        for w, conn in enumerate(self._conns):
            if not conn.poll(WORKER_START_TIMEOUT_S):
                raise EnvWorkerError(f"{self._worker_name(w)} did not start within "
                                     f"{WORKER_START_TIMEOUT_S} s; see its stderr above.", w, self._procs[w].pid)
            self._recv(w)  # its pid: the interpreter is up
        specs = self._gather(max(self.reply_timeout_s, WORKER_START_TIMEOUT_S))  # every worker has built its environments
        self._shared = SharedObservations.create(specs[0], self.n)
        try:
            for w in range(len(self._conns)):
                self._send(w, "attach", self._shared.name)
            self._gather()
        finally:
            self._shared.unlink()  # mapped by every worker (or the start failed): the name has done its job

    # ----------------------------------------------------------------- messaging
    def _send(self, w: int, cmd: str, payload) -> None:
        try:
            self._conns[w].send((cmd, payload))
        except OSError:  # broken pipe: the worker is gone (its exit says more than the pipe)
            raise self._died(w) from None

    def _recv(self, w: int, timeout_s: float | None = None):
        timeout_s = self.reply_timeout_s if timeout_s is None else timeout_s
        try:
            if not self._conns[w].poll(timeout_s):
                raise self._hung(w, timeout_s)
            status, payload = self._conns[w].recv()
        except (EOFError, OSError):
            raise self._died(w) from None
        if status != "ok":
            last = next((line.strip() for line in reversed(str(payload).splitlines()) if line.strip()), "?")
            raise EnvWorkerError(f"{self._worker_name(w)} failed: {last}", w, self._procs[w].pid,
                                 traceback_text=str(payload))
        return payload

    def _worker_name(self, w: int) -> str:
        slots = self._slots[w]
        envs = f"env {slots[0]}" if len(slots) == 1 else f"envs {slots[0]}-{slots[-1]}"
        return f"environment worker {w} (pid {self._procs[w].pid}, {envs})"

    def _died(self, w: int) -> EnvWorkerError:
        """The error for worker ``w`` whose socket closed: its exit signal or code. A process
        that closed its socket but does not exit is killed, so nothing is left behind."""
        proc = self._procs[w]
        try:
            code = proc.wait(timeout=WORKER_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return EnvWorkerError(f"{self._worker_name(w)} closed its socket but did not exit within "
                                  f"{WORKER_EXIT_WAIT_S} s; it was killed.", w, proc.pid)
        how, name = exit_description(code)
        return EnvWorkerError(f"{self._worker_name(w)} died ({how}).", w, proc.pid, signal_name=name)

    def _hung(self, w: int, timeout_s: float) -> EnvWorkerError:
        """The error for worker ``w``, alive but silent for ``timeout_s``: it is killed first
        (SIGKILL ends a stopped process too), so the run ends with nothing left behind."""
        proc = self._procs[w]
        state = process_state(proc.pid)
        proc.kill()
        proc.wait()
        return EnvWorkerError(f"{self._worker_name(w)} sent no reply within {timeout_s:g} s (it was {state}; "
                              f"killed; {REPLY_TIMEOUT_ENV} sets the limit).", w, proc.pid)

    def _gather(self, timeout_s: float | None = None) -> list:
        return [self._recv(w, timeout_s) for w in range(len(self._conns))]

    def _run(self, cmd: str, jobs: Mapping[int, object]) -> dict:
        """Send ``cmd`` with ``jobs`` ({env index: argument}) to the workers owning those
        environments and wait for them: {env index: reply}. Each environment writes its new
        observation into its other buffer, which then becomes its current one."""
        workers = [w for w, slots in enumerate(self._slots) if any(i in jobs for i in slots)]
        busy = sorted(self._in_flight.intersection(workers))
        if busy:
            raise RuntimeError(f"workers {busy} have a step in flight: call step_recv() first.")
        for w in workers:
            self._send(w, cmd, [(jobs[i], int(1 - self._front[i])) if i in jobs else None for i in self._slots[w]])
        replies = {}
        for w in workers:
            for i, reply in zip(self._slots[w], self._recv(w)):
                if i in jobs:
                    replies[i] = reply
                    self._front[i] ^= 1
        return replies

    def _read(self, indices) -> dict:
        return self._shared.read(self._front[indices], indices)

    # ----------------------------------------------------------------- public API
    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes, in worker order (e.g. to read their CPU time)."""
        return [p.pid for p in self._procs]

    @property
    def worker_slots(self) -> list[list[int]]:
        """The environment indices each worker process runs. Pipelined rollouts compute the
        policy for one worker's environments while the other workers simulate theirs."""
        return [list(s) for s in self._slots]

    def reset(self, init_states: np.ndarray) -> dict:
        """Reset all environments: ``init_states`` is one state (D,) for all, or (N, D)."""
        states = np.asarray(init_states, dtype=np.float64)
        if states.ndim == 1:
            states = np.broadcast_to(states, (self.n, states.shape[0]))
        if states.shape[0] != self.n:
            raise ValueError(f"Got {states.shape[0]} init states for {self.n} environments: pass one or N.")
        if self._in_flight:
            raise RuntimeError(f"workers {sorted(self._in_flight)} have a step in flight: call step_recv() first.")
        self._run("reset", dict(enumerate(states)))
        self._has_obs = True
        return self._read(np.arange(self.n))

    def reset_some(self, indices, init_states: np.ndarray) -> dict:
        """Reset only environments ``indices`` (one init state each); the others keep their
        state and last observation. Lets evaluation refill a slot as soon as its episode ends.
        Only the workers that own ``indices`` are contacted, so another worker may have a
        step in flight (pipelined rollouts). Returns the observations of all N."""
        if not self._has_obs:
            raise RuntimeError("Call reset() before reset_some().")
        indices = [int(i) for i in indices]
        states = np.asarray(init_states, dtype=np.float64).reshape(len(indices), -1)
        self._run("reset", dict(zip(indices, states)))
        return self._read(np.arange(self.n))

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        """Step the active environments together (lock-step); inactive ones keep their last
        observation. Returns the observations of all N and each one's task success."""
        if not self._has_obs:
            raise RuntimeError("Call reset() before step().")
        if self._in_flight:
            raise RuntimeError(f"workers {sorted(self._in_flight)} have a step in flight: call step_recv() first.")
        actions = np.asarray(actions, dtype=np.float64).reshape(self.n, 7)
        active = np.ones(self.n, bool) if active is None else np.asarray(active, bool)
        done = self._run("step", {i: actions[i] for i in range(self.n) if active[i]})
        success = np.zeros(self.n, bool)
        for i, ok in done.items():
            success[i] = ok
        return self._read(np.arange(self.n)), success

    # ----------------------------------------------------------------- pipelined stepping
    def step_send(self, worker: int, actions: Mapping[int, np.ndarray]) -> None:
        """Start one step on ``worker``'s environments named in ``actions`` ({env index: (7,)});
        its other environments stay put. Returns at once; ``step_recv(worker)`` collects it."""
        if not self._has_obs:
            raise RuntimeError("Call reset() before step_send().")
        if worker in self._in_flight:
            raise RuntimeError(f"worker {worker} already has a step in flight: call step_recv({worker}) first.")
        payload = [(np.asarray(actions[i], dtype=np.float64).reshape(7), int(1 - self._front[i]))
                   if i in actions else None for i in self._slots[worker]]
        self._send(worker, "step", payload)
        self._in_flight.add(worker)

    def step_recv(self, worker: int) -> dict[int, bool]:
        """Wait for ``worker``'s step; its environments' observations become the new ones.
        Returns {env index: task success} for the environments that stepped."""
        if worker not in self._in_flight:
            raise RuntimeError(f"worker {worker} has no step in flight: call step_send({worker}, ...) first.")
        self._in_flight.discard(worker)
        done = {}
        for i, success in zip(self._slots[worker], self._recv(worker)):
            if success is not None:
                done[i] = bool(success)
                self._front[i] ^= 1
        return done

    def last_obs(self, indices=None) -> dict:
        """The latest observation batch of environments ``indices`` (all by default), with
        ``obs["env"]`` the environment index of each row. An environment whose worker is
        stepping shows its observation from before that step."""
        indices = list(range(self.n)) if indices is None else [int(i) for i in indices]
        return {**self._read(np.asarray(indices, dtype=np.intp)), "env": np.asarray(indices)}

    def pipeline(self, policy_fn: PolicyFn, acts: Callable[[int], bool]) -> Pipeline:
        """Step the environments with ``policy_fn`` in the loop, one worker's at a time, while
        ``acts(env index)`` says which keep going; see ``Pipeline``. Use it in a ``with``."""
        return Pipeline(self, policy_fn, acts)

    def drain(self) -> None:
        """Collect and drop every step still in flight (after an error in a pipelined loop),
        so the engine can be reset and used again."""
        for w in sorted(self._in_flight):
            self.step_recv(w)

    def call(self, env_index: int, method: str, *args, **kwargs):
        """Call a method of one environment (e.g. ``set_object_pose`` in tests)."""
        w = next(k for k, slots in enumerate(self._slots) if env_index in slots)
        if w in self._in_flight:
            raise RuntimeError(f"environment {env_index} is stepping: call step_recv({w}) before call(), "
                               "or use the obs['env'] indices a pipelined policy_fn receives.")
        self._send(w, "call", (self._slots[w].index(env_index), method, args, kwargs))
        return self._recv(w)

    def close(self) -> None:
        """Stop the workers and free the shared memory. Idempotent; safe after a worker died."""
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except OSError:
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for conn in self._conns:
            conn.close()
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        self._conns, self._procs, self._in_flight = [], [], set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass
