"""Group rollout engine: N environments in worker processes, one worker per core.

Rollouts are pipelined: the policy acts on one worker's environments while the other workers
simulate theirs (``GroupEngine.pipeline``), so on 2 cores the policy forward no longer leaves a
core idle (``benchmarks/rollout_pipeline.py`` compares with lock-step stepping).

TGRPO samples N trajectories from the *same* init state and stops all of them as soon as one
succeeds or all reach the step budget, so every trajectory of a group has the same length
(paper, Sec. IV-A): ``rollout_group``. Evaluation runs the same pipeline with one init state
per environment and an individual stop per environment (``episodes.run_episodes``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
from tqdm.auto import tqdm

from .config import STOP_RULES, EnvConfig
from .registry import get_task
from .render_quality import SCENE_WORKER_ENV
from .shared_obs import SharedObservations

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

PolicyFn = Callable[[dict], Mapping[str, np.ndarray]]
"""obs batch -> {"actions": (B, 7), ...any per-row arrays to record, e.g. tokens, log_prob}.
The batch holds B <= N environments (``obs["env"]``: their indices), one worker's at a time."""


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
    try:
        code = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "state unknown"
    return _STATES.get(code, f"state {code}")


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
            self._start_workers(render_threads=max(1, cores // workers))  # llvmpipe threads: the worker's cores
        except BaseException:
            self.close()
            raise

    def _start_workers(self, render_threads: int) -> None:
        # Workers are fresh interpreters (`python -m tgrpo_lib.envs.worker`): no fork of a process
        # that may hold a GL context or torch threads, and no re-import of the user's __main__.
        # Each talks to the parent over its own socket pair, inherited by file descriptor.
        env = {**os.environ, "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS", str(render_threads)),
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


@dataclass
class WorkerStep:
    """One worker's finished step in a ``Pipeline`` (one row per stepped environment)."""

    worker: int
    envs: list[int]  # the environments that stepped (= obs["env"])
    obs: dict  # the batch the policy saw: {"agentview": (B, H, W, 3), "proprio": (B, 8), "state": {...}, "env": (B,)}
    out: Mapping[str, np.ndarray]  # what the policy returned for it: {"actions": (B, 7), ...}
    success: np.ndarray  # (B,) bool: task solved after this step
    next_obs: dict  # the batch after the step, same layout as ``obs``


class Pipeline:
    """Pipelined stepping: the policy acts on one worker's environments while the others simulate.

    Every worker starts on its environments for which ``acts`` is true; then, round after
    round, each running worker (in a fixed order, so seeded runs reproduce) has its step
    collected and yielded as a ``WorkerStep``, and is started again on its environments for
    which ``acts`` is true *after* the consumer has handled that step (none: the worker stops
    for good). The loop ends when no worker runs. While a step is being handled only its own
    worker is idle, so the consumer may reset that worker's environments (``reset_some``); a
    step that another worker had already started is still yielded, and the consumer decides
    whether it counts (``rollout_group`` drops the steps started after a success).

    ``engine`` needs ``worker_slots``, ``last_obs``, ``step_send``, ``step_recv`` and ``drain``.
    Leaving the ``with`` block, by an exception too, collects and drops any step in flight.
    """

    def __init__(self, engine, policy_fn: PolicyFn, acts: Callable[[int], bool]):
        self.engine, self.policy_fn, self.acts = engine, policy_fn, acts

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.engine.drain()

    def _launch(self, worker: int, slots: list[int]):
        live = [i for i in slots if self.acts(i)]
        if not live:
            return None
        obs = self.engine.last_obs(live)
        out = self.policy_fn(obs)
        actions = np.asarray(out["actions"], dtype=np.float64)  # (B, 7)
        self.engine.step_send(worker, dict(zip(live, actions)))
        return live, obs, out

    def __iter__(self) -> Iterator[WorkerStep]:
        workers = [(w, slots) for w, slots in enumerate(self.engine.worker_slots) if slots]
        started = {w: self._launch(w, slots) for w, slots in workers}
        while any(s is not None for s in started.values()):
            for w, slots in workers:
                if started[w] is None:
                    continue
                live, obs, out = started[w]
                started[w] = None
                done = self.engine.step_recv(w)
                yield WorkerStep(w, live, obs, out, np.array([done[i] for i in live], dtype=bool),
                                 self.engine.last_obs(live))
                started[w] = self._launch(w, slots)


def stack_obs(obs_list: list[dict]) -> dict:
    """List of per-env observations -> batch dict with a leading N axis (state stays a dict)."""
    batch = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0] if k != "state"}
    states = [o["state"] for o in obs_list]
    batch["state"] = {k: np.stack([s[k] for s in states]) for k in states[0]}
    return batch


