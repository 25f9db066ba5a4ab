"""Group rollout engine: N environments in worker processes, one worker per core.

Rollouts are pipelined: the policy acts on one worker's environments while the other workers
simulate theirs (``step_send`` / ``step_recv``), so on 2 cores the policy forward no longer
leaves a core idle (``benchmarks/rollout_pipeline.py`` compares with lock-step stepping).

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
        self._in_flight: set[int] = set()  # workers with a step sent and not yet received
        self._gather()  # wait for every worker to build its environments
        self._last: list[dict] | None = None

    # ----------------------------------------------------------------- messaging
    def _send(self, w: int, cmd: str, payload) -> None:
        self._conns[w].send((cmd, payload))

    def _recv(self, w: int):
        proc = self._procs[w]
        try:
            status, payload = self._conns[w].recv()
        except EOFError as exc:
            raise EnvWorkerError(f"environment worker {proc.pid} died (exit code {proc.poll()}).") from exc
        if status != "ok":
            raise EnvWorkerError(f"environment worker {proc.pid} failed:\n{payload}")
        return payload

    def _gather(self) -> list:
        return [self._recv(w) for w in range(len(self._conns))]

    def _scatter(self, cmd: str, per_env: list) -> list:
        if self._in_flight:
            raise RuntimeError(f"workers {sorted(self._in_flight)} have a step in flight: call step_recv() first.")
        for w, slots in enumerate(self._slots):
            self._send(w, cmd, [per_env[i] for i in slots])
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
        state and last observation. Lets evaluation refill a slot as soon as its episode ends.
        Only the workers that own ``indices`` are contacted, so another worker may have a
        step in flight (pipelined rollouts)."""
        if self._last is None:
            raise RuntimeError("Call reset() before reset_some().")
        indices = [int(i) for i in indices]
        states = np.asarray(init_states, dtype=np.float64).reshape(len(indices), -1)
        wanted = dict(zip(indices, states))
        workers = [w for w, slots in enumerate(self._slots) if any(i in wanted for i in slots)]
        for w in workers:
            self._send(w, "reset", [wanted.get(i) for i in self._slots[w]])
        for w in workers:
            for i, o in zip(self._slots[w], self._recv(w)):
                if i in wanted:
                    self._last[i] = o
        return stack_obs(self._last)

    # ----------------------------------------------------------------- pipelined stepping
    @property
    def worker_slots(self) -> list[list[int]]:
        """The environment indices each worker process runs. Pipelined rollouts compute the
        policy for one worker's environments while the other workers simulate theirs."""
        return [list(s) for s in self._slots]

    def step_send(self, worker: int, actions: Mapping[int, np.ndarray]) -> None:
        """Start one step on ``worker``'s environments named in ``actions`` ({env index: (7,)});
        its other environments stay put. Returns at once; ``step_recv(worker)`` collects it."""
        if self._last is None:
            raise RuntimeError("Call reset() before step_send().")
        if worker in self._in_flight:
            raise RuntimeError(f"worker {worker} already has a step in flight: call step_recv({worker}) first.")
        payload = [(np.asarray(actions[i], dtype=np.float64).reshape(7), True) if i in actions else (None, False)
                   for i in self._slots[worker]]
        self._send(worker, "step", payload)
        self._in_flight.add(worker)

    def step_recv(self, worker: int) -> dict[int, bool]:
        """Wait for ``worker``'s step; updates the last observations and returns {env index:
        task success} for the environments that stepped."""
        if worker not in self._in_flight:
            raise RuntimeError(f"worker {worker} has no step in flight: call step_send({worker}, ...) first.")
        self._in_flight.discard(worker)
        done = {}
        for i, res in zip(self._slots[worker], self._recv(worker)):
            if res is not None:
                self._last[i], done[i] = res[0], bool(res[1])
        return done

    def last_obs(self, indices=None) -> dict:
        """The latest observation batch of environments ``indices`` (all by default), with
        ``obs["env"]`` the environment index of each row."""
        indices = list(range(self.n)) if indices is None else [int(i) for i in indices]
        return {**stack_obs([self._last[i] for i in indices]), "env": np.asarray(indices)}

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
        if w in self._in_flight:
            raise RuntimeError(f"environment {env_index} is stepping: call step_recv({w}) before call(), "
                               "or use the obs['env'] indices a pipelined policy_fn receives.")
        self._send(w, "call", (self._slots[w].index(env_index), method, args, kwargs))
        return self._recv(w)

    def drain(self) -> None:
        """Collect and drop every step still in flight (after an error in a pipelined loop),
        so the engine can be reset and used again."""
        for w in sorted(self._in_flight):
            self.step_recv(w)

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
"""obs batch -> {"actions": (B, 7), ...any per-row arrays to record, e.g. tokens, log_prob}.
The batch holds B <= N environments (``obs["env"]``: their indices), one worker's at a time."""


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
    as any environment succeeds, or when all reach ``max_steps``.

    Pipelined: the policy runs on one worker's environments (``obs["env"]`` names them) while
    the other workers simulate theirs, so the policy forward and the physics overlap instead of
    taking turns. Worker w may start step t+1 before another worker reports a success at step
    t; that step is then dropped, so every trajectory still has the same length. The order of
    policy calls is fixed (workers in turn), so a seeded run is reproducible.
    """
    if engine.n < 2:
        raise ValueError(f"A TGRPO group needs N >= 2 trajectories (got N={engine.n}): pass n_envs >= 2.")
    max_steps = max_steps or engine.max_steps
    parts = [p for p in engine.worker_slots if p]
    n = engine.n
    obs0 = engine.reset(init_state)
    frames: dict[str, list] = {k: [] for k in obs0 if k != "state"}
    states: dict[str, list] = {k: [v] for k, v in obs0["state"].items()}
    actions, success, extras = [], [], {}
    step_out: list[dict] = []  # per step: {env: policy outputs}; filled worker by worker
    step_obs: list[dict] = []  # per step: {env: observation the policy saw}
    step_next: list[dict] = []  # per step: {env: (next observation, success)}

    def launch(w: int, t: int) -> None:
        while len(step_out) <= t:
            step_out.append({}), step_obs.append({}), step_next.append({})
        obs = engine.last_obs(parts[w])
        out = policy_fn(obs)
        for j, i in enumerate(parts[w]):
            step_obs[t][i] = {k: v[j] for k, v in obs.items() if k not in ("state", "env")}
            step_out[t][i] = {k: np.asarray(v)[j] for k, v in out.items()}
        engine.step_send(w, {i: step_out[t][i]["actions"] for i in parts[w]})

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, desc="group rollout", leave=False)
    try:
        for w in range(len(parts)):
            launch(w, 0)
        t, length = 0, 0
        while True:
            ahead = []  # workers already sent step t+1
            stop = False
            for w in range(len(parts)):
                done = engine.step_recv(w)
                for i in parts[w]:
                    step_next[t][i] = (engine._last[i], done[i])
                stop = stop or any(done.values())
                if not stop and t + 1 < max_steps:
                    launch(w, t + 1)
                    ahead.append(w)
            length = t + 1
            if bar is not None:
                bar.update(1)
            if stop or length >= max_steps:
                for w in ahead:  # another worker's success ended the group: drop the extra step
                    engine.step_recv(w)
                break
            t += 1
    except BaseException:
        engine.drain()
        raise
    finally:
        if bar is not None:
            bar.close()
    for t in range(length):
        for k in frames:
            frames[k].append(np.stack([step_obs[t][i][k] for i in range(n)]))
        nxt = [step_next[t][i][0]["state"] for i in range(n)]
        for k in states:
            states[k].append(np.stack([s[k] for s in nxt]))
        actions.append(np.stack([np.asarray(step_out[t][i]["actions"], dtype=np.float64) for i in range(n)]))
        success.append(np.array([step_next[t][i][1] for i in range(n)]))
        for k in step_out[t][0]:
            if k != "actions":
                extras.setdefault(k, []).append(np.stack([step_out[t][i][k] for i in range(n)]))
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
