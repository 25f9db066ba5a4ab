"""benchmarks/gpu_smoke.py without a GPU: its flags and its one-line refusal, the plan it reports beside the
measured peak, and a CPU dry run of the whole script (LIBERO rollouts, TGRPO updates, an evaluation
episode) on a tiny random OpenVLA built the way ``--random-weights`` builds OpenVLA-7B."""
import importlib.util
import io
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flags_and_the_missing_gpu_stop_in_one_line(smoke, capsys, monkeypatch):
    import torch

    with pytest.raises(SystemExit) as exc:
        smoke.main([])  # neither --model nor --random-weights
    assert exc.value.code == 2 and "--random-weights" in capsys.readouterr().err.splitlines()[-1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        smoke.main(["--random-weights"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == ["gpu_smoke needs a CUDA GPU (none visible to torch)."]


def test_the_reported_plan_is_the_7b_preset_plan(smoke, tmp_path):
    from tgrpo_lib.paper_scale import plan
    from tgrpo_lib.paper_scale.presets import openvla_config
    from tgrpo_lib.policy.testing import build_openvla_dir

    cfg = openvla_config(build_openvla_dir(tmp_path, size="7b"), "goal", env={"max_steps": 60}, skip_groups="none")
    preset = plan.report(plan.build_architecture("openvla-7b", None, True), plan.knobs_for(cfg), out=io.StringIO())
    assert smoke.predicted_peak_gb(cfg) == pytest.approx(preset["peak_gb"], abs=0.01)
    assert 10 < preset["peak_gb"] < 80  # bf16 weights (~14 GB) plus one checkpointed pass


@pytest.mark.sim
@pytest.mark.slow
def test_cpu_dry_run_of_the_random_weights_path(smoke, capsys):
    out = smoke.main(["--random-weights", "--size", "tiny", "--device", "cpu", "--max-steps", "3",
                      "--group-size", "2", "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["iterations"] == out["iterations"]
    assert len(out["iterations"]) == 2 and out["peak_gb"] is None and out["random_weights"]
    for it in out["iterations"]:  # every group was updated (skip_groups="none"), and pi_old was the update's own
        assert it["steps"] == 3 and it["update_s"] > 0 and abs(it["ratio_mean"] - 1) < 0.05
    assert out["act_ms_batch2"] > 0 and out["eval_length"] == 3
