"""Why a policy does or does not improve under TGRPO: what the starting policy and the groups of a
training run look like, measured.

    python -m tgrpo_lib diagnose --checkpoint outputs/sft/<run>/checkpoints/policy --run outputs/train/<run>

1. The starting policy, greedy and sampled at the rollout temperature, on the same init states:
   success (n, 95 % interval), the paired change (exact McNemar), and for every episode the
   reward stage it reached and ended in (where failures stop).
2. The groups of a training run (``groups/iter_*.npz``): how many contain a success, the step of
   the first success, and how the dense return ranks a group's successes above its failures
   (the signal the trajectory-level advantage learns from).

Writes ``outputs/diagnosis/<name>/diagnosis.{json,md}`` and prints the Markdown.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import tgrpo_lib
from tgrpo_lib.analysis.stats import format_change, format_rate, paired_change, success_summary
from tgrpo_lib.envs import GroupEngine, init_states_for
from tgrpo_lib.infra.cli import checked, run_guarded
from tgrpo_lib.infra.config import check_name, config_for
from tgrpo_lib.policy import load_policy
from tgrpo_lib.reward import RewardConfig, make_reward, recorded_key_poses


# ------------------------------------------------------------------------------ the groups of a run
def group_signal(run_dir: str | Path) -> dict:
    """Statistics of a run's saved groups (rewards (N, T), success (N, T) per iteration)."""
    files = sorted(Path(run_dir, "groups").glob("iter_*.npz"))
    if not files:
        raise FileNotFoundError(f"{run_dir} has no groups/iter_*.npz: pass a training run directory.")
    has_success, first_step, lengths, pair_wins, pair_total, n_success = [], [], [], 0, 0, []
    for f in files:
        g = np.load(f)
        success, returns = g["success"].any(1), g["rewards"].sum(1)  # (N,), (N,)
        has_success.append(bool(success.any()))
        lengths.append(int(g["rewards"].shape[1]))
        n_success.append(int(success.sum()))
        if success.any():
            first_step.append(int(np.flatnonzero(g["success"].any(0))[0]) + 1)
        wins = returns[success][:, None] > returns[~success][None, :]  # (successes, failures)
        pair_wins += int(wins.sum())
        pair_total += int(wins.size)
    return {"groups": len(files), "groups_with_success": int(sum(has_success)),
            "fraction_with_success": float(np.mean(has_success)),
            "successes_per_group": {str(k): int(v) for k, v in zip(*np.unique(n_success, return_counts=True))},
            "first_success_step_median": float(np.median(first_step)) if first_step else float("nan"),
            "first_success_steps": first_step, "group_length_median": float(np.median(lengths)),
            "success_beats_failure_pairs": pair_wins, "success_failure_pairs": pair_total,
            "success_ranked_above_failure": pair_wins / pair_total if pair_total else float("nan")}


# ------------------------------------------------------------------------------ the starting policy
def policy_episodes(policy, engine, states: np.ndarray, reward_program, greedy: bool, temperature: float = 1.0,
                    seed: int = 0) -> pd.DataFrame:
    """One episode per init state, lock-step in batches of the engine's N environments; per episode
    success, length, and the reward stage reached (max) and ended in (final)."""
    from tgrpo_lib.policy.acting import ActingPolicy  # deferred: torch loads only once the arguments proved valid

    if not greedy:
        policy.generator.manual_seed(seed)
    actor = ActingPolicy(policy, engine.task.instruction, greedy=greedy, temperature=temperature)
    rows = []
    for start in range(0, len(states), engine.n):
        batch = states[start:start + engine.n]
        k = len(batch)
        obs = engine.reset(np.concatenate([batch, np.repeat(batch[-1:], engine.n - k, 0)]))
        traj = [{key: v.copy() for key, v in obs["state"].items()}]
        active = np.arange(engine.n) < k
        done_at = np.full(engine.n, -1)
        for t in range(engine.max_steps):
            actions = np.asarray(actor(obs)["actions"], dtype=np.float64)
            obs, success = engine.step(actions, active)
            traj.append({key: v.copy() for key, v in obs["state"].items()})
            newly = active & success
            done_at[newly] = t + 1
            active &= ~success
            if not active.any():
                break
        stacked = {key: np.stack([s[key] for s in traj], axis=1) for key in traj[0]}  # (N, T+1, ...)
        stage = reward_program(stacked).stage  # (N, T+1)
        for i in range(k):
            end = done_at[i] if done_at[i] > 0 else len(traj) - 1
            rows.append({"episode": start + i, "success": bool(done_at[i] > 0), "length": int(end),
                         "max_stage": int(stage[i, :end + 1].max()), "final_stage": int(stage[i, end])})
    return pd.DataFrame(rows)


