"""The pre-registered dense-vs-sparse study (PROTOCOL.md): its starts, arms, budgets and queue.

    python experiments/dense_vs_sparse/study.py list       # the queue: each run's name and whether it finished
    python experiments/dense_vs_sparse/study.py qualify    # the weak start's eligibility, on held-out states
    python experiments/dense_vs_sparse/study.py run        # the queue in order; finished runs are skipped,
                                                           # a cut run resumes from its last iteration

Runs land under $TGRPO_OUTPUTS/train/ with the names ``config.run_name`` derives from each config
(so a rerun finds them), and every run's versions.json records the commit it ran at. Run it from
the git worktree at the pre-registered commit (queue.sh does).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # two simulator workers share the 2 cores with torch

import numpy as np  # noqa: E402

import tgrpo_lib  # noqa: E402
from tgrpo_lib import runs  # noqa: E402
from tgrpo_lib.config import DEFAULT_ENV, config_for, run_name, sft_default  # noqa: E402

STUDY_DIR = tgrpo_lib.OUTPUTS_DIR / "dense_vs_sparse"
WEAK_CANDIDATES = (("libero_goal", 5, 175), ("libero_spatial", 1, 175), ("libero_10", 5, 175))
"""Amendment 1 (PROTOCOL.md): (suite, task, SFT demos) tried in this order; the first eligible one is
the weak start. The registered candidates, libero_object task 0 with 100 / 75 / 125 demos, were
measured first: 100 and 75 demos had no group without a success (see PROTOCOL.md)."""
WEAK_RULE = {"greedy_low": 0.25, "greedy_high": 0.50, "all_fail_groups_min": 0.20}
ROLLOUT_TEMPERATURE = 0.5  # TrainConfig's default: the rate the groups see
STARTS = {  # regime -> the SFT start (libero task, demos; epochs and seed are the recipe's)
    "weak": None,  # chosen by `qualify` among WEAK_CANDIDATES
    "strong": {"suite": "libero_object", "task_id": 0, "demos": 175},  # make run's checkpoint D
    "long": {"suite": "libero_10", "task_id": 5, "demos": 175},  # 32 % greedy on standard states (one SFT run)
}
ENV_STEP_BUDGET = {"weak": 40_000, "strong": 27_000, "long": 80_000}
"""The weak regime's 40,000 is for libero_object's 280-step budget; another task's scales with its
step budget (``env_step_budget``)."""
ITERATION_CAP = 200  # never reached before the budget unless groups average < 200 env steps
ARMS = {
    "tgrpo": {"algo": "tgrpo", "skip_groups": "no_return_contrast"},
    "grpo_sparse": {"algo": "grpo_sparse", "skip_groups": "no_return_contrast"},  # = the outcome rule for 0/1 returns
    "tgrpo_outcome_filter": {"algo": "tgrpo", "skip_groups": "no_outcome_contrast"},  # the filter used until now
}
SEEDS = {("weak", "tgrpo"): range(8), ("weak", "grpo_sparse"): range(8), ("weak", "tgrpo_outcome_filter"): range(4),
         ("strong", "tgrpo"): range(4), ("strong", "grpo_sparse"): range(4),
         ("long", "tgrpo"): range(4), ("long", "grpo_sparse"): range(4)}
BLOCKS = (("strong", range(4)), ("weak", range(0, 4)), ("weak", range(4, 8)), ("long", range(4)))
"""Queue order (amendment 1: the strong block first, while the weak start is searched for): arms
interleaved by seed inside each block, so a campaign cut anywhere stays balanced."""


def queue() -> list[tuple[str, str, int]]:
    """(regime, arm, seed) in the order they run."""
    out = []
    for regime, seeds in BLOCKS:
        for seed in seeds:
            out += [(regime, arm, seed) for arm in ARMS if seed in SEEDS.get((regime, arm), ())]
    return out


def weak_start() -> dict:
    """The weak start as `qualify` chose it: {"suite", "task_id", "demos"}."""
    path = STUDY_DIR / "weak_start.json"
    if not path.is_file():
        sys.exit(f"{path} is missing: run `python {Path(__file__).name} qualify` first.")
    chosen = json.loads(path.read_text()).get("chosen")
    if chosen is None:
        sys.exit(f"{path}: no candidate start met the rule {WEAK_RULE}; the weak regime is not run (PROTOCOL.md).")
    return chosen


def start_of(regime: str) -> dict:
    return weak_start() if regime == "weak" else STARTS[regime]


def env_step_budget(regime: str) -> int:
    """The regime's budget; the weak regime's scaled to its task's step budget (1000s)."""
    if regime != "weak":
        return ENV_STEP_BUDGET[regime]
    from tgrpo_lib.envs import get_task  # deferred: LIBERO loads only when a weak run is built

    start = weak_start()
    steps = get_task(start["suite"], start["task_id"]).max_steps
    return int(round(ENV_STEP_BUDGET["weak"] * steps / 280 / 1000)) * 1000


def sft_config(regime: str):
    start = start_of(regime)
    return sft_default(start["suite"], start["task_id"], demos=start["demos"])


def checkpoint(regime: str) -> Path:
    return runs.run_dir_path("sft", run_name(sft_config(regime))) / "checkpoints" / "policy"


def train_config(regime: str, arm: str, seed: int):
    """The pre-registered config of one run (everything else TrainConfig's defaults)."""
    start = start_of(regime)
    return config_for(suite=start["suite"], task_id=start["task_id"], seed=seed, init_checkpoint=str(checkpoint(regime)),
                      iterations=ITERATION_CAP, env_step_budget=env_step_budget(regime), eval_interval=0,
                      final_eval_episodes=50, test_eval_episodes=100, **ARMS[arm])


