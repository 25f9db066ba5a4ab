import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, evaluate, heldout_init_states, init_states_for, standard_init_states


@pytest.mark.sim
def test_evaluate_returns_a_per_episode_table_and_videos(tmp_path):
    rng = np.random.default_rng(0)
    df = evaluate(lambda obs: rng.uniform(-1, 1, (len(obs["proprio"]), 7)), "object", [0], episodes_per_task=3,
                  cfg=EnvConfig(max_steps=6), video_dir=tmp_path, video_episodes=[1], progress=False)
    assert list(df["episode"]) == [0, 1, 2]
    assert (df["length"] == 6).all() and (~df["success"]).all()
    assert set(df.columns) >= {"suite", "task_id", "init_set", "episode", "success", "length", "video"}
    video = df.loc[df.episode == 1, "video"].item()
    assert video.endswith(".mp4") and (tmp_path / video.split("/")[-1]).stat().st_size > 1000


@pytest.mark.sim
def test_heldout_states_are_new_valid_layouts_and_cached(tmp_path):
    held = heldout_init_states("object", 0, n=2, cache_dir=tmp_path)
    std = standard_init_states("object", 0)
    assert held.shape == (2, std.shape[1])
    assert not np.allclose(held[0], held[1])
    assert min(np.abs(std - h).max() for h in held) > 1e-3  # not one of the 50 standard states
    assert np.array_equal(heldout_init_states("object", 0, n=2, cache_dir=tmp_path), held)  # from the cache
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    # drawn on a reused model (fast), they equal what a model rebuild per state would draw
    from tgrpo_lib.envs.core import make_env
    from tgrpo_lib.envs.evaluation import HELDOUT_SEED_BASE

    env = make_env("object", 0, EnvConfig(cameras=(), hard_reset=True))
    try:
        for k in range(2):
            np.random.seed(HELDOUT_SEED_BASE + k)
            env._env.reset()
            assert np.array_equal(env.get_sim_state(), held[k])
    finally:
        env.close()


def test_unknown_init_state_set():
    with pytest.raises(ValueError, match="standard"):
        init_states_for("object", 0, "training")


class _ScriptedEngine:
    """Stands in for GroupEngine: episode i succeeds after ``succeed_at[i]`` steps (0 = never);
    observations carry the episode index so the test can see which slot runs what. ``workers``
    splits the slots as GroupEngine does (pipelined stepping, one worker at a time)."""

    def __init__(self, n, succeed_at, max_steps, workers=1):
        self.n, self.succeed_at, self.max_steps = n, succeed_at, max_steps
        self.worker_slots = [list(p) for p in np.array_split(np.arange(n), workers)]
        self.ep = [-1] * n
        self.t = [0] * n
        self.resets = []
        self.pending = {}

    def _obs(self, indices=None):
        indices = list(range(self.n)) if indices is None else list(indices)
        return {"proprio": np.array([self.ep[i] for i in indices], float)[:, None], "env": np.array(indices)}

    def reset(self, states):
        self.ep = [int(s[0]) for s in states]
        self.t = [0] * self.n
        self.resets.append(list(range(self.n)))
        return self._obs()

    def reset_some(self, indices, states):
        for k, s in zip(indices, states):
            self.ep[k], self.t[k] = int(s[0]), 0
        self.resets.append(list(indices))
        return self._obs()

    def last_obs(self, indices=None):
        return self._obs(indices)

    def step_send(self, w, actions):
        assert w not in self.pending and set(actions) <= set(self.worker_slots[w])
        self.pending[w] = list(actions)

    def step_recv(self, w):
        done = {}
        for k in self.pending.pop(w):
            self.t[k] += 1
            done[k] = self.succeed_at[self.ep[k]] == self.t[k]
        return done

    def drain(self):
        self.pending.clear()


def test_run_episodes_refills_a_slot_as_soon_as_its_episode_ends():
    from tgrpo_lib.envs.evaluation import run_episodes

    succeed_at = [3, 0, 2, 5, 0]  # 0: never, runs the 6-step budget
    states = np.arange(5, dtype=float)[:, None]
    seen = []

    def policy(obs):
        seen.append(obs["proprio"][:, 0].astype(int).tolist())
        return {"actions": np.zeros((len(obs["proprio"]), 7))}

    eng = _ScriptedEngine(2, succeed_at, max_steps=6)
    res = run_episodes(eng, policy, states, progress=False)
    assert [r["episode"] for r in res] == [0, 1, 2, 3, 4]
    assert [r["success"] for r in res] == [True, False, True, True, False]
    assert [r["length"] for r in res] == [3, 6, 2, 5, 6]
    # slot 0: ep 0 (3 steps) -> ep 2 (2 steps) -> ep 3 (5 steps); slot 1: ep 1 (6) -> ep 4 (6)
    assert eng.resets == [[0, 1], [0], [0], [1]]
    assert seen[3] == [2, 1] and seen[5] == [3, 1] and seen[6] == [3, 4]
    assert len(seen) == 12  # slot 1 runs 6 + 6 steps ...
    assert seen[10:] == [[4], [4]]  # ... and the idle slot 0 is left out of the last 2 calls


def test_run_episodes_pipelines_one_worker_at_a_time():
    from tgrpo_lib.envs.evaluation import run_episodes

    eng = _ScriptedEngine(4, [2, 0, 0, 1, 0], max_steps=3, workers=2)
    batches = []

    def policy(obs):
        w = next(w for w, p in enumerate(eng.worker_slots) if obs["env"][0] in p)
        assert w not in eng.pending  # the batch's own worker is idle ...
        batches.append((obs["env"].tolist(), sorted(eng.pending)))
        return {"actions": np.zeros((len(obs["env"]), 7))}

    res = run_episodes(eng, policy, np.arange(5, dtype=float)[:, None], progress=False)
    assert [(r["success"], r["length"]) for r in res] == [(True, 2), (False, 3), (False, 3), (True, 1), (False, 3)]
    assert all(set(b) <= {0, 1} or set(b) <= {2, 3} for b, _ in batches)  # never mixes workers
    assert batches[:3] == [([0, 1], []), ([2, 3], [0]), ([0, 1], [1])]  # ... while the other one steps
    assert sum(1 for _, busy in batches if busy) >= len(batches) - 2


def test_run_episodes_results_do_not_depend_on_slots_or_workers():
    from tgrpo_lib.envs.evaluation import run_episodes

    succeed_at = [4, 0, 1, 7, 2, 0, 3]
    states = np.arange(7, dtype=float)[:, None]
    out = []
    for n, workers in ((1, 1), (3, 1), (3, 2), (7, 2), (7, 3)):
        eng = _ScriptedEngine(n, succeed_at, max_steps=7, workers=workers)
        res = run_episodes(eng, lambda o: {"actions": np.zeros((len(o["env"]), 7))}, states, progress=False)
        out.append([(r["success"], r["length"]) for r in res])
    assert all(o == out[0] for o in out)
    assert out[0] == [(True, 4), (False, 7), (True, 1), (True, 7), (True, 2), (False, 7), (True, 3)]


def test_run_episodes_leaves_no_step_in_flight_when_the_policy_fails():
    from tgrpo_lib.envs.evaluation import run_episodes

    eng = _ScriptedEngine(4, [0] * 4, max_steps=5, workers=2)
    calls = []

    def policy(obs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("boom")
        return {"actions": np.zeros((len(obs["env"]), 7))}

    with pytest.raises(KeyError, match="boom"):
        run_episodes(eng, policy, np.zeros((4, 1)), progress=False)
    assert eng.pending == {}