# ---------------------------------------------------------------------------- group rollouts
@dataclass
class GroupRollout:
    """N equal-length trajectories from one init state (arrays are (N, T, ...))."""

    obs: dict  # images / proprio the policy saw at steps 0..T-1: {"agentview": (N,T,H,W,3), "proprio": (N,T,8)}
    states: dict  # privileged state at steps 0..T: {key: (N, T+1, ...)}; reward of step t reads states[:, t+1]
    actions: np.ndarray  # (N, T, 7)
    success: np.ndarray  # (N, T) bool: task solved after step t
    extras: dict = field(default_factory=dict)  # policy outputs per step, e.g. tokens (N,T,7), log_prob (N,T)
    init_state_index: int | None = None
    valid: np.ndarray | None = None
    """(N, T) bool, the steps each trajectory really took; None: all. With ``stop="each"`` a
    trajectory that succeeded before the group's end is padded with its last step (the success
    state absorbing: state, frames and success repeated) and its padded steps are False."""

    def __post_init__(self):
        if self.valid is None:
            self.valid = np.ones(self.actions.shape[:2], dtype=bool)

    @property
    def length(self) -> int:
        return int(self.actions.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """(N,) steps each trajectory took."""
        return self.valid.sum(1)

    @property
    def episode_success(self) -> np.ndarray:
        """(N,) whether each trajectory succeeded at any step."""
        return self.success.any(axis=1)


def rollout_group(engine: GroupEngine, policy_fn: PolicyFn, init_state: np.ndarray, max_steps: int | None = None,
                  init_state_index: int | None = None, progress: bool = False, stop: str = "group") -> GroupRollout:
    """Sample N trajectories from one init state. ``stop="group"`` is the paper's stop rule: stop
    all as soon as any environment succeeds, or when all reach ``max_steps``. ``stop="each"``:
    every trajectory runs to its own success or ``max_steps``; the group lasts as long as its
    longest member and the shorter successes are padded (``GroupRollout.valid``).

    Pipelined (``GroupEngine.pipeline``): the policy runs on one worker's environments
    (``obs["env"]`` names them) while the other workers simulate theirs. Worker w may start
    step t+1 before another worker reports a success at step t; that step is then dropped, so
    every trajectory still has the same length. The order of policy calls is fixed (workers in
    turn), so a seeded run is reproducible.
    """
    if engine.n < 2:
        raise ValueError(f"A TGRPO group needs N >= 2 trajectories (got N={engine.n}): pass n_envs >= 2.")
    if stop not in STOP_RULES:
        raise ValueError(f"stop={stop!r}: pass 'group' (the paper's rule) or 'each'.")
    max_steps = max_steps or engine.max_steps
    n = engine.n
    obs0 = engine.reset(init_state)
    taken = [0] * n  # steps each environment has finished
    solved = [False] * n  # stop="each": environment i has succeeded and stopped
    stopped_at: int | None = None  # the group's length, once a success has ended it (stop="group")
    seen: list[dict] = []  # per step t: {env: (observation row the policy saw, its outputs row)}
    after: list[dict] = []  # per step t: {env: (state row after the step, success)}

    def acts(i: int) -> bool:
        return stopped_at is None and not solved[i] and taken[i] < max_steps

    with tqdm(total=max_steps, desc="group rollout", leave=False, disable=not progress) as bar, \
            engine.pipeline(policy_fn, acts) as steps:
        for s in steps:
            t = taken[s.envs[0]]  # a worker's environments step together
            for i in s.envs:
                taken[i] += 1
            if stopped_at is not None and t >= stopped_at:
                continue  # started before another worker's success ended the group: dropped
            while len(seen) <= t:
                seen.append({}), after.append({})
            for j, i in enumerate(s.envs):
                seen[t][i] = ({k: v[j] for k, v in s.obs.items() if k not in ("state", "env")},
                              {k: np.asarray(v)[j] for k, v in s.out.items()})
                after[t][i] = ({k: v[j] for k, v in s.next_obs["state"].items()}, bool(s.success[j]))
            if len(after[t]) == n:
                bar.update(1)
            if stop == "each":
                for j, i in enumerate(s.envs):
                    solved[i] = solved[i] or bool(s.success[j])
            elif s.success.any() and stopped_at is None:
                stopped_at = t + 1
    length = len(seen) if stop == "each" else (max_steps if stopped_at is None else stopped_at)
    own = [taken[i] if stop == "each" else length for i in range(n)]  # steps trajectory i took

    def row(table: list[dict], t: int, i: int):  # a padded step repeats the trajectory's last one
        return table[min(t, own[i] - 1)][i]
    frames: dict[str, list] = {k: [] for k in obs0 if k != "state"}
    states: dict[str, list] = {k: [v] for k, v in obs0["state"].items()}
    actions, success, extras = [], [], {}
    for t in range(length):
        for k in frames:
            frames[k].append(np.stack([row(seen, t, i)[0][k] for i in range(n)]))
        for k in states:
            states[k].append(np.stack([row(after, t, i)[0][k] for i in range(n)]))
        actions.append(np.stack([np.asarray(row(seen, t, i)[1]["actions"], dtype=np.float64) for i in range(n)]))
        success.append(np.array([row(after, t, i)[1] for i in range(n)]))
        for k in row(seen, t, 0)[1]:
            if k != "actions":
                extras.setdefault(k, []).append(np.stack([row(seen, t, i)[1][k] for i in range(n)]))
    return GroupRollout(
        obs={k: np.stack(v, axis=1) for k, v in frames.items()},
        states={k: np.stack(v, axis=1) for k, v in states.items()},
        actions=np.stack(actions, axis=1),
        success=np.stack(success, axis=1),
        extras={k: np.stack(v, axis=1) for k, v in extras.items()},
        init_state_index=init_state_index,
        valid=np.arange(length)[None, :] < np.asarray(own)[:, None],
    )
