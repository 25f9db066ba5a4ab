#!/usr/bin/env bash
# The default recipe (SFT recipe + TGRPO defaults, seed 0) on one task of each other suite, one after
# the other (2 cores). Each line is `make run`'s command for that task, with 20 held-out states
# instead of 50 to fit a session. Results: outputs/quick/<run>/results.json; logs: outputs/logs/.
set -u
export OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl
[ $# -gt 0 ] || set -- "libero_spatial 0" "libero_goal 1" "libero_10 5"   # or: run.sh "libero_goal 1" ...
for spec in "$@"; do
  read -r suite task <<< "$spec"
  echo "[suites] $(date +%T) start $suite $task"
  .venv/bin/python -m tgrpo_lib.main --suite "$suite" --task "$task" --heldout-episodes 20 \
      > "outputs/logs/suite_${suite}_${task}.log" 2>&1
  tr "\r" "\n" < "outputs/logs/suite_${suite}_${task}.log" | grep "^\[quick\]\|^|" | tail -8
  echo "[suites] $(date +%T) end $suite $task"
done
