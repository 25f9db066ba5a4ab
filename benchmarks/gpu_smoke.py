"""GPU smoke test of the paper-scale path: 2 TGRPO iterations and one evaluation episode of an
OpenVLA checkpoint under the ``openvla`` preset (native OpenVLA, bf16, LoRA rank 32); prints peak GPU
memory beside ``tgrpo_lib.paper_scale.plan``'s prediction for the same config, seconds per iteration and per phase,
and the latency of one ``act`` call at batch N.

    .venv/bin/python benchmarks/gpu_smoke.py --random-weights                  # OpenVLA-7B's shapes, no download
    .venv/bin/python benchmarks/gpu_smoke.py --model /models/openvla-7b-finetuned-libero-goal --suite goal
    .venv/bin/python benchmarks/gpu_smoke.py --random-weights --size tiny --device cpu --max-steps 3  # dry run

``--random-weights`` builds OpenVLA-7B's architecture with weights drawn on the GPU
(``policy.testing.build_openvla_dir``): every number but success is the real model's, so any lent GPU
can run it. Short episodes (``--max-steps``, default 60) keep it to a few minutes; the update then sees
N x 60 steps, so its passes are the real ones (same micro-batch) but fewer of them. Every group is
updated (``skip_groups="none"``), so the update's memory is measured even when no episode succeeds.
Without a GPU (or the model directory) it prints one line saying what it needs and exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class CountedCalls:
    """A policy function that counts its calls (one call serves one worker's environments)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, obs):
        self.calls += 1
        return self.fn(obs)


def act_latency_ms(policy, instruction: str, n: int, repeats: int = 5, device: str = "cuda") -> float:
    """Median milliseconds of one sampled ``act`` on n 256 px frames (after one warm-up call)."""
    import numpy as np
    import torch

    from tgrpo_lib.policy.testing import synthetic_obs

    obs = synthetic_obs(batch=n, size=256, wrist=False, seed=0)
    times = []
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        policy.act(obs, instruction)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times[1:]))


