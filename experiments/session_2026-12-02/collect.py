"""Collect this session's SFT screens and TGRPO pilots into experiments/session_2026-12-02/."""
import glob, json
from pathlib import Path
import pandas as pd
from tgrpo_lib.analysis.stats import success_summary, paired_change
from tgrpo_lib.infra.runs import read_episodes

out = Path("experiments/session_2026-12-02")
sft = {}
for run in sorted(glob.glob("outputs/sft/*")):
    cfg = json.load(open(f"{run}/config.json"))
    evals = {}
    for f in glob.glob(f"{run}/checkpoints/evals/*.json"):
        d = json.load(open(f)); flags = [bool(v["success"]) for v in d["episodes"].values()]
        evals[Path(f).name.split("_")[0]] = success_summary(flags)
    losses = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    sft[Path(run).name] = {"demos_root": cfg.get("demos_root"), "max_demos": cfg.get("max_demos_per_task"),
                           "epochs": cfg["epochs"], "policy": {k: cfg["policy"][k] for k in ("feature_grid", "use_wrist", "wrist_image_size", "image_size")},
                           "final_train_loss": losses[-1]["losses/train"], "final_val_loss": losses[-1].get("losses/val"),
                           "epochs_logged": len(losses), "greedy": evals}
rl = {}
for run in sorted(glob.glob("outputs/train/*")):
    if not Path(run, "metrics.json").exists():
        continue
    cfg = json.load(open(f"{run}/config.json"))
    row = {"init_checkpoint": cfg["init_checkpoint"], "seed": cfg["seed"], "temperature": cfg["temperature"],
           "iterations": cfg["iterations"], "lr": cfg["lr"]}
    for which in ("standard", "heldout"):
        b, a = read_episodes(run, "before", which), read_episodes(run, "after", which)
        m = b.merge(a, on="state_key", suffixes=("_before", "_after"))
        row[which] = {"before": success_summary(b.success.astype(bool)), "after": success_summary(a.success.astype(bool)),
                      "change": paired_change(m.success_before.astype(bool).tolist(), m.success_after.astype(bool).tolist())}
    rl[Path(run).name] = row
(out / "results.json").write_text(json.dumps({"sft_greedy_on_50_standard_states": sft, "tgrpo_pilots": rl}, indent=2))
print(json.dumps({k: {s: v["greedy"].get(s, {}).get("rate") for s in ("standard", "heldout")} for k, v in sft.items()}))
print(json.dumps({k: {s: (v[s]["before"]["rate"], v[s]["after"]["rate"], v[s]["change"]["p_value"]) for s in ("standard",)} for k, v in rl.items()}))
