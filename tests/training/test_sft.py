"""SFT on hand-made demonstrations: the layout check, training that lowers the loss, resume."""
import dataclasses
import os

import numpy as np
import pytest

import tgrpo_lib  # noqa: F401  (HF_HUB_OFFLINE etc. before transformers loads)
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import SFT_RECIPE, SFTConfig, sft_default
from tgrpo_lib.infra.demos import Demo
from tgrpo_lib.policy import PolicyConfig
from tgrpo_lib.training.sft import check_demo_layouts, train_sft

INSTR = "pick up the alphabet soup and place it in the basket"


def _demo(init_index: int, steps: int = 12, seed: int = 0) -> Demo:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
    actions = np.concatenate([np.tile([0.5, -0.2, 0.1, 0.0, 0.0, 0.0], (steps, 1)) * (1 - t),
                              np.where(t > 0.5, 1.0, -1.0)], axis=1).astype(np.float32)
    return Demo(instruction=INSTR, actions=actions, proprio=rng.normal(size=(steps, 8)).astype(np.float32),
                agentview=rng.integers(0, 256, (steps, 32, 32, 3), dtype=np.uint8), suite="libero_object",
                task_id=0, init_index=init_index, seed=seed)


def test_demo_layout_follows_the_init_state():
    assert _demo(3).layout == "standard" and _demo(-1).layout == "sampled"
    assert Demo(instruction=INSTR, actions=np.zeros((1, 7)), proprio=np.zeros((1, 8)), source="libero").layout == "libero"


def test_demos_of_another_layout_are_refused_with_the_fix():
    cfg = SFTConfig(demo_layouts="sampled")
    with pytest.raises(ValueError, match=r"2 of 3 demonstrations were recorded on standard layouts.*--init-states sampled"):
        check_demo_layouts([_demo(0), _demo(1), _demo(-1)], cfg)
    check_demo_layouts([_demo(-1)], cfg)  # the right kind passes
    check_demo_layouts([_demo(0), _demo(-1)], SFTConfig(demo_layouts="any"))
    with pytest.raises(ValueError, match="demo_layouts='anything'"):
        SFTConfig(demo_layouts="anything")


def test_sft_default_takes_the_recipe_unless_told():
    cfg = sft_default("object", 2)
    assert (cfg.max_demos_per_task, cfg.epochs) == (SFT_RECIPE["max_demos_per_task"], SFT_RECIPE["epochs"])
    assert cfg.demo_layouts == "sampled" and cfg.task_ids == (2,) and cfg.eval_episodes == 0
    assert (sft_default("object", 2, demos=7, epochs=3).max_demos_per_task, sft_default("object", 2, epochs=3).epochs) == (7, 3)


def test_train_sft_lowers_the_loss_saves_and_resumes(tmp_path):
    policy = PolicyConfig(use_wrist=False, image_size=32, pretrained_image_encoder=False, d_model=32, n_layers=1,
                          n_heads=2, image_encoder_dtype="float32")
    cfg = SFTConfig(epochs=8, batch_size=16, lr=3e-3, eval_episodes=0, val_fraction=0.25, policy=policy,
                    run_name="unit")
    demos = [_demo(-1, seed=s) for s in range(4)]
    result = train_sft(cfg, demos=demos, root=tmp_path, progress=False)
    run_dir, summary = result.run_dir, result.summary
    losses = result.metrics["losses/train"].tolist()
    assert losses == [row["losses/train"] for row in runs.read_metrics(run_dir).to_dict("records")]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    assert summary["demos"] == 4 and summary["frames"] == 48 and summary["final_val_loss"] is not None
    assert (run_dir / "checkpoints" / "policy" / "tiny_vla.safetensors").is_file()
    again = train_sft(cfg, demos=demos, root=tmp_path, progress=False)  # complete: read back, not trained again
    assert again.run_dir == run_dir and again.summary["train_seconds"] == summary["train_seconds"]
    assert again.metrics["losses/train"].tolist() == losses
    with pytest.raises(ValueError, match="recorded on standard layouts"):
        train_sft(dataclasses.replace(cfg, run_name="other"), demos=[_demo(0)], root=tmp_path, progress=False)


def test_a_run_held_by_another_process_is_refused_before_any_work(tmp_path):
    cfg = SFTConfig(epochs=1, eval_episodes=0, run_name="held")
    run_dir = runs.create_run_dir("sft", "held", cfg, root=tmp_path, resume=True)
    with runs.run_lock(run_dir):
        with pytest.raises(runs.RunLocked, match=f"in use by pid {os.getpid()} on host"):
            train_sft(cfg, demos=[], root=tmp_path, progress=False)  # no demos: it would fail if it got that far