def predicted_peak_gb(cfg) -> float:
    """``tgrpo_lib.paper_scale.plan``'s update peak for this run's config and model directory (the plan knows
    OpenVLA-7B's towers only, hence none for ``--size tiny``)."""
    from tgrpo_lib.paper_scale import plan

    arch = plan.build_architecture(None, cfg.policy.model_path, cfg.policy.gradient_checkpointing)
    return plan.plan(arch, plan.knobs_for(cfg))["peak"] / plan.GB


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="LIBERO-finetuned OpenVLA checkpoint directory (or --random-weights)")
    p.add_argument("--random-weights", action="store_true", help="OpenVLA's architecture with random weights")
    p.add_argument("--size", choices=("7b", "tiny"), default="7b", help="with --random-weights (tiny: CPU dry runs)")
    p.add_argument("--suite", default="libero_goal")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=60, help="episode budget of the smoke (the suite's is 220-520)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--device", default="cuda", help="cpu: a dry run of this script (no GPU numbers)")
    a = p.parse_args(argv)
    if bool(a.model) == a.random_weights:
        p.error("pass --model DIR (an OpenVLA checkpoint) or --random-weights, not both or neither.")

    from tgrpo_lib.envs.registry import canonical_suite
    from tgrpo_lib.paper_scale.parity import requirements

    gpu = a.device.startswith("cuda")
    if a.random_weights:
        from tgrpo_lib.policy.testing import build_openvla_dir  # deferred: transformers, after the flags are checked

        a.model = str(build_openvla_dir(tempfile.mkdtemp(prefix="openvla-random-"), size=a.size))
    missing = requirements(a.model, canonical_suite(a.suite), gpu=gpu)
    if missing:
        print(f"gpu_smoke needs {' and '.join(missing)}.", file=sys.stderr)
        raise SystemExit(2)

    import torch

    from tgrpo_lib.algorithm.updates import update
    from tgrpo_lib.envs import GroupEngine, get_task, init_states_for, rollout_group
    from tgrpo_lib.expert import load_key_poses
    from tgrpo_lib.infra.seeding import seed_everything
    from tgrpo_lib.paper_scale.presets import openvla_config
    from tgrpo_lib.policy.acting import ActingPolicy
    from tgrpo_lib.reward import make_reward
    from tgrpo_lib.training.evaluation import evaluate_set
    from tgrpo_lib.training.train import Trainable, step_rewards

    policy_over = {"device": a.device} if gpu else {"device": a.device, "dtype": "float32"}
    cfg = openvla_config(a.model, a.suite, a.task, group_size=a.group_size, env={"max_steps": a.max_steps},
                         policy=policy_over, skip_groups="none")
    task = get_task(cfg.suite, cfg.task_id)
    seed_everything(cfg.seed)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = Trainable(cfg)
    load_s = time.perf_counter() - t0
    reward = make_reward(task.suite, task.task_id, cfg=cfg.reward, key_poses=load_key_poses(task.suite, task.task_id))
    states = init_states_for(task.suite, task.task_id, "standard")
    iterations, act_s, act_calls = [], 0.0, 0
    with GroupEngine(task.suite, task.task_id, cfg.group_size, cfg.env) as engine:
        for it in range(a.iterations):
            actor = ActingPolicy(model.policy, task.instruction, greedy=False, temperature=cfg.temperature)
            fn = CountedCalls(actor)
            t = time.perf_counter()
            rollout = rollout_group(engine, fn, states[it], init_state_index=it)
            t_rollout = time.perf_counter() - t
            rewards, _ = step_rewards(cfg, reward, rollout)
            t_reward = time.perf_counter() - t - t_rollout
            stats = update(cfg, model.policy, model.optimizer, rollout, rewards, task.instruction)
            seconds = time.perf_counter() - t
            iterations.append({"seconds": seconds, "rollout_s": t_rollout, "act_s": actor.seconds,
                               "reward_s": t_reward, "update_s": seconds - t_rollout - t_reward,
                               "steps": rollout.length, "ratio_mean": stats["losses/ratio_mean"],
                               "rollout_logp_gap": stats["losses/rollout_logp_gap"]})
            act_s, act_calls = act_s + actor.seconds, act_calls + fn.calls
            print(f"iteration {it}: {seconds:.1f} s = rollout {t_rollout:.1f} s ({rollout.length} steps x "
                  f"{cfg.group_size}, acting {actor.seconds:.1f} s) + rewards {t_reward:.1f} s + update "
                  f"{iterations[-1]['update_s']:.1f} s; ratio {stats['losses/ratio_mean']:.4f}, "
                  f"|act - update log-prob| {stats['losses/rollout_logp_gap']:.2e}")
        t = time.perf_counter()
        ev = evaluate_set(model.policy, engine, "standard", 1, progress=False)
        eval_s = time.perf_counter() - t
    batch_ms = act_latency_ms(model.policy, task.instruction, cfg.group_size, device=a.device)
    out = {"peak_gb": torch.cuda.max_memory_allocated() / 2**30 if gpu else None,
           "plan_peak_gb": None if a.size == "tiny" and a.random_weights else predicted_peak_gb(cfg), "load_s": load_s,
           "seconds_per_iteration": sum(i["seconds"] for i in iterations) / len(iterations),
           "act_ms": 1000 * act_s / max(act_calls, 1), f"act_ms_batch{cfg.group_size}": batch_ms,
           "eval_episode_s": eval_s, "eval_success": bool(ev.success[0]), "eval_length": int(ev.episodes["length"][0]),
           "micro_batch": model.policy.micro_batch, "iterations": iterations, "random_weights": a.random_weights,
           "size": a.size if a.random_weights else None, "gpu": torch.cuda.get_device_name() if gpu else None}
    peak = f"{out['peak_gb']:.1f} GB" if gpu else "n/a (cpu dry run)"
    planned = f"{out['plan_peak_gb']:.1f} GB" if out["plan_peak_gb"] is not None else "n/a (tiny towers)"
    print(f"peak GPU memory {peak} (torch.cuda.max_memory_allocated; plan {planned}), "
          f"{out['seconds_per_iteration']:.1f} s/iteration at {a.max_steps} steps, act {out['act_ms']:.0f} ms/call "
          f"in the rollout, {batch_ms:.0f} ms at batch {cfg.group_size}, evaluation episode {eval_s:.1f} s "
          f"(success {out['eval_success']}, {out['eval_length']} steps)")
    if a.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
