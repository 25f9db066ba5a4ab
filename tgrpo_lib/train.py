"""The online TGRPO loop (paper Sec. IV-A) and its variants, one task at a time.

Each iteration: N trajectories from one init state with the group engine (stop all when one
succeeds), multi-stage rewards (Eq. 1), fused advantages (Eq. 2-4), then K epochs of AdamW on
the LoRA parameters with pi_old fixed for the iteration and pi_ref = the starting policy
(LoRA disabled) (Eq. 5-7). Variants (``TrainConfig.algo``) share every line but the loss.

    result = train(TrainConfig(suite="object", task_id=0, init_checkpoint="outputs/sft/.../policy"))
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tgrpo_lib import runs
from tgrpo_lib.advantages import fused_advantages, zero_variance_fraction
from tgrpo_lib.config import TrainConfig
from tgrpo_lib.envs import GroupEngine, canonical_suite, get_task, init_states_for, rollout_group
from tgrpo_lib.envs.evaluation import as_policy_fn, run_episodes
from tgrpo_lib.envs.video import write_video
from tgrpo_lib.loss import tgrpo_loss
from tgrpo_lib.preference import dpo_loss, preference_pairs, tpo_loss, trajectory_log_prob
from tgrpo_lib.seeding import rng_state, seed_everything, set_rng_state


@dataclass
class RunResult:
    """What a finished (or resumed-to-the-end) run leaves behind."""

    run_dir: Path
    summary: dict  # also in run_dir/metrics.json
    metrics: pd.DataFrame  # run_dir/metrics.jsonl, one row per logged step


# ------------------------------------------------------------------------------ policy plumbing
def build_policy(cfg: TrainConfig):
    """The starting policy in RL mode (LoRA on a frozen base): from ``init_checkpoint`` or fresh."""
    from tgrpo_lib.policy import load_policy, make_policy

    if cfg.init_checkpoint:
        path = Path(cfg.init_checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"init_checkpoint {path} does not exist: pass the SFT policy directory "
                                    "(outputs/sft/<run>/checkpoints/policy) or None for a fresh policy.")
        policy = load_policy(path)
    else:
        policy = make_policy(cfg.policy)
    policy.set_mode("rl")
    return policy


def _step_batch(rollout, cols: np.ndarray) -> dict:
    """Observations of steps ``cols`` of all N trajectories, flattened to a (N*len(cols)) batch."""
    batch = {}
    src = {"features": rollout.extras["features"]} if "features" in rollout.extras else {
        k: v for k, v in rollout.obs.items()}
    src["proprio"] = rollout.obs["proprio"]
    for k, v in src.items():
        part = v[:, cols]
        batch[k] = part.reshape(-1, *part.shape[2:])
    return batch


def sequence_log_probs(policy, rollout, instruction: str, cols: np.ndarray, reference: bool = False) -> torch.Tensor:
    """(N, len(cols)) per-step log-probs of the taken tokens (sum over the 7 action tokens)."""
    n = rollout.actions.shape[0]
    tokens = rollout.extras["tokens"][:, cols].reshape(-1, 7)
    batch = _step_batch(rollout, cols)
    fn = policy.ref_log_prob if reference else policy.log_prob
    return fn(batch, instruction, tokens).reshape(n, len(cols))


def _chunks(length: int, size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + size, length)) for s in range(0, length, size)]


# ------------------------------------------------------------------------------ rewards
def step_rewards(cfg: TrainConfig, reward_program, rollout) -> tuple[np.ndarray, dict]:
    """(N, T) reward of each step (read on the state *after* the action) + logging extras."""
    success = rollout.success.astype(np.float64)
    if cfg.algo == "grpo_sparse":  # binary outcome only: R_i = 1 for a success, else 0
        rewards = np.zeros_like(success)
        rewards[:, -1] = rollout.episode_success
        return rewards, {}
    out = reward_program(rollout.states)  # (N, T+1): t = 0 is the start state
    rewards = out.reward[:, 1:]
    extras = {"reward/final_stage_mean": float(out.stage[:, -1].mean()),
              "reward/max_stage_reached": float(out.stage.max())}
    for k, v in out.components.items():
        if k in ("f1", "f2"):
            extras[f"reward/{k}_mean"] = float(v[:, 1:].mean())
    return rewards, extras


# ------------------------------------------------------------------------------ one update
def update(cfg: TrainConfig, policy, optimizer, rollout, rewards: np.ndarray, instruction: str) -> dict:
    """K epochs on one group; returns averaged loss statistics."""
    n, t = rewards.shape
    cols_all = _chunks(t, cfg.minibatch_steps)
    old_logp = torch.as_tensor(rollout.extras["log_prob"], dtype=torch.float32)  # (N, T) pi_old, fixed
    with torch.no_grad():
        ref_logp = torch.cat([sequence_log_probs(policy, rollout, instruction, c, reference=True) for c in cols_all], 1)
    r = torch.as_tensor(rewards, dtype=torch.float64)
    a1, a2 = cfg.advantage_weights
    adv = fused_advantages(r, a1, a2).float()  # (N, T) Eq. 4
    zv = zero_variance_fraction(r)
    stats_sum: dict[str, float] = {}
    params = policy.trainable_parameters()
    preference = cfg.algo in ("dpo", "tpo")
    n_mb = 1 if preference else min(cfg.minibatches, t)
    n_steps = cfg.epochs * n_mb
    for _ in range(cfg.epochs):
        # minibatches=1: one AdamW step on exactly Eq. 6. Otherwise the group's time steps are
        # shuffled into n_mb minibatches (all N rows each), one AdamW step per minibatch, each
        # loss averaged over its own steps (1/|mb| in place of 1/|o_i|): PPO's recipe.
        order = np.arange(t) if n_mb == 1 else torch.randperm(t).numpy()  # seeded torch stream, resumable
        for mb in np.array_split(order, n_mb):
            optimizer.zero_grad(set_to_none=True)
            if preference:
                stats = _preference_step(cfg, policy, rollout, rewards, instruction, ref_logp, cols_all)
            else:
                stats = {}
                lengths = torch.full((n,), float(len(mb)))
                for c in range(0, len(mb), cfg.minibatch_steps):  # accumulation: chunks sum to the mb loss
                    cols = np.sort(mb[c:c + cfg.minibatch_steps])
                    logp = sequence_log_probs(policy, rollout, instruction, cols)
                    loss, s = tgrpo_loss(logp, old_logp[:, cols], ref_logp[:, cols], adv[:, cols],
                                         traj_lengths=lengths, clip_eps=cfg.clip_eps, beta=cfg.beta)
                    loss.backward()
                    w = len(cols) / len(mb)
                    for k, v in s.items():
                        stats[k] = stats.get(k, 0.0) + (v if k == "loss" else w * v)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            stats["grad_norm"] = float(grad_norm)
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v / n_steps
    out = {f"losses/{k}": v for k, v in stats_sum.items()}
    out.update({"adv/zero_variance_step_groups": zv["step_groups"],
                "adv/zero_variance_trajectory_group": zv["trajectory_group"],
                "adv/abs_mean": float(adv.abs().mean())})
    return out


def _preference_step(cfg, policy, rollout, rewards, instruction, ref_logp, cols_all) -> dict:
    """DPO / GRAPE-style TPO on trajectories of the same group, ranked by success then return."""
    logp = torch.cat([sequence_log_probs(policy, rollout, instruction, c) for c in cols_all], 1)  # (N, T)
    returns = rewards.sum(1)
    success = rollout.episode_success
    if cfg.algo == "tpo":
        loss, stats = tpo_loss(logp, ref_logp, returns, success, beta=cfg.dpo_beta)
    else:  # dpo: the best and the worst trajectory of the group as one (chosen, rejected) pair
        pairs = preference_pairs(returns, success)
        if not pairs:
            return {"loss": 0.0, "n_pairs": 0.0}
        best = max(range(len(returns)), key=lambda i: (success[i], returns[i]))
        worst = min(range(len(returns)), key=lambda i: (success[i], returns[i]))
        seq, ref = trajectory_log_prob(logp), trajectory_log_prob(ref_logp)
        loss, stats = dpo_loss(seq[[best]], seq[[worst]], ref[[best]], ref[[worst]], beta=cfg.dpo_beta)
    loss.backward()
    return stats


# ------------------------------------------------------------------------------ evaluation
def evaluate_on_engine(policy, engine: GroupEngine, instruction: str, states: np.ndarray,
                       video_path: Path | None = None, desc: str = "eval") -> dict:
    """Greedy episodes on the training engine (no new worker processes); per-episode lists
    ``success`` / ``length`` beside the aggregates."""
    fn = as_policy_fn(policy, instruction, greedy=True)
    res = run_episodes(engine, fn, states, record=[0] if video_path else [], desc=desc)
    out = {}
    if video_path is not None and res and "frames" in res[0]:
        out["video"] = str(write_video(video_path, res[0]["frames"]))
    return {**summarise_episodes([r["success"] for r in res], [r["length"] for r in res]), **out}


def summarise_episodes(success: list, length: list) -> dict:
    return {"success_rate": float(np.mean(success)) if success else float("nan"), "episodes": len(success),
            "mean_length": float(np.mean(length)) if length else float("nan"),
            "success": [bool(x) for x in success], "length": [int(x) for x in length]}


def _state_key(state: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(state, dtype=np.float64).tobytes()).hexdigest()[:16]


def cached_start_eval(cfg: TrainConfig, which: str, states: np.ndarray,
                      compute: Callable[[np.ndarray, bool], dict]) -> dict:
    """The "before" evaluation of a run, shared by every run that starts from the same checkpoint.

    Greedy episodes are deterministic given the policy weights, the init state and the env
    config (environments are bit-identical after a reset), so every cell of a sweep that starts
    from one SFT checkpoint would re-run the same episodes. Results are kept per episode beside
    the checkpoint in ``evals/<which>_<key>.json`` (key: a hash of the weight files and the env
    config; one entry per init state), and ``compute(states, with_video)`` runs only the init
    states not seen before: a run with 10 episodes reuses the first 10 of an earlier 50. A fresh
    policy (no checkpoint) is always evaluated.
    """
    import hashlib
    import json

    if not cfg.init_checkpoint:
        return compute(states, True)
    ckpt = Path(cfg.init_checkpoint)
    h = hashlib.sha256()
    for f in sorted(p for p in ckpt.iterdir() if p.is_file()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(json.dumps(dataclasses.asdict(cfg.env), sort_keys=True).encode())
    path = ckpt.parent / "evals" / f"{which}_{h.hexdigest()[:16]}.json"
    cache = runs.read_json(path) if path.is_file() else {"episodes": {}, "video": None}
    keys = [_state_key(s) for s in states]
    missing = [i for i, k in enumerate(keys) if k not in cache["episodes"]]
    if missing:
        res = compute(states[missing], 0 in missing)
        fresh = runs.read_json(path) if path.is_file() else cache  # merge with a concurrent writer
        for i, ok, n in zip(missing, res["success"], res["length"]):
            fresh["episodes"][keys[i]] = {"success": ok, "length": n}
        fresh["video"] = res.get("video") or fresh.get("video")
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.write_json_atomic(path, fresh)
        cache = fresh
    eps = [cache["episodes"][k] for k in keys]
    out = summarise_episodes([e["success"] for e in eps], [e["length"] for e in eps])
    if cache.get("video"):
        out["video"] = cache["video"]
    return out


def _key_poses(task):
    """Reference end-effector key poses from the expert's demos, or None (the reward then derives
    them from object positions)."""
    try:
        from tgrpo_lib.expert import load_key_poses
    except ImportError:
        return None
    return load_key_poses(task.suite, task.task_id)


# ------------------------------------------------------------------------------ the loop
def train(cfg: TrainConfig, root: Path | str | None = None, progress: bool = True,
          on_iteration: Callable[[int, dict], None] | None = None) -> RunResult:
    """Run (or resume) one training run; see the module docstring.

    ``on_iteration(it, metrics)`` is called after every iteration (live plots in notebooks).
    Each group's rewards and success flags are kept in ``groups/iter_XXXXXX.npz`` so the
    advantages can be recomputed and inspected afterwards.
    """
    from tgrpo_lib.reward import make_reward

    task = get_task(canonical_suite(cfg.suite), cfg.task_id)
    name = cfg.run_name or runs.run_name(f"{task.suite}-{task.task_id}", cfg.algo, cfg.seed)
    run_dir = runs.create_run_dir("train", name, cfg, root=root, resume=True)
    if runs.is_complete(run_dir):
        return RunResult(run_dir, runs.read_json(run_dir / "metrics.json"), runs.read_metrics(run_dir))

    seed_everything(cfg.seed)
    policy = build_policy(cfg)
    params = policy.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    reward_program = make_reward(task.suite, task.task_id, cfg=cfg.reward, key_poses=_key_poses(task))
    train_states = init_states_for(task.suite, task.task_id, cfg.train_init_states)
    start, summary = 0, {"run_dir": str(run_dir), "seed": cfg.seed, "algo": cfg.algo,
                         "task": task.key, "instruction": task.instruction}
    ckpt_path = runs.latest_checkpoint(run_dir)
    if ckpt_path is not None:  # resume: model, optimiser, RNG streams, iteration, summary so far
        ckpt = runs.load_checkpoint(ckpt_path)
        with torch.no_grad():
            for p, saved in zip(params, ckpt["trainable"]):
                p.copy_(saved)
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        policy.generator.set_state(ckpt["policy_generator"])
        start, summary = ckpt["iteration"] + 1, ckpt["summary"]
    logger = runs.MetricsLogger(run_dir, resume_from_step=start - 1 if start else None)
    eval_states = {"standard": init_states_for(task.suite, task.task_id, "standard", cfg.final_eval_episodes)}
    videos = run_dir / "videos"
    with GroupEngine(task.suite, task.task_id, cfg.group_size, cfg.env) as engine:
        def final_eval(tag: str) -> None:
            for which in ("standard", "heldout"):
                if which not in eval_states:
                    eval_states[which] = init_states_for(task.suite, task.task_id, which,
                                                         cfg.heldout_eval_episodes or cfg.final_eval_episodes)
                key = f"{tag}_{which}"
                if key not in summary:
                    def run(states, with_video=True, key=key):
                        video = videos / f"{key}.mp4" if cfg.video_episodes and with_video else None
                        return evaluate_on_engine(policy, engine, task.instruction, states, video, desc=key)
                    states = eval_states[which]
                    res = cached_start_eval(cfg, which, states, run) if tag == "before" else run(states)
                    mine = videos / f"{key}.mp4"
                    if cfg.video_episodes and Path(res.get("video", mine)) != mine and Path(res["video"]).is_file():
                        mine.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(res["video"], mine)  # the cached evaluation's video
                    summary[key] = res["success_rate"]
                    summary[f"{key}_episodes"] = res["episodes"]
        if start == 0:
            t0 = time.perf_counter()
            final_eval("before")
            summary["seconds_before_eval"] = time.perf_counter() - t0
            logger.log({"eval/success_standard": summary["before_standard"],
                        "eval/success_heldout": summary["before_heldout"]}, step=-1)
        bar = tqdm(range(start, cfg.iterations), desc=f"{cfg.algo} {task.key}", disable=not progress)
        t_train = time.perf_counter()
        for it in bar:
            t_iter = time.perf_counter()
            k = it % len(train_states)
            fn = as_policy_fn(policy, task.instruction, greedy=False, temperature=cfg.temperature)
            t0 = time.perf_counter()
            rollout = rollout_group(engine, fn, train_states[k], init_state_index=k)
            t_rollout = time.perf_counter() - t0
            t0 = time.perf_counter()
            rewards, reward_stats = step_rewards(cfg, reward_program, rollout)
            t_reward = time.perf_counter() - t0
            t0 = time.perf_counter()
            stats = update(cfg, policy, optimizer, rollout, rewards, task.instruction)
            t_update = time.perf_counter() - t0
            metrics = {
                "charts/group_success_rate": float(rollout.episode_success.mean()),
                "charts/episode_length": rollout.length,
                "charts/return_mean": float(rewards.sum(1).mean()),
                "charts/return_std": float(rewards.sum(1).std()),
                "charts/init_state": k,
                "charts/env_steps": rollout.length * cfg.group_size,
                "time/sim": t_rollout - fn.seconds, "time/policy": fn.seconds,
                "time/reward": t_reward, "time/update": t_update,
                **reward_stats, **stats,
            }
            if cfg.eval_interval and (it + 1) % cfg.eval_interval == 0 and it + 1 < cfg.iterations:
                res = evaluate_on_engine(policy, engine, task.instruction, eval_states["standard"][: cfg.eval_episodes],
                                         videos / f"iter_{it + 1:04d}.mp4" if cfg.video_episodes else None)
                metrics["eval/success_standard"] = res["success_rate"]
            metrics["time/iteration"] = time.perf_counter() - t_iter
            logger.log(metrics, step=it)
            groups = run_dir / "groups"
            groups.mkdir(exist_ok=True)
            np.savez_compressed(groups / f"iter_{it:06d}.npz", rewards=rewards, success=rollout.success,
                                init_state_index=k)
            summary["env_steps"] = summary.get("env_steps", 0) + metrics["charts/env_steps"]
            bar.set_postfix(ret=f"{metrics['charts/return_mean']:.1f}", succ=f"{metrics['charts/group_success_rate']:.2f}")
            if (it + 1) % cfg.checkpoint_interval == 0 or it + 1 == cfg.iterations:
                runs.save_checkpoint(run_dir, it, {
                    "iteration": it, "trainable": [p.detach().clone() for p in params],
                    "optimizer": optimizer.state_dict(), "rng": rng_state(),
                    "policy_generator": policy.generator.get_state(), "summary": summary}, keep_last=2)
            if on_iteration is not None:
                on_iteration(it, metrics)
        summary["seconds_training"] = summary.get("seconds_training", 0.0) + time.perf_counter() - t_train
        t0 = time.perf_counter()
        final_eval("after")
        summary["seconds_after_eval"] = time.perf_counter() - t0
    logger.log({"eval/success_standard": summary["after_standard"],
                "eval/success_heldout": summary["after_heldout"]}, step=cfg.iterations)
    policy.save(run_dir / "checkpoints" / "policy")
    summary["iterations"] = cfg.iterations
    runs.mark_complete(run_dir, summary)
    return RunResult(run_dir, summary, runs.read_metrics(run_dir))


def config_for(**overrides) -> TrainConfig:
    """TrainConfig with nested overrides given as dicts, e.g. env={"max_steps": 50}."""
    from tgrpo_lib.config import EnvConfig, PolicyConfig, RewardConfig

    nested = {"env": EnvConfig, "policy": PolicyConfig, "reward": RewardConfig}
    base = TrainConfig()
    for key, cls in nested.items():
        if isinstance(overrides.get(key), dict):
            overrides[key] = dataclasses.replace(getattr(base, key), **overrides[key])
    return dataclasses.replace(base, **overrides)
