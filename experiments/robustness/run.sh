#!/usr/bin/env bash
# The README's robustness result: notebook 06 on make run's TGRPO run (libero_object task 0, seed 0):
# its SFT start checkpoint vs its trained policy on the standard and held-out states and three
# LIBERO-PRO perturbations, 50 states each. Usage: run.sh RUN_NAME  (a run under outputs/train/).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl
run=${1:?pass the TGRPO run name (outputs/train/<name>)}
out=outputs/notebooks/06_robustness_makerun
mkdir -p outputs/notebooks
.venv/bin/papermill notebooks/06_robustness.ipynb "$out.ipynb" --cwd notebooks -k python3 \
    -p run_name "$run" -p output_dir notebooks/06_robustness_makerun \
    -y '{"variants": ["lan", "object", "swap"], "episodes": 50}'
cp "$out/robustness.csv" "$out/robustness.png" "$out/metrics.json" experiments/robustness/
