"""Supervised fine-tuning baseline (the OpenVLA recipe: cross-entropy over the 7 action tokens)
on scripted-expert or official LIBERO demonstrations, and the checkpoint RL starts from.

    python -m tgrpo_lib sft --suite object --tasks 0 --epochs 30
    python -m tgrpo_lib sft --suite object              # all 10 tasks of the suite, one policy

The run directory ``outputs/sft/<name>/`` holds config.json, metrics.jsonl (the loss curve),
checkpoints/policy (load with ``tgrpo_lib.policy.load_policy``), eval.csv (per episode) and
success.csv (per task, standard and held-out init states).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tgrpo_lib.analysis.stats import success_summary
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.cli import checked, parse_sets, run_guarded
from tgrpo_lib.infra.config import N_TASKS, SFTConfig, override, run_name
from tgrpo_lib.infra.metrics import MetricsLogger

# Deferred into the functions below: torch and what imports it (demos, evaluation, policy, seeding;
# ~3-5 s), so `python -m tgrpo_lib sft` refuses bad arguments before they load.


def _frames(demos, policy, progress: bool) -> dict:
    """Stack every demo step into one training set; frozen image features computed once."""
    import torch  # deferred: after the arguments are checked

    feats, proprio, actions, instr, demo_idx = [], [], [], [], []
    for i, d in enumerate(tqdm(demos, desc="encode demo frames", disable=not progress, leave=False)):
        obs = {"agentview": d.agentview, "proprio": d.proprio}
        if getattr(d, "wrist", None) is not None:
            obs["wrist"] = d.wrist
        with torch.no_grad():
            feats.append(np.concatenate([policy.encode_images({k: v[s:s + 128] for k, v in obs.items()})
                                         for s in range(0, len(d.actions), 128)]))
        proprio.append(d.proprio.astype(np.float32))
        actions.append(d.actions.astype(np.float32))
        instr += [d.instruction] * len(d.actions)
        demo_idx.append(np.full(len(d.actions), i))
    return {"features": np.concatenate(feats), "proprio": np.concatenate(proprio),
            "actions": np.concatenate(actions), "instruction": np.array(instr), "demo": np.concatenate(demo_idx)}


def check_demo_layouts(demos, cfg: SFTConfig) -> None:
    """Refuse demonstrations recorded on other scenes than ``cfg.demo_layouts`` asks for (one line
    naming the fix): SFT on the standard states would make the standard evaluation a training set."""
    if cfg.demo_layouts == "any":
        return
    other = sorted({d.layout for d in demos} - {cfg.demo_layouts})
    if other:
        n = sum(d.layout != cfg.demo_layouts for d in demos)
        raise ValueError(f"{n} of {len(demos)} demonstrations were recorded on {'/'.join(other)} layouts, but "
                         f"demo_layouts={cfg.demo_layouts!r}: record them with `python -m tgrpo_lib expert --suite "
                         f"{cfg.suite} --task ID --episodes N --record --init-states {cfg.demo_layouts}` "
                         f"(sampled / standard) or pass demo_layouts='any'.")


def _loss_over(policy, data: dict, idx: np.ndarray, batch_size: int) -> float:
    import torch  # deferred: after the arguments are checked

    total = 0.0
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            b = idx[s:s + batch_size]
            obs = {"features": data["features"][b], "proprio": data["proprio"][b]}
            total += float(policy.sft_loss(obs, list(data["instruction"][b]), data["actions"][b])) * len(b)
    return total / max(len(idx), 1)


def train_sft(cfg: SFTConfig, demos=None, root: Path | str | None = None, progress: bool = True) -> runs.RunResult:
    """Train, save and evaluate; returns the run's ``RunResult`` (run_dir, summary with the
    checkpoint, the loss curve). A complete run is read back, not trained again; a second process
    on the run is refused, naming the holder."""
    task_ids = cfg.task_ids if cfg.task_ids is not None else tuple(range(N_TASKS))
    return runs.run_once("sft", run_name(cfg), cfg, lambda run_dir: _train_sft(cfg, run_dir, task_ids, demos, progress),
                         root)


def _train_sft(cfg: SFTConfig, run_dir: Path, task_ids, demos, progress: bool) -> runs.RunResult:
    # deferred: torch and the modules importing it, after the arguments are checked
    import pandas as pd
    import torch

    from tgrpo_lib.infra.demos import load_demos
    from tgrpo_lib.infra.seeding import seed_everything
    from tgrpo_lib.policy import ActionStats, load_policy, make_policy
    from tgrpo_lib.training.evaluation import evaluate

    seed_everything(cfg.seed)
    if demos is None:
        demos = load_demos(cfg.suite, task_ids, root=cfg.demos_root, with_states=False)  # SFT needs no privileged state
        if cfg.max_demos_per_task:
            per_task: dict = {}
            demos = [d for d in demos if per_task.setdefault(d.task_id, []).append(d) or
                     len(per_task[d.task_id]) <= cfg.max_demos_per_task]
    if not demos:
        raise FileNotFoundError(f"no demonstrations for {cfg.suite} tasks {task_ids}: record them first with "
                                f"`python -m tgrpo_lib expert --suite {cfg.suite} --task ID --episodes 200 --record "
                                "--init-states sampled`.")
    check_demo_layouts(demos, cfg)
    stats = ActionStats.from_actions(np.concatenate([d.actions for d in demos]))
    policy = make_policy(cfg.policy, stats)
    policy.set_mode("sft")
    data = _frames(demos, policy, progress)
    rng = np.random.default_rng(cfg.seed)
    n_val = int(round(cfg.val_fraction * len(demos))) if len(demos) > 1 else 0
    val_demos = set(rng.permutation(len(demos))[:n_val].tolist())
    is_val = np.isin(data["demo"], list(val_demos))
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(train_idx) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
    logger = MetricsLogger(run_dir)
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="sft epochs", disable=not progress)
    for epoch in bar:
        perm = rng.permutation(train_idx)
        losses = []
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s:s + cfg.batch_size]
            obs = {"features": data["features"][b], "proprio": data["proprio"][b]}
            loss = policy.sft_loss(obs, list(data["instruction"][b]), data["actions"][b])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), 1.0)
            optimizer.step()
            sched.step()
            losses.append(loss.item())
        row = {"losses/train": float(np.mean(losses)), "charts/lr": sched.get_last_lr()[0]}
        if len(val_idx):
            row["losses/val"] = _loss_over(policy, data, val_idx, cfg.batch_size)
        logger.log(row, step=epoch)
        bar.set_postfix(loss=f"{row['losses/train']:.3f}")
    ckpt = policy.save(run_dir / "checkpoints" / "policy")
    summary = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "suite": cfg.suite, "task_ids": list(task_ids),
               "demos": len(demos), "frames": int(len(data["actions"])), "train_seconds": time.perf_counter() - t0,
               "final_train_loss": row["losses/train"], "final_val_loss": row.get("losses/val")}
    if cfg.eval_episodes:  # the evaluation protocol; its episodes are cached beside the checkpoint for RL runs
        policy = load_policy(ckpt)  # exactly what an RL run loads, so the episodes it caches are the RL run's "before"
        policy.set_mode("rl")
        table = pd.concat([evaluate(policy, cfg.suite, list(task_ids), cfg.eval_episodes, init_states=which,
                                    cfg=cfg.env, n_envs=cfg.eval_envs, video_dir=run_dir / "videos",
                                    checkpoint=ckpt, progress=progress)
                           for which in cfg.eval_init_sets], ignore_index=True)
        table.to_csv(run_dir / "eval.csv", index=False)
        per_task = table.pivot_table(index="task_id", columns="init_set", values="success", aggfunc="mean")
        per_task.to_csv(run_dir / "success.csv")
        for which in cfg.eval_init_sets:
            s = success_summary(table.loc[table.init_set == which, "success"].to_numpy(dtype=bool))
            summary[f"success_{which}"], summary[f"success_{which}_ci"] = s["rate"], [s["ci_low"], s["ci_high"]]
            summary[f"success_{which}_episodes"] = s["n"]
        summary["eval_episodes_per_task"] = cfg.eval_episodes
    runs.mark_complete(run_dir, summary)
    return runs.RunResult(run_dir, summary, runs.read_metrics(run_dir))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m tgrpo_lib sft", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--tasks", type=int, nargs="*", help="task ids (default: all 10 of the suite)")
    p.add_argument("--epochs", type=int, default=SFTConfig.epochs)
    p.add_argument("--eval-episodes", type=int, default=SFTConfig.eval_episodes)
    p.add_argument("--max-demos", type=int, default=None)
    p.add_argument("--demos-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="run directory name under outputs/sft/")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="any other SFTConfig field, e.g. policy.feature_grid=4")
    a = p.parse_args(argv)
    cfg = checked(p, lambda: override(SFTConfig(suite=a.suite, task_ids=tuple(a.tasks) if a.tasks else None,
                                                epochs=a.epochs, eval_episodes=a.eval_episodes,
                                                max_demos_per_task=a.max_demos, demos_root=a.demos_root,
                                                seed=a.seed, run_name=a.name), parse_sets(a.set)))
    result = run_guarded(p.prog, lambda: train_sft(cfg))
    print(json.dumps(result.summary))


if __name__ == "__main__":
    main()
