"""Group rollout engine: N environments in worker processes stepping in lock-step.

TGRPO samples N trajectories from the *same* init state and stops all of them as soon as one
succeeds or all reach the step budget, so every trajectory of a group has the same length
(paper, Sec. IV-A). Evaluation reuses the engine with one init state per environment and an
individual stop per environment.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Client, Listener
from typing import Callable, Mapping

import numpy as np

from .config import EnvConfig
from .registry import canonical_suite, get_task


# ---------------------------------------------------------------------------- worker side
def _worker_main(address: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    conn = Client(address, family="AF_UNIX", authkey=bytes.fromhex(os.environ["TGRPO_WORKER_AUTHKEY"]))
    conn.send(spec["index"])
    suite, task_id, n_local = spec["suite"], spec["task_id"], spec["n_local"]
    cfg = EnvConfig(**spec["cfg"])
    try:
        import tgrpo_lib  # noqa: F401  (headless GL + LIBERO config before libero is imported)

        from .core import make_env

        envs = [make_env(suite, task_id, cfg) for _ in range(n_local)]
        conn.send(("ok", None))
    except BaseException:  # report construction failures to the parent instead of hanging it
        conn.send(("error", traceback.format_exc()))
        return
    try:
        while True:
            cmd, payload = conn.recv()
            try:
                if cmd == "reset":  # None = leave this environment as it is
                    out = [env.reset(s) if s is not None else None for env, s in zip(envs, payload)]
                elif cmd == "step":
                    out = [env.step(a) if on else None for env, (a, on) in zip(envs, payload)]
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
    finally:
        for env in envs:
            env.close()
        conn.close()


class EnvWorkerError(RuntimeError):
    """An environment worker process failed; the message carries its traceback."""


# ---------------------------------------------------------------------------- parent side
class GroupEngine:
    """N copies of one task spread over worker processes (one per core by default).

    Frames travel once, worker -> parent, through a pipe; at 128 px that is ~50 kB per
    environment and step, negligible beside the ~10-70 ms a step costs to simulate and render.
    """

    def __init__(self, suite: str, task_id: int, n_envs: int, cfg: EnvConfig = EnvConfig(), num_workers: int | None = None):
        if int(n_envs) < 1:
            raise ValueError(f"n_envs={n_envs}: pass at least 1 environment.")
        self.task = get_task(canonical_suite(suite), task_id)
        self.cfg, self.n = cfg, int(n_envs)
        self.max_steps = cfg.max_steps or self.task.max_steps
        cores = os.cpu_count() or 1
        workers = max(1, min(self.n, num_workers or cores))
        self._slots = [list(part) for part in np.array_split(np.arange(self.n), workers)]
        # Workers are fresh interpreters (`python -m tgrpo_lib.envs.group`): no fork of a process
        # that may hold a GL context or torch threads, and no re-import of the user's __main__.
        self._listener = Listener(family="AF_UNIX", authkey=secrets.token_bytes(16))
        self._conns, self._procs = [], []
        render_threads = max(1, cores // workers)
        env_vars = {**os.environ, "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS", str(render_threads))}
        for w, slots in enumerate(self._slots):
            spec = json.dumps({"suite": self.task.suite, "task_id": self.task.task_id, "cfg": asdict(cfg), "n_local": len(slots), "index": w})
            proc = subprocess.Popen(
                [sys.executable, "-m", "tgrpo_lib.envs.group", self._listener.address, spec],
                env={**env_vars, "TGRPO_WORKER_AUTHKEY": self._listener._authkey.hex()},
                stdin=subprocess.DEVNULL,
            )
            self._procs.append(proc)
        self._listener._listener._socket.settimeout(300)  # a worker that never connects must not hang us
        for _ in self._slots:  # workers connect back in any order; each first says which it is
            try:
                conn = self._listener.accept()
            except OSError as exc:
                self.close()
                raise EnvWorkerError("an environment worker did not start within 300 s; see its stderr above.") from exc
            self._conns.append(conn)
        order = [conn.recv() for conn in self._conns]
        self._conns = [c for _, c in sorted(zip(order, self._conns), key=lambda x: x[0])]
        self._gather()  # wait for every worker to build its environments
        self._last: list[dict] | None = None

    # ----------------------------------------------------------------- messaging
    def _gather(self) -> list:
        results = []
        for conn, proc in zip(self._conns, self._procs):
            try:
                status, payload = conn.recv()
            except EOFError as exc:
                raise EnvWorkerError(f"environment worker {proc.pid} died (exit code {proc.poll()}).") from exc
            if status != "ok":
                raise EnvWorkerError(f"environment worker {proc.pid} failed:\n{payload}")
            results.append(payload)
        return results

    def _scatter(self, cmd: str, per_env: list) -> list:
        for conn, slots in zip(self._conns, self._slots):
            conn.send((cmd, [per_env[i] for i in slots]))
        flat: list = [None] * self.n
        for slots, out in zip(self._slots, self._gather()):
            for i, o in zip(slots, out):
                flat[i] = o
        return flat

    # ----------------------------------------------------------------- public API
    def reset(self, init_states: np.ndarray) -> dict:
        """Reset all environments: ``init_states`` is one state (D,) for all, or (N, D)."""
        states = np.asarray(init_states, dtype=np.float64)
        if states.ndim == 1:
            states = np.broadcast_to(states, (self.n, states.shape[0]))
        if states.shape[0] != self.n:
            raise ValueError(f"Got {states.shape[0]} init states for {self.n} environments: pass one or N.")
        self._last = self._scatter("reset", list(states))
        return stack_obs(self._last)

    def reset_some(self, indices, init_states: np.ndarray) -> dict:
        """Reset only environments ``indices`` (one init state each); the others keep their
        state and last observation. Lets evaluation refill a slot as soon as its episode ends."""
        if self._last is None:
            raise RuntimeError("Call reset() before reset_some().")
        indices = [int(i) for i in indices]
        states = np.asarray(init_states, dtype=np.float64).reshape(len(indices), -1)
        per_env: list = [None] * self.n
        for i, s in zip(indices, states):
            per_env[i] = s
        out = self._scatter("reset", per_env)
        for i in indices:
            self._last[i] = out[i]
        return stack_obs(self._last)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        """Step the active environments; inactive ones keep their last observation."""
        if self._last is None:
            raise RuntimeError("Call reset() before step().")
        actions = np.asarray(actions, dtype=np.float64).reshape(self.n, 7)
        active = np.ones(self.n, bool) if active is None else np.asarray(active, bool)
        out = self._scatter("step", [(a, bool(on)) for a, on in zip(actions, active)])
        success = np.zeros(self.n, bool)
        for i, res in enumerate(out):
            if res is not None:
                self._last[i], success[i] = res
        return stack_obs(self._last), success

    def call(self, env_index: int, method: str, *args, **kwargs):
        """Call a method of one environment (e.g. ``set_object_pose`` in tests)."""
        w = next(k for k, slots in enumerate(self._slots) if env_index in slots)
        self._conns[w].send(("call", (self._slots[w].index(env_index), method, args, kwargs)))
        status, payload = self._conns[w].recv()
        if status != "ok":
            raise EnvWorkerError(payload)
        return payload

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for conn in self._conns:
            conn.close()
        if getattr(self, "_listener", None) is not None:
            self._listener.close()
            self._listener = None
        self._conns, self._procs = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass


def stack_obs(obs_list: list[dict]) -> dict:
    """List of per-env observations -> batch dict with a leading N axis (state stays a dict)."""
    batch = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0] if k != "state"}
    states = [o["state"] for o in obs_list]
    batch["state"] = {k: np.stack([s[k] for s in states]) for k in states[0]}
    return batch


# ---------------------------------------------------------------------------- rollouts
PolicyFn = Callable[[dict], Mapping[str, np.ndarray]]
"""obs batch -> {"actions": (N, 7), ...any per-env arrays to record, e.g. tokens, log_prob}."""


@dataclass
class GroupRollout:
    """N equal-length trajectories from one init state (arrays are (N, T, ...))."""

    obs: dict  # images / proprio the policy saw at steps 0..T-1: {"agentview": (N,T,H,W,3), "proprio": (N,T,8)}
    states: dict  # privileged state at steps 0..T: {key: (N, T+1, ...)}; reward of step t reads states[:, t+1]
    actions: np.ndarray  # (N, T, 7)
    success: np.ndarray  # (N, T) bool: task solved after step t
    extras: dict = field(default_factory=dict)  # policy outputs per step, e.g. tokens (N,T,7), log_prob (N,T)
    init_state_index: int | None = None

    @property
    def length(self) -> int:
        return int(self.actions.shape[1])

    @property
    def episode_success(self) -> np.ndarray:
        """(N,) whether each trajectory succeeded at any step."""
        return self.success.any(axis=1)


def rollout_group(engine: GroupEngine, policy_fn: PolicyFn, init_state: np.ndarray, max_steps: int | None = None,
                  init_state_index: int | None = None, progress: bool = False) -> GroupRollout:
    """Sample N trajectories from one init state with the paper's stop rule: stop all as soon
    as any environment succeeds, or when all reach ``max_steps``."""
    if engine.n < 2:
        raise ValueError(f"A TGRPO group needs N >= 2 trajectories (got N={engine.n}): pass n_envs >= 2.")
    max_steps = max_steps or engine.max_steps
    obs = engine.reset(init_state)
    frames: dict[str, list] = {k: [] for k in obs if k != "state"}
    states: dict[str, list] = {k: [v] for k, v in obs["state"].items()}
    actions, success, extras = [], [], {}
    steps = range(max_steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="group rollout", leave=False)
    for _ in steps:
        for k in frames:
            frames[k].append(obs[k])
        out = policy_fn(obs)
        act = np.asarray(out["actions"], dtype=np.float64)
        for k, v in out.items():
            if k != "actions":
                extras.setdefault(k, []).append(np.asarray(v))
        obs, done = engine.step(act)
        for k, v in obs["state"].items():
            states[k].append(v)
        actions.append(act)
        success.append(done)
        if done.any():
            break
    return GroupRollout(
        obs={k: np.stack(v, axis=1) for k, v in frames.items()},
        states={k: np.stack(v, axis=1) for k, v in states.items()},
        actions=np.stack(actions, axis=1),
        success=np.stack(success, axis=1),
        extras={k: np.stack(v, axis=1) for k, v in extras.items()},
        init_state_index=init_state_index,
    )


if __name__ == "__main__":  # worker entry point, started by GroupEngine
    _worker_main(sys.argv[1], sys.argv[2])
