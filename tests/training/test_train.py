"""Trainer smoke tests on a real LIBERO task: parameters move, losses are finite, every variant
runs through the same code, and a killed run resumes to the same result."""
import json

import numpy as np
import pytest
import torch

from tgrpo_lib.infra import runs
from tgrpo_lib.training.train import config_for, train

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def _cfg(name, **kw):
    # 8-step episodes of a fresh policy: every group fails, so the default skip of uniform groups
    # would leave nothing to update; these tests check the update itself
    base = dict(iterations=2, eval_interval=0, final_eval_episodes=1, group_size=2, epochs=2, video_episodes=0,
                env={"max_steps": 8}, policy={"use_wrist": False}, run_name=name, skip_groups="none")
    base.update(kw)
    return config_for(**base)


def _lora(run_dir):
    ckpt = runs.load_checkpoint(runs.latest_checkpoint(run_dir))
    return ckpt["trainable"]


def test_tgrpo_smoke_changes_lora_and_logs_finite_losses(tmp_path):
    res = train(_cfg("smoke"), root=tmp_path, progress=False)
    m = res.metrics[res.metrics.step >= 0].dropna(subset=["losses/loss"])
    assert len(m) == 2
    for key in ("losses/loss", "losses/kl_mean", "losses/clip_fraction", "losses/grad_norm", "charts/return_mean"):
        assert np.isfinite(m[key]).all(), key
    assert (m["losses/grad_norm"] > 0).all()
    lora = _lora(res.run_dir)
    assert any(float(p.abs().max()) > 0 for p in lora)  # LoRA B starts at 0: a step moved it
    assert (res.run_dir / "config.json").exists() and (res.run_dir / "versions.json").exists()
    assert json.loads((res.run_dir / "metrics.json").read_text())["iterations"] == 2
    assert {"before_standard", "after_standard", "before_heldout", "after_heldout", "before_test",
            "after_test"} <= set(res.summary)
    assert res.summary["after_test_episodes"] == 1  # as many as final_eval_episodes: the test layouts by default
    assert (res.run_dir / "eval" / "after_heldout.csv").is_file()  # per-episode tables for paired tests
    assert len(list((res.run_dir / "groups").glob("iter_*.npz"))) == 2
    opt = runs.load_checkpoint(runs.latest_checkpoint(res.run_dir))["optimizer"]
    # iterations x epochs x minibatches AdamW steps (the default 4 minibatches; only 8 steps, so
    # each minibatch holds 2 time steps)
    assert {int(v["step"]) for v in opt["state"].values()} == {2 * 2 * 4}
    # a completed run is never redone or overwritten: calling again returns the stored result
    again = train(_cfg("smoke"), root=tmp_path, progress=False)
    assert again.summary == res.summary


def test_killed_run_resumes_to_the_same_result(tmp_path):
    # minibatches=2 also exercises the shuffled-minibatch path, whose permutations come from the
    # seeded torch stream that the checkpoint restores
    full = train(_cfg("full", minibatches=2), root=tmp_path, progress=False)
    opt = runs.load_checkpoint(runs.latest_checkpoint(full.run_dir))["optimizer"]
    assert {int(v["step"]) for v in opt["state"].values()} == {2 * 2 * 2}  # iterations x epochs x minibatches

    def kill_after_first(it, metrics):
        if it == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg("killed", minibatches=2), root=tmp_path, progress=False, on_iteration=kill_after_first)
    assert not runs.is_complete(tmp_path / "train" / "killed")
    resumed = train(_cfg("killed", minibatches=2), root=tmp_path, progress=False)
    for a, b in zip(_lora(full.run_dir), _lora(resumed.run_dir)):
        assert torch.equal(a, b)
    cols = ["charts/return_mean", "losses/loss"]
    fm = full.metrics[full.metrics.step >= 0].dropna(subset=cols)[cols].to_numpy()
    rm = resumed.metrics[resumed.metrics.step >= 0].dropna(subset=cols)[cols].to_numpy()
    assert np.array_equal(fm, rm)
    # the training time counts both sittings' iterations, not only the resumed one's
    iteration_s = resumed.metrics["time/iteration"].dropna()
    assert len(iteration_s) == 2 and resumed.summary["seconds_training"] >= iteration_s.sum()


@pytest.mark.parametrize("algo", ["grpo_sparse", "dpo", "tpo"])
def test_variants_run_through_the_same_loop(tmp_path, algo):
    res = train(_cfg(algo, algo=algo, iterations=1, final_eval_episodes=1), root=tmp_path, progress=False)
    m = res.metrics[res.metrics.step == 0]
    assert np.isfinite(m["losses/loss"]).all()
    assert len(res.metrics[res.metrics.step == 0]) == 1


