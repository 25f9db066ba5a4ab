"""run_episodes: continuous batching over a pipelined engine (scripted engine, no simulator)."""
import numpy as np
import pytest

from tgrpo_lib.envs import run_episodes


def test_run_episodes_refills_a_slot_as_soon_as_its_episode_ends(scripted_engine):
    succeed_at = [3, 0, 2, 5, 0]  # 0: never, runs the 6-step budget
    states = np.arange(5, dtype=float)[:, None]
    seen = []

    def policy(obs):
        seen.append(obs["proprio"][:, 0].astype(int).tolist())
        return {"actions": np.zeros((len(obs["proprio"]), 7))}

    eng = scripted_engine(2, succeed_at, max_steps=6)
    res = run_episodes(eng, policy, states, progress=False)
    assert [r["episode"] for r in res] == [0, 1, 2, 3, 4]
    assert [r["success"] for r in res] == [True, False, True, True, False]
    assert [r["length"] for r in res] == [3, 6, 2, 5, 6]
    # slot 0: ep 0 (3 steps) -> ep 2 (2 steps) -> ep 3 (5 steps); slot 1: ep 1 (6) -> ep 4 (6)
    assert eng.resets == [[0, 1], [0], [0], [1]]
    assert seen[3] == [2, 1] and seen[5] == [3, 1] and seen[6] == [3, 4]
    assert len(seen) == 12  # slot 1 runs 6 + 6 steps ...
    assert seen[10:] == [[4], [4]]  # ... and the idle slot 0 is left out of the last 2 calls


def test_run_episodes_pipelines_one_worker_at_a_time(scripted_engine):
    eng = scripted_engine(4, [2, 0, 0, 1, 0], max_steps=3, workers=2)
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


def test_run_episodes_results_do_not_depend_on_slots_or_workers(scripted_engine):
    succeed_at = [4, 0, 1, 7, 2, 0, 3]
    states = np.arange(7, dtype=float)[:, None]
    out = []
    for n, workers in ((1, 1), (3, 1), (3, 2), (7, 2), (7, 3)):
        eng = scripted_engine(n, succeed_at, max_steps=7, workers=workers)
        res = run_episodes(eng, lambda o: {"actions": np.zeros((len(o["env"]), 7))}, states, progress=False)
        out.append([(r["success"], r["length"]) for r in res])
    assert all(o == out[0] for o in out)
    assert out[0] == [(True, 4), (False, 7), (True, 1), (True, 7), (True, 2), (False, 7), (True, 3)]


def test_run_episodes_leaves_no_step_in_flight_when_the_policy_fails(scripted_engine):
    eng = scripted_engine(4, [0] * 4, max_steps=5, workers=2)
    calls = []

    def policy(obs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyError("boom")
        return {"actions": np.zeros((len(obs["env"]), 7))}

    with pytest.raises(KeyError, match="boom"):
        run_episodes(eng, policy, np.zeros((4, 1)), progress=False)
    assert eng.pending == {}


def test_on_episode_reports_each_episode_as_it_ends_and_only_those_before_an_interrupt(scripted_engine):
    succeed_at = [3, 0, 2, 5, 0]  # as above: episodes end in the order 0, 2, 1, 3, 4
    states = np.arange(5, dtype=float)[:, None]
    ended = []
    res = run_episodes(scripted_engine(2, succeed_at, max_steps=6), lambda o: {"actions": np.zeros((len(o["env"]), 7))},
                       states, progress=False, on_episode=ended.append)
    assert [r["episode"] for r in ended] == [0, 2, 1, 3, 4] and sorted(ended, key=lambda r: r["episode"]) == res
    calls, ended = [], []

    def interrupted_at_the_6th_step(obs):  # slot 0 starts episode 3 (0 and 2 ended), slot 1 is 5 steps into 1
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt("interrupted by SIGINT")
        return {"actions": np.zeros((len(obs["env"]), 7))}
    with pytest.raises(KeyboardInterrupt):
        run_episodes(scripted_engine(2, succeed_at, max_steps=6), interrupted_at_the_6th_step, states,
                     progress=False, on_episode=ended.append)
    assert [(r["episode"], r["success"], r["length"]) for r in ended] == [(0, True, 3), (2, True, 2)]
