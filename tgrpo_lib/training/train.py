"""The online TGRPO loop (paper Sec. IV-A) and its variants, one task at a time.

Each iteration: N trajectories from one init state with the group engine (stop all when one
succeeds), rewards (Eq. 1, or the sparse success reward), then the variant's update
(``updates.py``: fused advantages Eq. 2-4 and K epochs of the clipped objective Eq. 5-7, or a
preference loss) on the LoRA parameters, pi_old fixed for the iteration and pi_ref = the
starting policy (LoRA disabled). Evaluation before and after is ``evaluation.Protocol``.

    result = train(config_for(suite="object", task_id=0, init_checkpoint="outputs/sft/.../policy"))
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from tgrpo_lib.algorithm.updates import update
from tgrpo_lib.algorithm.variants import get_variant
from tgrpo_lib.envs import EnvWorkerError, GroupEngine, get_task, init_states_for, rollout_group
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import TrainConfig, check_cameras, config_for, run_name
from tgrpo_lib.infra.demos import task_dir
from tgrpo_lib.infra.metrics import MetricsLogger
from tgrpo_lib.infra.runs import RunResult
from tgrpo_lib.infra.seeding import rng_state, seed_everything, set_rng_state
from tgrpo_lib.policy import PolicyConfig, load_policy, make_policy
from tgrpo_lib.policy.acting import ActingPolicy
from tgrpo_lib.reward import make_reward, recorded_key_poses
from tgrpo_lib.training.evaluation import Protocol


def check_init_checkpoint(cfg: TrainConfig) -> None:
    """Before any directory is written: the starting policy named by the config exists."""
    if not cfg.init_checkpoint:
        return
    if not (Path(cfg.init_checkpoint) / "policy_config.json").is_file():
        raise FileNotFoundError(f"init_checkpoint {cfg.init_checkpoint} is not a saved policy: pass the SFT policy "
                                "directory (outputs/sft/<run>/checkpoints/policy) or None for a fresh policy.")
    saved = PolicyConfig.from_json(Path(cfg.init_checkpoint) / "policy_config.json")
    if saved.kind == "tiny_vla":  # the HF VLA reads agentview only, whatever use_wrist says
        check_cameras(saved, cfg.env, f"init_checkpoint {cfg.init_checkpoint} reads")


def build_policy(cfg: TrainConfig):
    """The starting policy in RL mode (LoRA on a frozen base): from ``init_checkpoint`` or fresh."""
    policy = load_policy(cfg.init_checkpoint) if cfg.init_checkpoint else make_policy(cfg.policy)
    policy.set_mode("rl")
    return policy


def step_rewards(cfg: TrainConfig, reward_program, rollout) -> tuple[np.ndarray, dict]:
    """(N, T) reward of each step (read on the state *after* the action) + logging extras."""
    if get_variant(cfg.algo).reward == "sparse":  # binary outcome only: R_i = 1 for a success, else 0
        rewards = np.zeros(rollout.success.shape)
        rewards[:, -1] = rollout.episode_success
        return rewards, {}
    out = reward_program(rollout.states)  # (N, T+1): t = 0 is the start state
    extras = {"reward/final_stage_mean": float(out.stage[:, -1].mean()),
              "reward/max_stage_reached": float(out.stage.max())}
    extras.update({f"reward/{k}_mean": float(v[:, 1:].mean()) for k, v in out.components.items() if k in ("f1", "f2")})
    return out.reward[:, 1:], extras


class Trainable:
    """The policy, its optimiser and the RNG streams: what a checkpoint saves and a resume restores."""

    def __init__(self, cfg: TrainConfig):
        self.policy = build_policy(cfg)
        self.params = self.policy.trainable_parameters()
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def state(self, iteration: int, summary: dict) -> dict:
        return {"iteration": iteration, "trainable": [p.detach().clone() for p in self.params],
                "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
                "policy_generator": self.policy.generator.get_state(), "summary": summary}

    def restore(self, ckpt: dict) -> tuple[int, dict]:
        with torch.no_grad():
            for p, saved in zip(self.params, ckpt["trainable"]):
                p.copy_(saved)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        self.policy.generator.set_state(ckpt["policy_generator"])
        return ckpt["iteration"] + 1, ckpt["summary"]


def iteration_metrics(rollout, rewards: np.ndarray, actor: ActingPolicy, seconds: dict) -> dict:
    """The per-iteration charts of one group (success, length, returns, time split)."""
    returns = rewards.sum(1)
    return {"charts/group_success_rate": float(rollout.episode_success.mean()),
            "charts/group_has_success": float(rollout.episode_success.any()),
            "charts/episode_length": float(rollout.lengths.mean()), "charts/group_length": rollout.length,
            "charts/return_mean": float(returns.mean()),
            "charts/return_std": float(returns.std()), "charts/init_state": rollout.init_state_index,
            "charts/env_steps": int(rollout.valid.sum()),
            "time/sim": seconds["rollout"] - actor.seconds, "time/policy": actor.seconds,
            "time/reward": seconds["reward"], "time/update": seconds["update"]}


def train(cfg: TrainConfig, root: Path | str | None = None, progress: bool = True,
          on_iteration: Callable[[int, dict], None] | None = None) -> RunResult:
    """Run (or resume) one training run; see the module docstring.

    ``on_iteration(it, metrics)`` is called after every iteration (live plots in notebooks).
    Each group's rewards and success flags are kept in ``groups/iter_XXXXXX.npz``.

    Faults stop the run resumably: a simulator worker that dies raises ``runs.RunError`` and
    Ctrl-C / SIGTERM ``runs.RunInterrupted``, each one line naming the worker or signal, the
    iteration and its init state, and the checkpoint the same call resumes from (the workers
    are stopped first). A second process on the run is refused (``runs.RunLocked``); a
    corrupted last checkpoint falls back to the one before."""
    check_init_checkpoint(cfg)
    task = get_task(cfg.suite, cfg.task_id)
    return runs.run_once("train", run_name(cfg), cfg, lambda run_dir: _train(cfg, task, run_dir, progress, on_iteration),
                         root)


def final_eval_sets(cfg: TrainConfig, summary: dict | None = None) -> dict[str, int]:
    """Init set -> episodes of a run's before/after evaluation: standard, held-out and, unless
    ``cfg.test_episodes`` is 0, the untouched test layouts. A resumed run's ``summary`` fixes each
    set at the count its "before" evaluation had, so "after" pairs with it state for state."""
    sets = {"standard": cfg.final_eval_episodes, "heldout": cfg.heldout_episodes}
    sets = {**sets, "test": cfg.test_episodes} if cfg.test_episodes else sets
    return {k: (summary or {}).get(f"before_{k}_episodes", n) for k, n in sets.items()}


def budget_spent(cfg: TrainConfig, summary: dict) -> bool:
    """Whether the run has taken ``cfg.env_step_budget`` env steps (never, without a budget)."""
    return cfg.env_step_budget is not None and summary.get("env_steps", 0) >= cfg.env_step_budget


def _eval_metrics(summary: dict, tag: str) -> dict:
    """The metrics.jsonl line of a before/after evaluation: each set's rate and its n (the
    training curves draw the 95 % interval from both)."""
    out = {}
    for which in runs.INIT_SETS:
        if summary.get(f"{tag}_{which}") is not None:
            out[f"eval/success_{which}"] = summary[f"{tag}_{which}"]
            out[f"eval/n_{which}"] = summary.get(f"{tag}_{which}_episodes")
    return out


def _train(cfg: TrainConfig, task, run_dir: Path, progress: bool, on_iteration) -> RunResult:
    seed_everything(cfg.seed)
    model = Trainable(cfg)
    key_poses = recorded_key_poses(task.suite, task.task_id, cfg.reward)
    reward_program = make_reward(task.suite, task.task_id, cfg=cfg.reward, key_poses=key_poses,
                                 demos_dir=task_dir(task.suite, task.task_id), progress=progress)
    train_states = init_states_for(task.suite, task.task_id, cfg.train_init_states)
    start, summary = 0, {"run_dir": str(run_dir), "seed": cfg.seed, "algo": cfg.algo, "task": task.key,
                         "instruction": task.instruction, **reward_program.provenance()}
    if (found := runs.load_latest_checkpoint(run_dir)) is not None:  # resume: model, optimiser, RNG, summary so far
        start, summary = model.restore(found[1])
        if summary.get("reward_source_hash") != reward_program.source_hash:
            raise ValueError(f"{run_dir} was trained with reward {summary.get('reward_source_hash')}, now "
                             f"{reward_program.source_hash}: rerun under a new run name.")
    if (damage := runs.check_metrics(run_dir)) is not None:
        runs.say(damage)
    # keep the lines up to the checkpoint; from the start (no usable checkpoint) keep none, since
    # the 'before' evaluation (step -1) is logged again
    logger = MetricsLogger(run_dir, resume_from_step=start - 1 if start else -2)
    with _faults_stop_resumably(run_dir) as stage, \
            GroupEngine(task.suite, task.task_id, cfg.group_size, cfg.env) as engine:
        protocol = Protocol(engine, run_dir, final_eval_sets(cfg, summary), cfg.init_checkpoint, videos=cfg.video_episodes > 0,
                            progress=progress)
        if start == 0:
            stage.now = "the 'before' evaluation"
            _timed(summary, "seconds_before_eval", protocol.run, model.policy, "before", summary)
            logger.log(_eval_metrics(summary, "before"), step=-1)
        done = start
        for it in (bar := tqdm(range(start, cfg.iterations), desc=f"{cfg.algo} {task.key}", disable=not progress)):
            if budget_spent(cfg, summary):  # a resumed run whose last iteration spent the budget
                break
            t_iter, seconds, k = time.perf_counter(), {}, it % len(train_states)
            stage.now = f"iteration {it} (init state {k} of the {cfg.train_init_states} set)"
            actor = ActingPolicy(model.policy, task.instruction, greedy=False, temperature=cfg.temperature)
            rollout = _timed(seconds, "rollout", rollout_group, engine, actor, train_states[k], init_state_index=k,
                            stop=cfg.group_stop)
            rewards, reward_stats = _timed(seconds, "reward", step_rewards, cfg, reward_program, rollout)
            stats = _timed(seconds, "update", update, cfg, model.policy, model.optimizer, rollout, rewards, task.instruction)
            metrics = {**iteration_metrics(rollout, rewards, actor, seconds), **reward_stats, **stats}
            if cfg.eval_interval and (it + 1) % cfg.eval_interval == 0 and it + 1 < cfg.iterations:
                stage.now = f"the evaluation after iteration {it}"
                video = run_dir / "videos" / f"iter_{it + 1:04d}.mp4" if cfg.video_episodes else None
                during = protocol.during(model.policy, cfg.eval_episodes, video)
                metrics.update({"eval/success_standard": during["rate"], "eval/n_standard": during["n"]})
            metrics["time/iteration"] = time.perf_counter() - t_iter
            logger.log(metrics, step=it)
            _save_group(run_dir, it, rewards, rollout)
            summary["env_steps"] = summary.get("env_steps", 0) + metrics["charts/env_steps"]
            bar.set_postfix(ret=f"{metrics['charts/return_mean']:.1f}", succ=f"{metrics['charts/group_success_rate']:.2f}")
            done = it + 1
            # the iterations' wall time over every sitting: the summary travels in the checkpoint
            summary["seconds_training"] = summary.get("seconds_training", 0.0) + time.perf_counter() - t_iter
            last = done == cfg.iterations or budget_spent(cfg, summary)
            if done % cfg.checkpoint_interval == 0 or last:
                runs.save_checkpoint(run_dir, it, model.state(it, summary), keep_last=2)
            if on_iteration is not None:
                on_iteration(it, metrics)
            if last:
                break
        stage.now = "the 'after' evaluation"
        _timed(summary, "seconds_after_eval", protocol.run, model.policy, "after", summary)
    summary["iterations"] = done  # fewer than cfg.iterations when the env-step budget ran out first
    logger.log(_eval_metrics(summary, "after"), step=summary["iterations"])
    model.policy.save(run_dir / "checkpoints" / "policy")
    runs.mark_complete(run_dir, summary)
    return RunResult(run_dir, summary, runs.read_metrics(run_dir))


class _Stage:
    """Where a training run is, for the one line a fault stops it with."""

    now = "the start of the environment workers"


@contextmanager
def _faults_stop_resumably(run_dir: Path) -> Iterator[_Stage]:
    """A dead simulator worker becomes ``runs.RunError``, Ctrl-C / SIGTERM ``runs.RunInterrupted``,
    each one line saying where the run was and the checkpoint the rerun resumes from. Entered
    before the engine, so its workers are stopped by the time the line is raised."""
    stage = _Stage()
    try:
        yield stage
    except EnvWorkerError as exc:
        raise runs.RunError(f"{_worker_fault(run_dir, exc)} during {stage.now}; {_resume_note(run_dir)}") from exc
    except KeyboardInterrupt as exc:  # cli.interruptible names the signal
        raise runs.RunInterrupted(f"{str(exc) or 'interrupted'} during {stage.now}; {_resume_note(run_dir)}") from None


def _worker_fault(run_dir: Path, exc: EnvWorkerError) -> str:
    """The engine's one line; a worker's own traceback (an exception in the simulator) goes to
    ``worker_errors.log`` in the run, named in the line."""
    line = str(exc).rstrip(".")
    if exc.traceback_text:
        log = run_dir / "worker_errors.log"
        with log.open("a") as f:
            f.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n{exc.traceback_text}\n")
        line += f" (traceback in {log})"
    return line


def _resume_note(run_dir: Path) -> str:
    """Where rerunning the same command continues the run from."""
    ckpt = runs.latest_checkpoint(run_dir)
    if ckpt is None:
        return f"no checkpoint yet: rerunning the same command starts {run_dir} again from iteration 0"
    return f"rerun the same command to resume {run_dir} from {ckpt.name}"


def _timed(seconds: dict, key: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its wall time stored in ``seconds[key]``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds[key] = time.perf_counter() - t0
    return out


def _save_group(run_dir: Path, it: int, rewards: np.ndarray, rollout) -> None:
    """The group's rewards and success flags, so advantages can be recomputed and inspected later."""
    groups = run_dir / "groups"
    groups.mkdir(exist_ok=True)
    np.savez_compressed(groups / f"iter_{it:06d}.npz", rewards=rewards, success=rollout.success, valid=rollout.valid,
                        init_state_index=rollout.init_state_index)


__all__ = ["RunResult", "build_policy", "check_init_checkpoint", "config_for", "step_rewards", "train"]
