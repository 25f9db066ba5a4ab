#!/usr/bin/env bash
# Copy the quick reproduction's summaries (python -m tgrpo_lib reproduce --profile quick) from the
# outputs folder into experiments/quick/: step times, Table I / II, Fig. 3 / 5, the sweeps and the
# robustness table. Run from the repository root; copies what exists, says what does not.
set -u
out="${TGRPO_OUTPUTS:-outputs}"
dest=experiments/quick
mkdir -p "$dest"
copy() {  # copy SRC DEST-NAME
    if [ -f "$1" ]; then cp "$1" "$dest/$2"; else echo "[collect] missing: $1"; fi
}
copy "$out/reproduce/quick/reproduce.json" reproduce.json
# Table I / II / Fig. 3 / 5 on the held-out states too (notebook 05 tables one init set), same runs
.venv/bin/python - "$out" <<'PY'
import sys
from tgrpo_lib.analysis import curves, report, runs_table
runs = runs_table.load_runs(sys.argv[1])
runs = runs[(runs.final_eval_episodes == 50) & (runs.seed == 0) & (runs.suite == "libero_object")]
report.write_results("quick_heldout", runs, out_dir="experiments/quick/heldout", init_set="heldout", group_size=4)
# the sweeps' before/after, paired, per value (what notebooks 03 / 04 show, here for both sweeps at once)
tg = runs[runs.algo == "tgrpo"]
lines = ["# The quick profile's sweeps, SFT start vs trained (seed 0, libero_object task 0)", ""]
for axis, fixed in (("alpha1", ("group_size", 4)), ("group_size", ("alpha1", 0.3))):
    sel = runs_table.distinct_runs(tg[tg[fixed[0]] == fixed[1]])
    table = curves.sweep_before_after(sel, axis)
    lines += [f"## {axis} ({fixed[0]} = {fixed[1]})", "", f"| {axis} | init set | SFT -> trained, paired |", "|---|---|---|"]
    lines += [f"| {r[axis]:g} | {r['init_set']} | {r['text']} |" for _, r in table.iterrows()] + [""]
open("experiments/quick/sweeps_before_after.md", "w").write("\n".join(lines))
PY
for f in table1.md table1.csv table2.md table2.csv fig3.png fig5.png fig5.md results.json provenance.json; do
    copy "$out/results/quick/$f" "$f"
done
for step in 03_alpha_sweep 04_group_size_sweep; do
    copy "$out/reproduce/quick/$step/metrics.json" "${step}_metrics.json"
    copy "$out/reproduce/quick/$step/sweep.csv" "${step}_sweep.csv"
done
copy "$out/reproduce/quick/03_alpha_sweep/fig5_alpha1.png" fig5_alpha1.png
copy "$out/reproduce/quick/04_group_size_sweep/fig5_group_size.png" fig5_group_size.png
for f in metrics.json robustness.csv robustness.png; do
    copy "$out/reproduce/quick/06_robustness/$f" "robustness_$f"
done
copy "$out/reproduce/quick/02_training_run/metrics.json" 02_training_run_metrics.json
ls -la "$dest"
