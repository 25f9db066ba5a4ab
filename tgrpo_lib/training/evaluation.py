"""The evaluation protocol, in one place: SFT, TGRPO, the notebooks and ``make run`` all use it.

A policy is evaluated on one task's init-state sets (``standard``: LIBERO's 50 fixed states;
``heldout``: never-seen layouts from LIBERO's own placement sampler), one episode per state,
each ending at its own success or at the step budget, greedy by default (``greedy=False``
samples at ``temperature`` from the policy's own generator). The result of a set is a
per-episode table (one row per init state: its key, success, length, video) and a summary with
n and a 95 % Wilson interval (``tgrpo_lib.analysis.stats``).

Greedy episodes of a *saved* policy are deterministic given its weights, the init state and
the env config, so they are cached per episode beside the checkpoint
(``<checkpoint>/../evals/<set>_<key>.json``, key = hash of the weight files and the env config):
every run that starts from one SFT checkpoint, and the SFT run's own evaluation, share the same
episodes instead of re-simulating them, and a later run with more states runs only the new ones.

    table = evaluate(policy, "libero_object", 0, episodes_per_task=50, init_states="heldout")
    res = evaluate_set(policy, engine, "heldout", 25, checkpoint=ckpt, video_path=run_dir / "videos/x.mp4")
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from tgrpo_lib.analysis.stats import success_summary
from tgrpo_lib.envs import (EnvConfig, GroupEngine, TaskSpec, canonical_suite, get_task, init_states_for,
                            perturbations, perturbed_task, run_episodes, split_suite, write_video)
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.runs import INIT_SETS
from tgrpo_lib.policy.acting import as_policy_fn

EPISODE_COLUMNS = ("init_set", "episode", "state_key", "success", "length")


def state_key(state: np.ndarray) -> str:
    """16 hex digits naming one init state (its float64 bytes)."""
    return hashlib.sha256(np.ascontiguousarray(state, dtype=np.float64).tobytes()).hexdigest()[:16]


@dataclass
class SetResult:
    """One init-state set evaluated: the per-episode table and where its video is."""

    init_set: str
    episodes: pd.DataFrame  # EPISODE_COLUMNS, one row per init state, in state order
    video: str | None = None
    seconds: float = 0.0
    cached: int = 0  # episodes read from the cache instead of simulated

    @property
    def success(self) -> np.ndarray:
        return self.episodes["success"].to_numpy(dtype=bool)

    @property
    def summary(self) -> dict:
        """n, successes, rate and 95 % Wilson interval, plus the mean episode length."""
        out = success_summary(self.success)
        out["mean_length"] = float(self.episodes["length"].mean()) if len(self.episodes) else float("nan")
        return out


# ------------------------------------------------------------------------------ the episode cache
@dataclass
class EpisodeCache:
    """Greedy episodes of one saved checkpoint on one task under one env config, per init state."""

    checkpoint: Path
    task: TaskSpec  # the task episodes ran on: a perturbation suite may share its base's init states
    env: EnvConfig = field(default_factory=EnvConfig)

    def __post_init__(self):
        # Hashed once: a checkpoint can be gigabytes (paper scale), and every read/add needs the key.
        h = hashlib.sha256()
        for f in sorted(p for p in Path(self.checkpoint).iterdir() if p.is_file()):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        h.update(json.dumps(dataclasses.asdict(self.env), sort_keys=True).encode())
        h.update(json.dumps([self.task.suite, self.task.task_id, self.task.instruction]).encode())
        self.key = h.hexdigest()[:16]

    def path(self, init_set: str) -> Path:
        return Path(self.checkpoint).parent / "evals" / f"{init_set}_{self.key}.json"

    def read(self, init_set: str) -> dict:
        path = self.path(init_set)
        return runs.read_json(path) if path.is_file() else {"episodes": {}, "video": None}

    def add(self, init_set: str, episodes: dict[str, dict], video: str | None) -> dict:
        """Merge new episodes (state key -> {success, length}) with what a concurrent writer stored."""
        path = self.path(init_set)
        cache = self.read(init_set)
        cache["episodes"].update(episodes)
        cache["video"] = video or cache.get("video")
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.write_json_atomic(path, cache)
        return cache


# ------------------------------------------------------------------------------ one set
def run_states(policy, engine: GroupEngine, states: np.ndarray, greedy: bool = True, temperature: float = 1.0,
               record_first: bool = False, progress: bool = True, desc: str = "eval",
               on_episode: Callable[[dict], None] | None = None) -> tuple[list[dict], np.ndarray | None]:
    """One episode per init state on ``engine``: ([{success, length}], frames of the first episode or None);
    ``on_episode(result)`` as each one ends (``run_episodes``' dict: ``episode`` is its index in ``states``)."""
    fn = as_policy_fn(policy, engine.task.instruction, greedy=greedy, temperature=temperature)
    res = run_episodes(engine, fn, states, record=[0] if record_first else [], progress=progress, desc=desc,
                       on_episode=on_episode)
    frames = res[0].get("frames") if res and record_first else None
    return [{"success": bool(r["success"]), "length": int(r["length"])} for r in res], frames


def evaluate_set(policy, engine: GroupEngine, init_set: str, n: int, greedy: bool = True, temperature: float = 1.0,
                 checkpoint: str | Path | None = None, video_path: str | Path | None = None,
                 progress: bool = True, desc: str | None = None) -> SetResult:
    """Evaluate ``policy`` on the first ``n`` states of ``init_set`` of the engine's task.

    ``checkpoint``: the directory ``policy`` was loaded from; its greedy episodes are then read
    from / added to the episode cache, those that finished also when the set is cut short (Ctrl-C,
    a dead worker), so a rerun simulates only the rest. ``video_path``: the first episode as mp4
    (a cached episode's video is copied there)."""
    if init_set not in INIT_SETS:
        raise ValueError(f"init_set={init_set!r}: pass one of {INIT_SETS}.")
    task = engine.task
    states = init_states_for(task.suite, task.task_id, init_set, n)
    keys = [state_key(s) for s in states]
    t0 = time.perf_counter()
    cache = EpisodeCache(Path(checkpoint), task, engine.cfg) if checkpoint is not None and greedy else None
    stored = cache.read(init_set) if cache else {"episodes": {}, "video": None}
    missing = [i for i, k in enumerate(keys) if k not in stored["episodes"]]
    video = stored.get("video")
    if missing:
        want_video = video_path is not None and 0 in missing
        finished: dict[str, dict] = {}

        def keep(r: dict) -> None:
            finished[keys[missing[r["episode"]]]] = {"success": bool(r["success"]), "length": int(r["length"])}
        try:
            eps, frames = run_states(policy, engine, states[missing], greedy, temperature, record_first=want_video,
                                     progress=progress, desc=desc or init_set, on_episode=keep)
        except BaseException:  # Ctrl-C, a dead worker: greedy episodes that ended stay valid for the rerun
            if want_video:  # its frames are lost with the set: the rerun simulates the first one again, for its video
                finished.pop(keys[0], None)
            if cache and finished:
                cache.add(init_set, finished, None)
            raise
        fresh = {keys[i]: e for i, e in zip(missing, eps)}
        if frames is not None:
            video = str(write_video(Path(video_path), frames))
        stored = cache.add(init_set, fresh, video) if cache else {"episodes": fresh, "video": video}
        video = stored.get("video")
    if video_path is not None and video and Path(video) != Path(video_path) and Path(video).is_file():
        Path(video_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video, video_path)  # the cached evaluation's video, under this run's name
        video = str(video_path)
    rows = [{"init_set": init_set, "episode": i, "state_key": k, **stored["episodes"][k]} for i, k in enumerate(keys)]
    return SetResult(init_set, pd.DataFrame(rows, columns=list(EPISODE_COLUMNS)), video,
                     time.perf_counter() - t0, cached=len(keys) - len(missing))


# ------------------------------------------------------------------------------ a whole task
def env_for(policy) -> EnvConfig:
    """The default env with the cameras ``policy`` reads (``policy.cameras`` when it has them)."""
    return EnvConfig(cameras=tuple(getattr(policy, "cameras", None) or ("agentview",)))


def evaluate(policy, suite: str, task_ids: Iterable[int] | int, episodes_per_task: int = 50,
             init_states: str = "standard", cfg: EnvConfig | None = None, n_envs: int = 4,
             video_dir: str | Path | None = None, greedy: bool = True, temperature: float = 1.0,
             checkpoint: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """The standard LIBERO protocol on its own engine: for each task, ``episodes_per_task``
    episodes from the chosen init-state set; one row per episode (suite, task_id, init_set,
    episode, state_key, success, length, seconds, video).

    ``policy`` follows the policy interface (``act``) or is a plain ``obs_batch -> actions``
    callable. ``checkpoint``: the directory the policy was loaded from (greedy episodes cached).
    ``cfg``: the env (None: ``env_for(policy)``, the cameras the policy reads). ``suite``: any
    shipped suite, the LIBERO-PRO perturbation suites and ``libero_90`` included."""
    suite = canonical_suite(suite, variants=True)
    cfg = env_for(policy) if cfg is None else cfg
    task_ids = [task_ids] if isinstance(task_ids, (int, np.integer)) else list(task_ids)
    tables = []
    for task_id in task_ids:
        spec = get_task(suite, task_id)
        available = len(init_states_for(suite, task_id, init_states)) if init_states == "standard" else episodes_per_task
        if episodes_per_task > available:
            raise ValueError(f"{suite} task {task_id} has {available} {init_states} init states: "
                             f"pass episodes_per_task <= {available}.")
        video = Path(video_dir) / f"{spec.key}_{init_states}_ep00.mp4" if video_dir else None
        with GroupEngine(suite, task_id, min(n_envs, episodes_per_task), cfg) as engine:
            res = evaluate_set(policy, engine, init_states, episodes_per_task, greedy, temperature,
                               checkpoint, video, progress, desc=f"{spec.key} {init_states}")
        t = res.episodes.assign(suite=suite, task_id=task_id, seconds=res.seconds / max(len(res.episodes), 1),
                                video=None)
        if res.video:
            t.loc[0, "video"] = res.video
        tables.append(t)
    cols = ["suite", "task_id", *EPISODE_COLUMNS, "seconds", "video"]
    return pd.concat(tables, ignore_index=True)[cols] if tables else pd.DataFrame(columns=cols)


# ------------------------------------------------------------------------------ before / after a run
@dataclass
class Protocol:
    """The before/after evaluation of a training run: greedy, on each set with its episode count;
    the starting checkpoint's episodes come from the cache; tables and videos land in the run."""

    engine: GroupEngine
    run_dir: Path
    sets: dict[str, int]  # init set -> episodes, e.g. {"standard": 50, "heldout": 25}
    checkpoint: str | Path | None = None  # where the starting policy was loaded from
    videos: bool = True
    progress: bool = True

    def run(self, policy, tag: str, summary: dict) -> dict:
        """Evaluate every set not yet in ``summary`` as ``{tag}_{set}``; returns summary, updated."""
        for which, n in self.sets.items():
            key = f"{tag}_{which}"
            if key in summary:
                continue
            video = self.run_dir / "videos" / f"{key}.mp4" if self.videos else None
            res = evaluate_set(policy, self.engine, which, n, checkpoint=self.checkpoint if tag == "before" else None,
                               video_path=video, progress=self.progress, desc=key)
            out = runs.episodes_path(self.run_dir, tag, which)
            out.parent.mkdir(exist_ok=True)
            res.episodes.to_csv(out, index=False)
            s = res.summary
            summary[key], summary[f"{key}_episodes"] = s["rate"], s["n"]
            summary[f"{key}_ci"] = [s["ci_low"], s["ci_high"]]
        return summary

    def during(self, policy, n: int, video_path: Path | None) -> dict:
        """Greedy success on the first ``n`` standard states mid-training (not cached): n,
        successes, rate and 95 % Wilson interval (`SetResult.summary`)."""
        return evaluate_set(policy, self.engine, "standard", n, video_path=video_path, progress=False).summary


# ------------------------------------------------------------------------------ under perturbation
def robustness_conditions(suite: str, task_id: int, variants: Iterable[str] | None = None) -> list[tuple[str, TaskSpec, str]]:
    """What a task's policies are evaluated on: (condition, task, init set), first ``standard``
    and ``heldout`` on the task itself, then the LIBERO-PRO standard states of each perturbation
    suite (``variants``: suite names or their suffixes, e.g. ``lan``; None: all shipped) that has
    a counterpart of the task. A named variant without a counterpart is refused."""
    task = get_task(suite, task_id)
    shipped = perturbations(task.suite)
    chosen = shipped if variants is None else [v if v.startswith(task.suite) else f"{task.suite}_{v}" for v in variants]
    unknown = [v for v in chosen if v not in shipped]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not shipped for {task.suite}; pass names from "
                         f"{', '.join(split_suite(s)[1] for s in shipped)}.")
    out = [("standard", task, "standard"), ("heldout", task, "heldout")]
    for v in chosen:
        counterpart = perturbed_task(task.suite, task.task_id, v)
        if counterpart is None:
            if variants is not None:
                raise ValueError(f"{v} has no counterpart of {task.key}: leave it out.")
            continue
        out.append((split_suite(v)[1], counterpart, "standard"))
    return out


ROBUSTNESS_COLUMNS = ("policy", "condition", "suite", "task_id", "instruction", *EPISODE_COLUMNS)


def evaluate_robustness(checkpoints: dict[str, str | Path], suite: str, task_id: int,
                        variants: Iterable[str] | None = None, episodes: int = 50, n_envs: int = 4,
                        max_steps: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Each saved policy (label -> checkpoint directory) on every condition of
    ``robustness_conditions``, greedy, ``episodes`` states each (fewer where a suite ships fewer),
    the same states for every policy, so conditions pair up. One row per episode
    (``ROBUSTNESS_COLUMNS``); episodes are read from / added to each checkpoint's episode cache,
    so a rerun with more conditions simulates only the new ones. ``max_steps``: a shorter step
    budget than the suites' (smoke runs)."""
    from tgrpo_lib.policy import load_policy  # deferred: torch only once policies are loaded

    if not checkpoints:
        raise ValueError("checkpoints is empty: pass {label: checkpoint directory}, e.g. {'SFT': ..., 'TGRPO': ...}.")
    if episodes < 1:
        raise ValueError(f"episodes={episodes}: pass at least 1.")
    policies = {label: load_policy(path) for label, path in checkpoints.items()}
    cfg = dataclasses.replace(env_for(next(iter(policies.values()))), max_steps=max_steps)
    tables = []
    for condition, task, init_set in robustness_conditions(suite, task_id, variants):
        n = min(episodes, len(init_states_for(task.suite, task.task_id, "standard"))) if init_set == "standard" else episodes
        with GroupEngine(task.suite, task.task_id, min(n_envs, n), cfg) as engine:
            for label, policy in policies.items():
                res = evaluate_set(policy, engine, init_set, n, checkpoint=checkpoints[label], progress=progress,
                                   desc=f"{label} {condition}")
                tables.append(res.episodes.assign(policy=label, condition=condition, suite=task.suite,
                                                  task_id=task.task_id, instruction=task.instruction))
    return pd.concat(tables, ignore_index=True)[list(ROBUSTNESS_COLUMNS)]


def run_checkpoints(run_dir: str | Path) -> tuple[str | None, str]:
    """(the checkpoint a complete training run started from, or None for a fresh policy; its trained
    policy), for comparing the two (notebook 06)."""
    run_dir = Path(run_dir)
    if not runs.is_complete(run_dir):
        raise ValueError(f"{run_dir} is not a complete training run: pass the name of one under outputs/train/.")
    return runs.read_config(run_dir).get("init_checkpoint"), str(run_dir / "checkpoints" / "policy")


__all__ = ["EPISODE_COLUMNS", "INIT_SETS", "ROBUSTNESS_COLUMNS", "EpisodeCache", "Protocol", "SetResult", "evaluate",
           "evaluate_robustness", "evaluate_set", "robustness_conditions", "run_checkpoints", "run_states",
           "state_key"]
