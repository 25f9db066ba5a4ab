"""Run the expert over a task's init states: results table, demos on disk, key poses."""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tgrpo_lib import OUTPUTS_DIR
from tgrpo_lib.analysis.stats import wilson_interval
from tgrpo_lib.envs.config import EnvConfig, render_threads_env
from tgrpo_lib.envs.core import make_env
from tgrpo_lib.envs.init_states import training_layout_seeds
from tgrpo_lib.envs.registry import canonical_suite, get_task, standard_init_states
from tgrpo_lib.infra.demos import Demo, save_demos, task_dir

from .control import ExpertConfig
from .keyposes import aggregate_key_poses, extract_key_events, save_key_poses
from .rollout import run_episode

DEMO_EXPERT_CONFIG = ExpertConfig(action_noise=0.03, waypoint_jitter=0.004)
"""Expert settings for recorded demos: small action noise and jittered waypoints for diversity."""
INIT_STATE_SOURCES = ("standard", "sampled")
"""Where episode k starts: LIBERO's standard state k mod 50, or a fresh layout drawn by LIBERO's
placement sampler with training seed k (``envs.init_states.training_layout_seeds``: disjoint from
the held-out seeds, so demonstrations on sampled layouts leave every evaluation state unseen)."""
NUM_STANDARD_INITS = 50


@dataclass
class TaskRun:
    """Outcome of ``run_task``: one row per episode, and the files written."""

    results: pd.DataFrame
    key_poses: list[dict]
    files: dict[str, str]

    @property
    def success_rate(self) -> float:
        return float(self.results["success"].mean()) if len(self.results) else 0.0


def run_task(suite: str, task_id: int, *, episodes: int = 10, seed: int = 0, init_states: str = "standard",
             cfg: ExpertConfig | None = None, record: bool = False, wrist: bool = False, out: str | Path | None = None,
             progress: bool = True, workers: int | None = None) -> TaskRun:
    """Run ``episodes`` expert episodes on init states 0, 1, ... (cycling over the 50 standard ones),
    or, with ``init_states="sampled"``, on training layouts 0, 1, ... (one new scene each).

    Physics only unless ``record`` (then agentview at 128 px, plus wrist if asked). Writes
    ``<out>/<suite>/task_<id>/{results.csv, key_poses.json[, demos.h5]}`` when ``out`` is given;
    only successful episodes are stored as demos and used for key poses.

    ``workers``: processes running episodes side by side (default: one per core, at most one
    per episode). Episode k depends on its init state and seed, and also on how many resets its
    worker's env saw before (LIBERO re-places fixtures, by up to ~2 cm, at every reset; the init
    state does not hold them), so results can differ slightly with the number of workers; only
    ``workers=1`` makes the demos and key poses bit-reproducible.
    """
    from tqdm.auto import tqdm

    if init_states not in INIT_STATE_SOURCES:
        raise ValueError(f"init_states={init_states!r}: pass one of {INIT_STATE_SOURCES}.")
    if episodes < 1:
        raise ValueError(f"episodes={episodes}: pass at least 1.")
    suite = canonical_suite(suite)
    spec = get_task(suite, task_id)
    cfg = cfg if cfg is not None else (DEMO_EXPERT_CONFIG if record else ExpertConfig())
    cams = (("agentview", "wrist") if wrist else ("agentview",)) if record else ()
    env_cfg = EnvConfig(cameras=cams, camera_size=128)
    workers = max(1, min(episodes, workers or os.cpu_count() or 1))
    job = (suite, task_id, dataclasses.asdict(env_cfg), dataclasses.asdict(cfg), seed, record, init_states)
    bar = tqdm(total=episodes, desc=f"expert {spec.key}", disable=not progress, leave=False)
    done: dict[int, tuple] = {}
    for k, res in _episodes(episodes, workers, job):
        done[k] = res
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([d[0]['success'] for d in done.values()]):.2f}")
    bar.close()
    rows = [done[k][0] for k in range(episodes)]
    demos = [done[k][1] for k in range(episodes) if done[k][1] is not None]
    events = [done[k][2] for k in range(episodes) if done[k][2] is not None]
    results = pd.DataFrame(rows)
    poses, used = aggregate_key_poses(events)
    files: dict[str, str] = {}
    if out is not None:
        folder = task_dir(suite, task_id, out)
        folder.mkdir(parents=True, exist_ok=True)
        results.to_csv(folder / "results.csv", index=False)
        files["results"] = str(folder / "results.csv")
        if poses:
            files["key_poses"] = str(save_key_poses(folder / "key_poses.json", suite, task_id, poses, used,
                                                    per_demo=events))
        if record and demos:
            files["demos"] = str(save_demos(folder / "demos.h5", demos, suite=suite, task_id=task_id,
                                            instruction=spec.instruction, env_config=dataclasses.asdict(env_cfg),
                                            expert_config=dataclasses.asdict(cfg)))
    return TaskRun(results=results, key_poses=poses, files=files)


# ------------------------------------------------------------------ one episode per job
_WORKER: dict = {}


