"""Synthetic run directories for the analysis tests (no simulator): complete runs with the files a
training run leaves (config.json, versions.json, metrics.json and, when asked, the per-episode
tables), at success rates that are whole counts so every number can be worked out by hand."""
import json

import pandas as pd

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import config_for, config_to_dict


SUITE_OFFSET = {"libero_object": 0.2, "libero_goal": 0.0}


BASE = {"tgrpo": 0.6, "tpo": 0.5, "dpo": 0.4, "grpo_sparse": 0.46, "step_only": 0.56, "traj_only": 0.58}


def after_rate(algo, suite, task, seed):
    base = 0.7 if (algo == "grpo_sparse" and suite == "libero_goal") else BASE[algo]
    return base + 0.1 * task + 0.02 * seed + SUITE_OFFSET[suite]


def write_run(root, algo, suite, task, seed, after, before, alpha1=0.3, group_size=4, episodes=10, env_steps=1000,
              torch_version="2.13.0", complete=True, heldout_episodes=None, init_checkpoint=None, flags=None,
              test_episodes=None, flag_sets=("standard",)):
    """One run directory; ``flags`` {"before"/"after": [success per init state]} also writes the
    per-episode tables eval/{tag}_{set}.csv of each of ``flag_sets`` (state keys s0, s1, ...);
    ``test_episodes`` adds a test evaluation (older runs have none)."""
    cfg = config_for(suite=suite, task_id=task, algo=algo, seed=seed, alpha1=alpha1,
                     group_size=group_size, final_eval_episodes=episodes, init_checkpoint=init_checkpoint,
                     run_name=f"{suite}-{task}__{algo}__a{alpha1}__N{group_size}__s{seed}")
    run_dir = runs.run_dir_path("train", cfg.run_name, root)
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"schema": CONFIG_SCHEMA, **config_to_dict(cfg)}))
    (run_dir / "versions.json").write_text(json.dumps({"python": "3.11.7", "packages": {"torch": torch_version,
                                                       "mujoco": "3.2.0"}, "git_commit": "abc123"}))
    heldout_episodes = heldout_episodes or 2 * episodes  # held-out rates are halved: whole counts still
    summary = {"algo": algo, "seed": seed, "env_steps": env_steps, "before_standard": before, "after_standard": after,
               "before_heldout": before / 2, "after_heldout": after / 2, "after_standard_episodes": episodes,
               "before_standard_episodes": episodes, "after_heldout_episodes": heldout_episodes,
               "before_heldout_episodes": heldout_episodes}
    if test_episodes:
        summary.update(before_test=before, after_test=after, before_test_episodes=test_episodes,
                       after_test_episodes=test_episodes)
    for tag, tag_flags in (flags or {}).items():
        (run_dir / "eval").mkdir(exist_ok=True)
        for which in flag_sets:
            pd.DataFrame({"init_set": which, "episode": range(len(tag_flags)),
                          "state_key": [f"s{i}" for i in range(len(tag_flags))], "success": tag_flags,
                          "length": 5}).to_csv(run_dir / "eval" / f"{tag}_{which}.csv", index=False)
    if complete:
        runs.mark_complete(run_dir, summary)
    return run_dir
