"""TGRPO pilot: python experiments/session_2026-12-02/rl_pilot.py CKPT SEED key=json ... (config_for fields)."""
import json, sys, time
import tgrpo_lib  # noqa
from tgrpo_lib.analysis.tables import run_comparison
from tgrpo_lib.infra.config import config_for
from tgrpo_lib.training.train import train

ckpt, seed = sys.argv[1], int(sys.argv[2])
kw = {}
for a in sys.argv[3:]:
    k, v = a.split("=", 1)
    kw[k] = json.loads(v)
cfg = config_for(init_checkpoint=ckpt, seed=seed, final_eval_episodes=50, eval_interval=0, video_episodes=0, **kw)
t0 = time.time()
res = train(cfg)
comp = run_comparison(res.run_dir)
out = {k: {"before": c["before"]["rate"], "after": c["after"]["rate"], "b": c["b"], "c": c["c"], "p": c["p_value"]}
       for k, c in comp.items()}
print("RESULT", json.dumps({"run": str(res.run_dir), "cfg": kw, "seed": seed, "wall": time.time() - t0, **out}))