def _episodes(episodes: int, workers: int, job: tuple):
    """Yield (k, episode k's result) as episodes finish, in this process or on ``workers``."""
    if workers == 1:
        _episode_worker_init(*job)
        try:
            for k in range(episodes):
                yield k, _episode_job(k)
        finally:
            _episode_worker_close()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fresh interpreters (spawn): no fork of a process that may hold a GL context or torch threads
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_episode_worker_init,
                             initargs=(*job, os.getpid(), render_threads_env(workers))) as pool:
        futures = {pool.submit(_episode_job, k): k for k in range(episodes)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> threading.Thread:
    """Watch from a daemon thread and end this process once ``parent_pid`` is no longer its parent.
    A pool worker otherwise outlives a killed parent (SIGTERM leaves ProcessPoolExecutor's workers
    running their episode, then waiting for work that never comes), holding the cores a resumed
    run needs."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def _episode_worker_init(suite, task_id, env_cfg: dict, cfg: dict, seed: int, record: bool,
                         init_states: str = "standard", parent_pid: int | None = None,
                         render_threads: str | None = None) -> None:
    """Build the environment once per worker process (or once in-process for workers=1); a pool
    worker (``parent_pid`` given) ends with its parent and renders on ``render_threads``
    llvmpipe threads (set before its GL context exists)."""
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    if render_threads is not None:
        os.environ["LP_NUM_THREADS"] = render_threads
    _WORKER.update(env=make_env(suite, task_id, EnvConfig(**env_cfg)), states=standard_init_states(suite, task_id),
                   cfg=ExpertConfig(**cfg), seed=seed, record=record, suite=suite, task_id=task_id,
                   source=init_states)


def _episode_worker_close() -> None:
    env = _WORKER.pop("env", None)
    if env is not None:
        env.close()


def _episode_job(k: int) -> tuple[dict, object, object]:
    """Episode k: (results row, Demo or None, key events or None)."""
    w = _WORKER
    env, states, suite, task_id = w["env"], w["states"], w["suite"], w["task_id"]
    ep_seed = w["seed"] * 100_003 + k
    t0 = time.time()
    if w["source"] == "sampled":  # a fresh training layout; -1 = not one of the standard states
        layout_seed = int(training_layout_seeds(task_id, k + 1)[k])
        init_index, state = -1, env.sample_layout(seed=layout_seed)
    else:
        init_index, layout_seed = k % len(states), -1
        state = states[init_index]
    # geometry=None: fixtures move by a few mm between init states, so each episode re-measures them
    ep = run_episode(env, state, seed=ep_seed, cfg=w["cfg"], init_index=init_index, geometry=None)
    row = dict(suite=suite, task_id=task_id, init_index=init_index, layout_seed=layout_seed, seed=ep_seed,
               success=bool(ep.success), steps=ep.steps, wall_s=round(time.time() - t0, 2))
    demo = events = None
    if ep.success:
        events = extract_key_events(ep.actions, ep.states, env.goal, success=True)
        if w["record"]:
            # labels = the expert's intended actions: the noise diversified the states it visited,
            # a policy should learn the correction, not the noise (DART, Laskey et al. 2017)
            demo = Demo(instruction=get_task(suite, task_id).instruction, actions=ep.intended, proprio=ep.proprio,
                        agentview=ep.agentview, wrist=ep.wrist, states=ep.states, success=True,
                        suite=suite, task_id=task_id, init_index=init_index, seed=ep_seed,
                        events=[list(e) for e in ep.events])
    return row, demo, events


def expert_success_table(source: str | Path | pd.DataFrame | None = None, save_to: str | Path | None = None) -> pd.DataFrame:
    """Per-task success of the expert: suite, task_id, instruction, episodes, successes, success_rate
    with its 95 % Wilson interval (ci_low, ci_high), mean_steps.

    ``source``: a DataFrame of episode rows, or a folder searched for ``results.csv`` files
    (default ``outputs/demos``). ``save_to``: folder for ``success_table.csv`` / ``.md``.
    """
    if isinstance(source, pd.DataFrame):
        rows = source
    else:
        root = Path(source) if source is not None else OUTPUTS_DIR / "demos"
        files = sorted(root.rglob("results.csv"))
        if not files:
            raise ValueError(f"No results.csv under {root}: run `python -m tgrpo_lib expert --suite S --task ID --out {root}` first.")
        rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    table = (rows.groupby(["suite", "task_id"])
             .agg(episodes=("success", "size"), successes=("success", "sum"), success_rate=("success", "mean"),
                  mean_steps=("steps", "mean"))
             .reset_index())
    table["successes"] = table["successes"].astype(int)
    table["success_rate"] = table["success_rate"].round(3)
    ci = [wilson_interval(int(k), int(n)) for k, n in zip(table["successes"], table["episodes"])]
    table.insert(table.columns.get_loc("success_rate") + 1, "ci_low", [round(lo, 3) for lo, _ in ci])
    table.insert(table.columns.get_loc("ci_low") + 1, "ci_high", [round(hi, 3) for _, hi in ci])
    table["mean_steps"] = table["mean_steps"].round(1)
    try:
        table.insert(2, "instruction", [get_task(s, int(t)).instruction for s, t in zip(table.suite, table.task_id)])
    except Exception:  # noqa: BLE001  (the table is still useful without LIBERO installed)
        pass
    if save_to is not None:
        folder = Path(save_to)
        folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(folder / "success_table.csv", index=False)
        (folder / "success_table.md").write_text(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    return table


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
