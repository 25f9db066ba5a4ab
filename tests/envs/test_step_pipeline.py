"""The pipelined loop (``tgrpo_lib.envs.pipeline.Pipeline``) on a scripted engine: no simulator."""
import numpy as np
import pytest


def test_pipeline_takes_workers_in_turn_and_asks_acts_after_each_step(scripted_engine):
    eng = scripted_engine(4, [0] * 4, max_steps=9, workers=2)
    eng.reset(np.zeros((4, 1)))
    budget = {0: 2, 1: 2, 2: 1, 3: 3}  # steps each environment takes
    taken = dict.fromkeys(budget, 0)
    log = []

    def policy(obs):
        log.append(("act", obs["env"].tolist()))
        return {"actions": np.zeros((len(obs["env"]), 7)), "row": obs["env"] * 10}

    with eng.pipeline(policy, lambda i: taken[i] < budget[i]) as steps:
        for s in steps:
            log.append(("got", s.envs))
            assert s.out["row"].tolist() == [10 * i for i in s.envs] and s.success.shape == (len(s.envs),)
            assert s.obs["env"].tolist() == s.next_obs["env"].tolist() == s.envs
            for i in s.envs:
                taken[i] += 1
    assert taken == budget and eng.pending == {}
    assert log == [("act", [0, 1]), ("act", [2, 3]),
                   ("got", [0, 1]), ("act", [0, 1]), ("got", [2, 3]), ("act", [3]),
                   ("got", [0, 1]), ("got", [3]), ("act", [3]),
                   ("got", [3])]


def test_pipeline_leaves_no_step_in_flight_when_the_consumer_fails(scripted_engine):
    eng = scripted_engine(4, [0] * 4, max_steps=9, workers=2)
    eng.reset(np.zeros((4, 1)))
    with pytest.raises(KeyError, match="boom"):
        with eng.pipeline(lambda o: {"actions": np.zeros((len(o["env"]), 7))}, lambda i: True) as steps:
            for s in steps:
                assert eng.pending  # the other worker is stepping meanwhile
                raise KeyError("boom")
    assert eng.pending == {}
