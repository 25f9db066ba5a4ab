import sys, json
import tgrpo_lib  # noqa
from tgrpo_lib.analysis.stats import success_summary
from tgrpo_lib.policy import load_policy
from tgrpo_lib.training.evaluation import evaluate
ckpt = sys.argv[1]
p = load_policy(ckpt); p.set_mode("rl")
t = evaluate(p, "libero_object", 0, 50, init_states="heldout", checkpoint=ckpt, progress=True)
print("HELDOUT", json.dumps(success_summary(t.success.astype(bool))))
