#!/usr/bin/env bash
# Runs the pre-registered study (PROTOCOL.md) from a git worktree at its commit, in the background:
#   bash experiments/dense_vs_sparse/queue.sh <commit> [--only long]
# Rerunning it continues the queue (finished runs are skipped, a cut run resumes). Outputs go to
# this checkout's outputs/ (TGRPO_OUTPUTS) so the SFT starts and episode caches are shared; the runs
# archived in results/runs/ (archive.py) are restored there first, so a new machine skips them too.
set -euo pipefail
MAIN=$(cd "$(dirname "$0")/../.." && pwd)
COMMIT=${1:?pass the pre-registered commit (git log -- experiments/dense_vs_sparse/PROTOCOL.md)}
shift
WT=$(realpath -m "${STUDY_WORKTREE:-$MAIN/../dense_vs_sparse-worktree}")
if [ ! -d "$WT" ]; then git -C "$MAIN" worktree add --detach "$WT" "$COMMIT" >/dev/null; fi
if [ "$(git -C "$WT" rev-parse HEAD)" != "$(git -C "$MAIN" rev-parse "$COMMIT^{commit}")" ]; then
  echo "$WT is not at $COMMIT: remove it (git worktree remove $WT) or pass its commit"; exit 1
fi
mkdir -p "$MAIN/outputs/dense_vs_sparse"
LOG="$MAIN/outputs/dense_vs_sparse/queue.log"
# PYTHONPATH: the worktree's tgrpo_lib, not the venv's editable install of main's
export PYTHONPATH="$WT" TGRPO_OUTPUTS="$MAIN/outputs" TGRPO_CACHE="$MAIN/.cache" MUJOCO_GL=${MUJOCO_GL:-egl}
PY="$MAIN/.venv/bin/python"
cd "$WT"
"$PY" -c "import tgrpo_lib, sys; sys.exit(0 if tgrpo_lib.__file__.startswith('$WT') else 'tgrpo_lib does not come from the worktree: ' + tgrpo_lib.__file__)"
"$PY" "$MAIN/experiments/dense_vs_sparse/archive.py" restore >> "$LOG" 2>&1
nohup "$PY" experiments/dense_vs_sparse/study.py run "$@" >> "$LOG" 2>&1 &  # qualifies the weak start when it gets there
echo "study running in the background (pid $!): tail -f $LOG"
