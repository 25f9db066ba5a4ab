"""experiments/dense_vs_sparse/collect.py against the code the study runs at (its pre-registered
commit, unpacked from git history): amendment 1's families. When the weak start is the long
regime's own, S3 and the long cells are not run and Holm covers S1, S2 and five cells; when no
start is eligible, H1 / S1 and the weak cells are not run. Run outcomes are synthetic flags."""
import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO

import pytest

from tgrpo_lib import PROJECT_ROOT

STUDY_COMMIT = "68fda77"  # RESULTS.md: the runs execute from a worktree at this commit
PREAMBLE = r"""
import json, sys, tempfile, pathlib
sys.path.insert(0, sys.argv[1])
import collect
d = pathlib.Path(tempfile.mkdtemp())
(d / "weak_start.json").write_text(json.dumps({"chosen": json.loads(sys.argv[2])}))
collect.study.STUDY_DIR = d
"""  # argv: collect.py's folder, the qualification's choice (JSON)
SCRIPT = PREAMBLE + r"""
import numpy as np, pandas as pd
numbers = dict(before_test=0.0, after_test=0.0, after_standard=0.0, after_heldout=0.0, env_steps=1000, iterations=5,
               all_fail_groups=0.5, groups_updated=0.5, kl_to_reference=0.1, train_minutes=8.0,
               wall_minutes=10.0)
rows = [{"regime": r, "arm": a, "seed": s, "complete": True, **numbers} for r, a, s in collect.study.queue()]
table = pd.DataFrame(rows)
def flags(regime, arm, which, tag="after"):  # A arms always succeed after training, B arms never
    n = len(collect.study.SEEDS[(regime, arm)])
    return np.full((n, 100), int(tag == "after" and arm == "tgrpo"))
collect.flags = flags
found, cells = collect.contrasts(table), collect.before_after(table)
md = collect.markdown(table, found, cells)
print(json.dumps({"contrasts": found, "cells": cells, "markdown": md}, default=float))
"""

RUN_ROW_SCRIPT = PREAMBLE + r"""
from tgrpo_lib import runs
from tgrpo_lib.config import run_name
run = runs.run_dir_path("train", run_name(collect.study.train_config("weak", "tgrpo", 0)))
run.mkdir(parents=True)
(run / runs.COMPLETE_MARKER).write_text("")
(run / "versions.json").write_text(json.dumps({"git_commit": "abc", "git_dirty": False}))
(run / "metrics.json").write_text(json.dumps({"seconds_before_eval": 60, "seconds_training": 60,
                                              "seconds_after_eval": 60, "env_steps": 900, "iterations": 3}))
rows = [{"step": -1, "eval/success_test": 0.5}] + [
    {"step": i, "charts/env_steps": 300, "charts/group_has_success": 1.0, "update/skipped": 0.0,
     "losses/kl_mean": 0.1, "time/iteration": 60.0 * (i + 1)} for i in range(3)]
(run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
print(json.dumps(collect.run_row("weak", "tgrpo", 0), default=float))
"""


@pytest.fixture(scope="module")
def study_code(tmp_path_factory):
    """tgrpo_lib as it is at the study's commit (the package the study's scripts import)."""
    out = tmp_path_factory.mktemp("study_code")
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", STUDY_COMMIT, "tgrpo_lib"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {STUDY_COMMIT} is not in this clone's history (a shallow clone?)")
    tarfile.open(fileobj=BytesIO(archive.stdout)).extractall(out, filter="data")
    return out