def test_a_starting_policy_that_reads_the_wrist_needs_the_wrist_camera(tmp_path):
    from tgrpo_lib.policy import PolicyConfig, make_policy
    from tgrpo_lib.training.train import check_init_checkpoint

    ckpt = make_policy(PolicyConfig(use_wrist=True, pretrained_image_encoder=False, d_model=16, n_layers=1,
                                    n_heads=2)).save(tmp_path / "policy")
    with pytest.raises(ValueError, match=r"reads the wrist camera: pass env=\{'cameras': \('agentview', 'wrist'\)\}"):
        check_init_checkpoint(config_for(init_checkpoint=str(ckpt), policy={"use_wrist": False},
                                         env={"cameras": ("agentview",)}))
    check_init_checkpoint(config_for(init_checkpoint=str(ckpt), env={"cameras": ("agentview", "wrist")},
                                     policy={"use_wrist": False}))  # the camera is there: accepted
    with pytest.raises(FileNotFoundError, match="is not a saved policy"):
        check_init_checkpoint(config_for(init_checkpoint=str(tmp_path), policy={"use_wrist": False}))


def _worker_pids():
    """The environment worker processes this test process has started."""
    import os

    from tgrpo_lib.envs.worker import worker_pids

    return sorted(worker_pids(os.getpid()))


def test_a_killed_worker_stops_the_run_in_one_line_and_a_cut_checkpoint_falls_back(tmp_path, capsys):
    import os
    import signal

    killed = []

    def kill_a_worker(it, metrics):
        if it == 1:  # checkpoints iter_000000 and iter_000001 are written
            killed.append(_worker_pids()[-1])
            os.kill(killed[0], signal.SIGKILL)

    cfg = _cfg("faults", iterations=3, epochs=1)
    with pytest.raises(runs.RunError) as err:
        train(cfg, root=tmp_path, progress=False, on_iteration=kill_a_worker)
    run_dir = tmp_path / "train" / "faults"
    msg = str(err.value)
    assert f"(pid {killed[0]}, env 1) died (killed by SIGKILL) during iteration 2 (init state 2 of the standard set)" in msg
    assert msg.endswith(f"rerun the same command to resume {run_dir} from iter_000001.pt") and "\n" not in msg
    assert _worker_pids() == [] and not (run_dir / "LOCK").exists()
    # a crash cut the last checkpoint and the metrics line being written
    ckpt = run_dir / "checkpoints" / "iter_000001.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "charts/ret')
    capsys.readouterr()
    res = train(cfg, root=tmp_path, progress=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert any("iter_000001.pt is corrupted" in line and "falling back to iter_000000.pt" in line for line in lines)
    assert any("1 damaged line(s)" in line for line in lines)
    assert runs.is_complete(run_dir) and (run_dir / "checkpoints" / "iter_000001.pt.corrupt").is_file()
    assert res.metrics["step"].tolist() == [-1, 0, 1, 2, 3]  # iteration 1 redone, logged once
    assert runs.load_checkpoint(runs.latest_checkpoint(run_dir))["iteration"] == 2


def test_a_run_held_by_another_process_is_refused_before_any_work(tmp_path, monkeypatch):
    import os

    cfg = _cfg("held")
    run_dir = runs.create_run_dir("train", "held", cfg, root=tmp_path, resume=True)
    monkeypatch.setattr("tgrpo_lib.training.train.Trainable", None)  # building the policy would fail
    with runs.run_lock(run_dir):
        with pytest.raises(runs.RunLocked, match=f"in use by pid {os.getpid()} on host"):
            train(cfg, root=tmp_path, progress=False)


def test_an_env_step_budget_ends_the_run_at_the_iteration_that_spends_it(tmp_path):
    # 8-step episodes that all fail: every group of 2 takes 16 env steps, so a budget of 20 is
    # spent by the second iteration of the five allowed
    res = train(_cfg("budget", iterations=5, env_step_budget=20, epochs=1), root=tmp_path, progress=False)
    assert res.summary["iterations"] == 2 and res.summary["env_steps"] == 32
    assert len(list((res.run_dir / "groups").glob("iter_*.npz"))) == 2
    assert "after_standard" in res.summary


def test_a_resumed_run_evaluates_after_on_as_many_states_as_before():
    from tgrpo_lib.training.train import final_eval_sets

    cfg = config_for(final_eval_episodes=50)
    assert final_eval_sets(cfg) == {"standard": 50, "heldout": 50, "test": 50}
    # a run whose "before" ran under the earlier rule (twice final_eval_episodes on the test layouts)
    before = {"before_standard_episodes": 50, "before_heldout_episodes": 50, "before_test_episodes": 100}
    assert final_eval_sets(cfg, before) == {"standard": 50, "heldout": 50, "test": 100}
    assert final_eval_sets(config_for(final_eval_episodes=50, test_eval_episodes=0), before) == {
        "standard": 50, "heldout": 50}  # no test set asked for: none added