def starting_policy(checkpoint: str | Path, suite: str, task_id: int, episodes: int = 50, temperature: float = 1.0,
                    n_envs: int = 4, seed: int = 0) -> dict:
    """Greedy vs sampled success of a saved policy on the same standard init states, and stages."""
    from tgrpo_lib.training.evaluation import env_for  # deferred: torch loads only once the arguments proved valid

    policy = load_policy(checkpoint)
    policy.set_mode("rl")  # as a training run acts (LoRA on, B = 0: the SFT function)
    cfg = RewardConfig()  # the reward a training run uses by default
    reward = make_reward(suite, task_id, cfg=cfg, key_poses=recorded_key_poses(suite, task_id, cfg))
    states = init_states_for(suite, task_id, "standard", episodes)
    with GroupEngine(suite, task_id, n_envs, env_for(policy)) as engine:
        greedy = policy_episodes(policy, engine, states, reward, greedy=True)
        sampled = policy_episodes(policy, engine, states, reward, greedy=False, temperature=temperature, seed=seed)
    out = {"episodes": episodes, "n_stages": int(reward.n_stages), "temperature": temperature,
           "greedy": success_summary(greedy["success"]), "sampled": success_summary(sampled["success"]),
           "greedy_vs_sampled": paired_change(greedy["success"].tolist(), sampled["success"].tolist())}
    for name, table in (("greedy", greedy), ("sampled", sampled)):
        fails = table[~table["success"]]
        out[f"{name}_failure_final_stage"] = {str(k): int(v) for k, v in fails["final_stage"].value_counts().sort_index().items()}
        out[f"{name}_failure_max_stage"] = {str(k): int(v) for k, v in fails["max_stage"].value_counts().sort_index().items()}
        out[f"{name}_mean_length_success"] = float(table.loc[table["success"], "length"].mean()) if table["success"].any() else float("nan")
    return out


def to_markdown(d: dict) -> str:
    lines = []
    if "starting_policy" in d:
        s = d["starting_policy"]
        lines += [f"## Starting policy ({s['episodes']} standard init states, {s['n_stages']} reward stages)", "",
                  "| mode | success |", "|---|---|",
                  f"| greedy | {format_rate(s['greedy'])} |",
                  f"| sampled, T = {s['temperature']:g} | {format_rate(s['sampled'])} |", "",
                  f"sampled vs greedy: {format_change(s['greedy_vs_sampled'])}", "",
                  f"- greedy failures end in stage: {s['greedy_failure_final_stage']} (max reached: {s['greedy_failure_max_stage']})",
                  f"- sampled failures end in stage: {s['sampled_failure_final_stage']} (max reached: {s['sampled_failure_max_stage']})", ""]
    if "groups" in d:
        g = d["groups"]
        lines += [f"## Groups of the training run ({g['groups']} iterations)", "",
                  f"- groups with at least one success: {g['groups_with_success']}/{g['groups']} "
                  f"({format_rate(success_summary([True] * g['groups_with_success'] + [False] * (g['groups'] - g['groups_with_success'])))})",
                  f"- successes per group (count: groups): {g['successes_per_group']}",
                  f"- step of the first success: median {g['first_success_step_median']:g} "
                  f"(group length median {g['group_length_median']:g})",
                  f"- dense return ranks a success above a failure of the same group in "
                  f"{g['success_beats_failure_pairs']}/{g['success_failure_pairs']} pairs "
                  f"({100 * g['success_ranked_above_failure']:.0f} %)", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tgrpo_lib diagnose", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="saved starting policy (outputs/sft/<run>/checkpoints/policy)")
    p.add_argument("--run", help="training run directory whose groups to read")
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--name", default="latest", help="outputs/diagnosis/<name>/")
    a = p.parse_args(argv)

    def check():
        if not a.checkpoint and not a.run:
            raise ValueError("pass --checkpoint (a saved policy), --run (a training run) or both.")
        if a.checkpoint and not (Path(a.checkpoint) / "policy_config.json").is_file():
            raise FileNotFoundError(f"--checkpoint {a.checkpoint} is not a saved policy (no policy_config.json).")
        if a.run and not (Path(a.run) / "groups").is_dir():
            raise FileNotFoundError(f"--run {a.run} has no groups/: pass a training run directory.")
        check_name("--name", a.name)
        return config_for(suite=a.suite, task_id=a.task, final_eval_episodes=a.episodes, temperature=a.temperature)

    cfg = checked(p, check)

    def work() -> dict:
        out: dict = {"suite": cfg.suite, "task_id": cfg.task_id, "checkpoint": a.checkpoint, "run": a.run}
        if a.run:
            out["groups"] = group_signal(a.run)
        if a.checkpoint:
            out["starting_policy"] = starting_policy(a.checkpoint, cfg.suite, cfg.task_id, a.episodes, a.temperature)
        folder = tgrpo_lib.OUTPUTS_DIR / "diagnosis" / a.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "diagnosis.json").write_text(json.dumps(out, indent=2, default=float))
        md = to_markdown(out)
        (folder / "diagnosis.md").write_text(md)
        print(md)
        return out
    return run_guarded(p.prog, work)


if __name__ == "__main__":
    main()