# ------------------------------------------------------------------------------ the weak start
def qualify(progress: bool = True) -> dict:
    """Each candidate start in turn, until one is eligible: greedy success on the 50 held-out
    layouts, and the share of groups of N = 4 (one per held-out layout, T = 0.5) without a success.
    If the eligible start is the long regime's, the long block is not run separately (its runs
    are the weak regime's)."""
    from tgrpo_lib import pipeline
    from tgrpo_lib.envs import GroupEngine, get_task, init_states_for, rollout_group
    from tgrpo_lib.evaluation import evaluate_set
    from tgrpo_lib.policy import load_policy
    from tgrpo_lib.policy.acting import ActingPolicy
    from tgrpo_lib.seeding import seed_everything
    from tgrpo_lib.stats import success_summary

    report = {"rule": WEAK_RULE, "temperature": ROLLOUT_TEMPERATURE, "init_set": "heldout", "candidates": [],
              "chosen": None}
    for suite, task_id, demos in WEAK_CANDIDATES:
        task = get_task(suite, task_id)
        ckpt = pipeline.ensure_sft_checkpoint(sft_default(task.suite, task.task_id, demos=demos), progress=progress)
        policy = load_policy(ckpt)
        seed_everything(0)
        states = init_states_for(task.suite, task.task_id, "heldout", 50)
        with GroupEngine(task.suite, task.task_id, 4, DEFAULT_ENV) as engine:
            greedy = evaluate_set(policy, engine, "heldout", 50, checkpoint=ckpt, progress=progress).summary
            actor = ActingPolicy(policy, task.instruction, greedy=False, temperature=ROLLOUT_TEMPERATURE)
            has_success = [bool(rollout_group(engine, actor, s, init_state_index=i, stop="each").episode_success.any())
                           for i, s in enumerate(states)]
        all_fail = 1 - float(np.mean(has_success))
        ok = (WEAK_RULE["greedy_low"] <= greedy["rate"] <= WEAK_RULE["greedy_high"]
              and all_fail >= WEAK_RULE["all_fail_groups_min"])
        report["candidates"].append({"suite": task.suite, "task_id": task.task_id, "demos": demos,
                                     "checkpoint": str(ckpt), "greedy_heldout": greedy, "groups": len(has_success),
                                     "all_fail_groups": all_fail, "groups_summary": success_summary(has_success),
                                     "eligible": ok})
        print(f"[qualify] {task.key}, {demos} demos: greedy held-out {100 * greedy['rate']:.0f} % (n={greedy['n']}), "
              f"groups without a success {100 * all_fail:.0f} % of {len(has_success)}: "
              f"{'eligible' if ok else 'not eligible'}", flush=True)
        if ok:
            report["chosen"] = {"suite": task.suite, "task_id": task.task_id, "demos": demos}
            break
    STUDY_DIR.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(STUDY_DIR / "weak_start.json", report)
    return report


# ------------------------------------------------------------------------------ the queue
def status(regime: str, arm: str, seed: int) -> tuple[str, str]:
    try:
        name = run_name(train_config(regime, arm, seed))
    except SystemExit:
        return "(weak start not chosen yet)", "waiting"
    d = runs.run_dir_path("train", name)
    return name, "done" if runs.is_complete(d) else ("started" if d.exists() else "queued")


def skipped(regime: str) -> bool:
    """Amendment 1: the weak regime is not run without an eligible start, and the long block is
    not run separately when the weak start is the long regime's own."""
    if regime not in ("weak", "long"):
        return False
    if not (STUDY_DIR / "weak_start.json").is_file():
        qualify(progress=False)
    chosen = json.loads((STUDY_DIR / "weak_start.json").read_text()).get("chosen")
    if regime == "weak":
        return chosen is None
    long = STARTS["long"]
    return chosen is not None and (chosen["suite"], chosen["task_id"], chosen["demos"]) == (
        long["suite"], long["task_id"], long["demos"])


def run_queue(only: str | None = None, progress: bool = False) -> None:
    from tgrpo_lib import pipeline
    from tgrpo_lib.train import train

    for regime, arm, seed in queue():
        if (only and regime != only) or skipped(regime):
            continue
        name, state = status(regime, arm, seed)
        if state == "done":
            continue
        pipeline.ensure_sft_checkpoint(sft_config(regime), progress=progress)
        t0 = time.time()
        print(f"[study] {time.strftime('%H:%M:%S')} {regime} {arm} seed {seed}: {name}", flush=True)
        result = train(train_config(regime, arm, seed), progress=progress)
        s = result.summary
        print(f"[study] done in {(time.time() - t0) / 60:.1f} min: test {s.get('before_test')} -> {s.get('after_test')}, "
              f"env steps {s.get('env_steps')}, iterations {s.get('iterations')}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("list", "qualify", "run"))
    ap.add_argument("--only", choices=tuple(STARTS), help="run one regime's runs only")
    a = ap.parse_args(argv)
    if a.command == "list":
        for i, (regime, arm, seed) in enumerate(queue()):
            name, state = status(regime, arm, seed)
            print(f"{i:2d}  {regime:6s} {arm:21s} s{seed}  {state:8s} {name}")
    elif a.command == "qualify":
        qualify()  # also run by `run` when it reaches the first weak or long run
    else:
        run_queue(a.only)


if __name__ == "__main__":
    main()
