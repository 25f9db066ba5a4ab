"""The evaluation protocol without the simulator: per-episode tables, the episode cache keyed by
checkpoint, env config and init state, videos, and the before/after protocol of a run."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tgrpo_lib.envs import EnvConfig
from tgrpo_lib.infra import runs
from tgrpo_lib.training import evaluation

STATES = {"standard": np.arange(8, dtype=float)[:, None].repeat(3, 1),
          "heldout": 100 + np.arange(8, dtype=float)[:, None].repeat(3, 1)}


@pytest.fixture
def sim(monkeypatch):
    """A scripted engine: episode of state s succeeds when s[0] is even and lasts 10 + s[0] steps."""
    calls = []

    def run_episodes(engine, fn, states, record=(), progress=True, desc="", on_episode=None):
        calls.append(states[:, 0].tolist())
        out = []
        for i, s in enumerate(states):
            r = {"episode": i, "success": int(s[0]) % 2 == 0, "length": 10 + int(s[0])}
            if i in set(record):
                r["frames"] = np.zeros((3, 8, 8, 3), np.uint8)
            if on_episode is not None:
                on_episode(r)
            out.append(r)
        return out

    videos = []
    monkeypatch.setattr(evaluation, "run_episodes", run_episodes)
    monkeypatch.setattr(evaluation, "init_states_for", lambda suite, task, which, n=None: STATES[which][:n])

    def write_video(path, frames):
        videos.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"mp4")
        return path

    monkeypatch.setattr(evaluation, "write_video", write_video)
    engine = SimpleNamespace(task=SimpleNamespace(suite="libero_object", task_id=0, instruction="x"), cfg=EnvConfig())
    return SimpleNamespace(engine=engine, calls=calls, videos=videos)


def policy(obs):  # a plain obs -> actions callable is a valid policy
    return np.zeros((len(obs["proprio"]), 7))


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "sft" / "checkpoints" / "policy"
    path.mkdir(parents=True)
    (path / "weights.bin").write_bytes(b"\x00\x01")
    return path


def test_set_result_is_a_per_episode_table_with_an_interval(sim):
    res = evaluation.evaluate_set(policy, sim.engine, "standard", 4)
    assert list(res.episodes.columns) == list(evaluation.EPISODE_COLUMNS)
    assert res.episodes["success"].tolist() == [True, False, True, False]
    assert res.episodes["state_key"].tolist() == [evaluation.state_key(s) for s in STATES["standard"][:4]]
    s = res.summary
    assert (s["n"], s["successes"], s["rate"], s["mean_length"]) == (4, 2, 0.5, 11.5)
    assert s["ci_low"] < 0.5 < s["ci_high"]
    with pytest.raises(ValueError, match="init_set='train'"):
        evaluation.evaluate_set(policy, sim.engine, "train", 4)


def test_greedy_episodes_of_a_checkpoint_are_cached_per_init_state(sim, ckpt, tmp_path):
    first = evaluation.evaluate_set(policy, sim.engine, "standard", 4, checkpoint=ckpt, video_path=tmp_path / "a.mp4")
    assert sim.calls == [[0, 1, 2, 3]] and first.cached == 0 and (tmp_path / "a.mp4").is_file()
    again = evaluation.evaluate_set(policy, sim.engine, "standard", 2, checkpoint=ckpt, video_path=tmp_path / "b.mp4")
    assert len(sim.calls) == 1 and again.cached == 2  # a subset: all cached
    assert (tmp_path / "b.mp4").read_bytes() == b"mp4"  # the cached episode's video, copied under the new name
    more = evaluation.evaluate_set(policy, sim.engine, "standard", 6, checkpoint=ckpt)
    assert sim.calls[1] == [4, 5] and more.episodes["length"].tolist() == [10, 11, 12, 13, 14, 15]
    assert len(list((ckpt.parent / "evals").glob("standard_*.json"))) == 1
    evaluation.evaluate_set(policy, sim.engine, "heldout", 1, checkpoint=ckpt)  # another set: its own file
    other_env = SimpleNamespace(task=sim.engine.task, cfg=EnvConfig(max_steps=9))
    evaluation.evaluate_set(policy, other_env, "standard", 1, checkpoint=ckpt)  # another env config
    (ckpt / "weights.bin").write_bytes(b"\x00\x02")  # other weights
    evaluation.evaluate_set(policy, sim.engine, "standard", 1, checkpoint=ckpt)
    assert len(sim.calls) == 5
    evaluation.evaluate_set(policy, sim.engine, "standard", 1)  # no checkpoint: never cached
    evaluation.evaluate_set(policy, sim.engine, "standard", 1, checkpoint=ckpt, greedy=False)  # sampled: never cached
    assert len(sim.calls) == 7


def test_protocol_writes_summary_tables_and_videos(sim, ckpt, tmp_path):
    run_dir = tmp_path / "run"
    proto = evaluation.Protocol(sim.engine, run_dir, {"standard": 4, "heldout": 2}, checkpoint=ckpt)
    summary = proto.run(policy, "before", {})
    assert summary["before_standard"] == 0.5 and summary["before_standard_episodes"] == 4
    assert summary["before_heldout"] == 0.5 and len(summary["before_heldout_ci"]) == 2
    assert (run_dir / "videos" / "before_standard.mp4").is_file()
    table = runs.read_episodes(run_dir, "before", "standard")
    assert table["success"].tolist() == [True, False, True, False]
    n_calls = len(sim.calls)
    assert proto.run(policy, "before", summary) is summary and len(sim.calls) == n_calls  # done sets are skipped
    proto.run(policy, "after", summary)  # the trained policy: never read from the start checkpoint's cache
    assert len(sim.calls) == n_calls + 2
    assert isinstance(runs.read_episodes(run_dir, "after", "heldout"), pd.DataFrame)


@pytest.mark.sim
def test_evaluate_returns_a_per_episode_table_and_videos(tmp_path):
    rng = np.random.default_rng(0)
    df = evaluation.evaluate(lambda obs: rng.uniform(-1, 1, (len(obs["proprio"]), 7)), "object", [0],
                             episodes_per_task=3, cfg=EnvConfig(max_steps=6), video_dir=tmp_path, progress=False)
    assert list(df["episode"]) == [0, 1, 2]
    assert (df["length"] == 6).all() and (~df["success"]).all()
    assert set(df.columns) >= {"suite", "task_id", "init_set", "episode", "state_key", "success", "length", "video"}
    video = df.loc[df.episode == 0, "video"].item()
    assert video.endswith(".mp4") and (tmp_path / video.split("/")[-1]).stat().st_size > 1000


def test_the_episode_cache_keeps_tasks_apart(sim, ckpt):
    """A perturbation suite can share its base task's init states: its episodes are its own."""
    evaluation.evaluate_set(policy, sim.engine, "standard", 2, checkpoint=ckpt)
    lan = SimpleNamespace(task=SimpleNamespace(suite="libero_object_lan", task_id=0, instruction="y"), cfg=EnvConfig())
    res = evaluation.evaluate_set(policy, lan, "standard", 2, checkpoint=ckpt)
    assert res.cached == 0 and len(sim.calls) == 2
    assert evaluation.evaluate_set(policy, lan, "standard", 2, checkpoint=ckpt).cached == 2


