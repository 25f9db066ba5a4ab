"""A scripted stand-in for GroupEngine, for tests of the pipelined loops that need no simulator."""
import numpy as np
import pytest

from tgrpo_lib.envs.pipeline import Pipeline


class ScriptedEngine:
    """Stands in for GroupEngine: episode i succeeds after ``succeed_at[i]`` steps (0 = never);
    observations carry the episode index so a test can see which slot runs what. ``workers``
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

    def pipeline(self, policy_fn, acts):
        return Pipeline(self, policy_fn, acts)

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


@pytest.fixture
def scripted_engine():
    """The ScriptedEngine class: ``scripted_engine(n, succeed_at, max_steps, workers=1)``."""
    return ScriptedEngine
