"""GPU smoke test of the paper-scale path: 2 TGRPO iterations and one evaluation episode of an
OpenVLA checkpoint under the ``openvla`` preset; prints peak GPU memory, seconds per iteration and
the latency of one ``act`` call.

    .venv/bin/python benchmarks/gpu_smoke.py --model /models/openvla-7b-finetuned-libero-goal --suite goal
    .venv/bin/python benchmarks/gpu_smoke.py --model DIR --max-steps 60 --json

Short episodes (``--max-steps``, default 60) keep it to a few minutes; the update then sees
N x 60 steps, so its passes are the real ones (same micro-batch) but fewer of them. Compare the
peak with ``python -m tgrpo_lib.plan --model DIR`` (its ``peak_gb``). Without a GPU or the model
directory it prints one line saying what it needs and exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class CountedCalls:
    """A policy function that counts its calls (one call serves one worker's environments)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, obs):
        self.calls += 1
        return self.fn(obs)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="LIBERO-finetuned OpenVLA checkpoint directory")
    p.add_argument("--suite", default="libero_goal")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=60, help="episode budget of the smoke (the suite's is 220-520)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--device", default="cuda", help="cpu: a dry run of this script on a small model (no GPU numbers)")
    a = p.parse_args(argv)

    from tgrpo_lib.envs.registry import canonical_suite
    from tgrpo_lib.parity import requirements

    gpu = a.device.startswith("cuda")
    missing = requirements(a.model, canonical_suite(a.suite), gpu=gpu)
    if missing:
        print(f"gpu_smoke needs {' and '.join(missing)}.", file=sys.stderr)
        raise SystemExit(2)

    import torch

    from tgrpo_lib.envs import GroupEngine, get_task, init_states_for, rollout_group
    from tgrpo_lib.evaluation import evaluate_set
    from tgrpo_lib.expert import load_key_poses
    from tgrpo_lib.policy.acting import ActingPolicy
    from tgrpo_lib.presets import openvla_config
    from tgrpo_lib.reward import make_reward
    from tgrpo_lib.seeding import seed_everything
    from tgrpo_lib.train import Trainable, step_rewards
    from tgrpo_lib.updates import update

    cfg = openvla_config(a.model, a.suite, a.task, group_size=a.group_size, env={"max_steps": a.max_steps},
                         policy={"device": a.device})
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
            stats = update(cfg, model.policy, model.optimizer, rollout, rewards, task.instruction)
            iterations.append({"seconds": time.perf_counter() - t, "rollout_s": t_rollout, "steps": rollout.length,
                               "ratio_mean": stats["losses/ratio_mean"],
                               "rollout_logp_gap": stats["losses/rollout_logp_gap"]})
            act_s, act_calls = act_s + actor.seconds, act_calls + fn.calls
            print(f"iteration {it}: {iterations[-1]['seconds']:.1f} s ({t_rollout:.1f} s rollout of {rollout.length} "
                  f"steps x {cfg.group_size}), ratio {stats['losses/ratio_mean']:.4f}, |act - update log-prob| "
                  f"{stats['losses/rollout_logp_gap']:.2e}")
        t = time.perf_counter()
        ev = evaluate_set(model.policy, engine, "standard", 1, progress=False)
        eval_s = time.perf_counter() - t
    out = {"peak_gb": torch.cuda.max_memory_allocated() / 2**30 if gpu else None, "load_s": load_s,
           "seconds_per_iteration": sum(i["seconds"] for i in iterations) / len(iterations),
           "act_ms": 1000 * act_s / max(act_calls, 1), "eval_episode_s": eval_s,
           "eval_success": bool(ev.success[0]), "eval_length": int(ev.episodes["length"][0]),
           "micro_batch": model.policy.micro_batch, "iterations": iterations,
           "gpu": torch.cuda.get_device_name() if gpu else None}
    peak = f"{out['peak_gb']:.1f} GB" if gpu else "n/a (cpu dry run)"
    print(f"peak GPU memory {peak} (torch.cuda.max_memory_allocated), "
          f"{out['seconds_per_iteration']:.1f} s/iteration at {a.max_steps} steps, act {out['act_ms']:.0f} ms/call, "
          f"evaluation episode {eval_s:.1f} s (success {out['eval_success']}, {out['eval_length']} steps)")
    if a.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