def test_robustness_conditions_name_the_sets_and_the_shipped_perturbations():
    conditions = evaluation.robustness_conditions("object", 0)
    names = [c[0] for c in conditions]
    assert names[:2] == ["standard", "heldout"] and {"lan", "object", "swap", "task"} <= set(names)
    assert all(task.suite == f"libero_object_{name}" and init_set == "standard" for name, task, init_set in conditions[2:])
    assert [c[0] for c in evaluation.robustness_conditions("object", 0, ["lan", "libero_object_swap"])] == \
        ["standard", "heldout", "lan", "swap"]
    with pytest.raises(ValueError, match="libero_object_shiny: not shipped for libero_object; pass names from lan"):
        evaluation.robustness_conditions("object", 0, ["shiny"])


def test_evaluate_robustness_pairs_each_policy_on_the_same_states_per_condition(sim, ckpt, tmp_path, monkeypatch):
    import tgrpo_lib.policy

    class Engine:
        def __init__(self, suite, task_id, n, cfg):
            self.task, self.cfg = evaluation.get_task(suite, task_id), cfg

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    other = tmp_path / "rl" / "checkpoints" / "policy"
    other.mkdir(parents=True)
    (other / "weights.bin").write_bytes(b"\x07")
    monkeypatch.setattr(evaluation, "GroupEngine", Engine)
    monkeypatch.setattr(tgrpo_lib.policy, "load_policy", lambda path: policy)
    df = evaluation.evaluate_robustness({"SFT": ckpt, "TGRPO": other}, "object", 0, ["lan", "swap"], episodes=3,
                                        progress=False)
    assert list(df.columns) == list(evaluation.ROBUSTNESS_COLUMNS)
    assert df.groupby(["condition", "policy"]).size().to_dict() == {
        (c, p): 3 for c in ("standard", "heldout", "lan", "swap") for p in ("SFT", "TGRPO")}
    lan = df[df["condition"] == "lan"]
    assert set(lan["suite"]) == {"libero_object_lan"} and set(lan["instruction"]) == {"grab alphabet soup and put it into basket"}
    per_policy = [g["state_key"].tolist() for _, g in lan.groupby("policy")]
    assert per_policy[0] == per_policy[1]
    n_calls = len(sim.calls)
    evaluation.evaluate_robustness({"SFT": ckpt, "TGRPO": other}, "object", 0, ["lan", "swap"], episodes=3,
                                   progress=False)
    assert len(sim.calls) == n_calls  # every episode came from the checkpoints' caches
    with pytest.raises(ValueError, match="checkpoints is empty"):
        evaluation.evaluate_robustness({}, "object", 0)


@pytest.mark.sim
def test_evaluate_runs_a_perturbation_suite(tmp_path):
    rng = np.random.default_rng(0)
    df = evaluation.evaluate(lambda obs: rng.uniform(-1, 1, (len(obs["proprio"]), 7)), "libero_object_lan", 0,
                             episodes_per_task=2, cfg=EnvConfig(max_steps=3), progress=False)
    assert df["suite"].tolist() == ["libero_object_lan"] * 2 and df["length"].tolist() == [3, 3]
