"""The run tree most analysis tests read: two suites, every Table I method, the ablations on
libero_goal, two tasks and two seeds each, and one unfinished run that must be ignored."""
import pytest
from run_dirs import SUITE_OFFSET, after_rate, write_run


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    for suite in SUITE_OFFSET:
        algos = ["tgrpo", "tpo", "dpo", "grpo_sparse"] + (["step_only", "traj_only"] if suite == "libero_goal" else [])
        for algo in algos:
            for task in (0, 1):
                for seed in (0, 1):
                    write_run(root, algo, suite, task, seed, after_rate(algo, suite, task, seed),
                              before=0.3 + 0.1 * task + SUITE_OFFSET[suite], episodes=50)
    # an unfinished run must be ignored
    write_run(root, "tgrpo", "libero_object", 2, 0, after=0.0, before=0.0, complete=False)
    return root