def collect_with(study_code, chosen, script: str = SCRIPT) -> dict:
    env = {**os.environ, "PYTHONPATH": str(study_code), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "TGRPO_OUTPUTS": str(study_code / "outputs")}
    done = subprocess.run([sys.executable, "-c", script, str(PROJECT_ROOT / "experiments" / "dense_vs_sparse"),
                           json.dumps(chosen)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=study_code)  # not the checkout: its tgrpo_lib would shadow the study's
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_long_start_chosen_as_weak_drops_s3_from_the_holm_family(study_code):
    got = collect_with(study_code, {"suite": "libero_10", "task_id": 5, "demos": 175})
    c = {x["contrast"]: x for x in got["contrasts"]}
    assert c["S3"]["not_run"] == "the long start is the weak one" and "p_holm" not in c["S3"]
    # S1: 8 vs 4 runs, all apart: only the observed split of C(12, 4) = 495 is as extreme (four
    # runs cannot hold eight successes), p = 1/495; S2: 4 vs 4, the split and its mirror, 2/70
    assert c["S1"]["p"] == pytest.approx(1 / 495) and c["S2"]["p"] == pytest.approx(2 / 70)
    assert c["S1"]["p_holm"] == pytest.approx(2 / 495) and c["S2"]["p_holm"] == pytest.approx(2 / 70)
    assert "p_holm" not in c["H1"] and c["H1"]["p"] == pytest.approx(2 / 12870)  # H1 stands alone
    family = [x for x in got["cells"] if "not_run" not in x]
    assert len(family) == 5 and all("p_holm" in x for x in family)
    assert "p (Holm, S1, S2)" in got["markdown"] and "p (Holm, 5 cells)" in got["markdown"]
    assert "**28 of 28** pre-registered that run (8 left out by amendment 1)" in got["markdown"]


def test_no_eligible_weak_start_leaves_h1_and_s1_out(study_code):
    got = collect_with(study_code, None)
    c = {x["contrast"]: x for x in got["contrasts"]}
    assert c["H1"]["not_run"] == c["S1"]["not_run"] == "no eligible weak start"
    assert c["S2"]["p_holm"] == pytest.approx(min(1.0, 2 * 2 / 70)) and c["S3"]["p_holm"] == pytest.approx(2 * 2 / 70)
    assert sum("not_run" not in x for x in got["cells"]) == 4
    assert "p (Holm, S2, S3)" in got["markdown"] and "not run: no eligible weak start" in got["markdown"]


def test_every_regime_run_keeps_the_registered_families(study_code):
    got = collect_with(study_code, {"suite": "libero_goal", "task_id": 5, "demos": 175})
    assert all("not_run" not in x for x in got["contrasts"] + got["cells"])
    assert "p (Holm, S1, S2, S3)" in got["markdown"] and "p (Holm, 7 cells)" in got["markdown"]
    assert "**36 of 36** pre-registered." in got["markdown"]


def test_a_resumed_runs_training_minutes_count_every_sitting(study_code):
    # metrics.json's seconds are the last sitting's (1 min each here); the per-iteration log holds
    # every sitting's iterations (a resume cuts it back to the checkpoint): 1 + 2 + 3 min
    got = collect_with(study_code, {"suite": "libero_spatial", "task_id": 1, "demos": 175}, RUN_ROW_SCRIPT)
    assert got["complete"] and got["train_minutes"] == pytest.approx(6.0) and got["wall_minutes"] == pytest.approx(3.0)


CARRY_SCRIPT = PREAMBLE + r"""
import pandas as pd
numbers = dict(before_test=0.3, after_test=0.0, after_standard=0.0, after_heldout=0.0, env_steps=1000, iterations=5,
               all_fail_groups=0.5, groups_updated=0.5, kl_to_reference=0.1, train_minutes=8.0, wall_minutes=10.0)
q = collect.study.queue()
names = {k: f"run{i}" for i, k in enumerate(q)}
# this machine finished one run, long TGRPO seed 0; the carried table has every run but long GRPO-sparse seed 3
here = pd.DataFrame([{"regime": r, "arm": a, "seed": s, "complete": (r, a, s) == ("long", "tgrpo", 0),
                      "run_name": names[(r, a, s)], **numbers} for r, a, s in q])
carried = pd.DataFrame([{"regime": r, "arm": a, "seed": s, "complete": (r, a, s) != ("long", "grpo_sparse", 3),
                         "run_name": names[(r, a, s)], **numbers, "after_test": 0.25} for r, a, s in q])
table = collect.with_carried(here, carried)
h1 = {"contrast": "H1", "regime": "weak", "a": "tgrpo", "b": "grpo_sparse", "complete": True, "diff": -0.085,
      "ci_low": -0.16875, "ci_high": 0.00125, "p": 0.0244, "rate_a": 0.515, "rate_b": 0.6, "runs_a": 8, "runs_b": 8,
      "n_states": 100, "test": "exact permutation over runs (two-sided)"}
cell = {"regime": "weak", "arm": "tgrpo", "complete": True, "before": 0.46, "after": 0.515, "change": 0.055,
        "ci_low": -0.04, "ci_high": 0.15, "p": 0.27, "runs": 8, "n_states": 100, "run_change_sd": 0.06, "p_holm": 1.0}
earlier = {"contrasts": {"H1": h1, "S1": {"contrast": "S1", "complete": False}}, "cells": {("weak", "tgrpo"): cell}}
found, cells = collect.contrasts(table, earlier), collect.before_after(table, earlier)
print(json.dumps({"rows": table[["regime", "arm", "seed", "complete", "records", "after_test"]].to_dict("records"),
                  "contrasts": found, "cells": cells, "markdown": collect.markdown(table, found, cells)}, default=float))
"""


def test_runs_lost_with_a_machine_are_carried_by_finished_block_and_reruns_take_precedence(study_code):
    got = collect_with(study_code, {"suite": "libero_spatial", "task_id": 1, "demos": 175}, CARRY_SCRIPT)
    rows = {(r["regime"], r["arm"], r["seed"]): r for r in got["rows"]}
    assert rows[("long", "tgrpo", 0)]["records"] == "here" and rows[("long", "tgrpo", 0)]["after_test"] == 0.0
    assert not rows[("long", "grpo_sparse", 3)]["complete"]  # finished nowhere
    assert not rows[("long", "tgrpo", 1)]["complete"]  # its block had not finished: rerun whole
    assert rows[("weak", "tgrpo", 5)]["records"] == "carried" and rows[("weak", "tgrpo", 5)]["after_test"] == 0.25
    c = {x["contrast"]: x for x in got["contrasts"]}
    assert c["H1"]["carried"] and c["H1"]["p"] == 0.0244  # every run carried: the test as computed then
    assert not c["S1"]["complete"] and not c["S2"]["complete"]  # incomplete then / not in the earlier results
    assert not c["S3"]["complete"] and "p_holm" not in c["S2"]
    cells = {(x["regime"], x["arm"]): x for x in got["cells"]}
    assert cells[("weak", "tgrpo")]["carried"] and "p_holm" not in cells[("weak", "tgrpo")]  # family incomplete
    assert not cells[("long", "tgrpo")]["complete"]
    # the rate's interval over 100 distinct states, as rate_over_runs gives it from the flags (RESULTS.md)
    assert "| H1 † | weak | TGRPO | GRPO-sparse | 51.5 % [41.8, 61.1] (n=100 states, 8 runs) |" in got["markdown"]
    assert "| weak † | TGRPO | 8 | 46.0 % | 51.5 % |" in got["markdown"] and "† carried from" in got["markdown"]
