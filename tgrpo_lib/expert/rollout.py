"""Run the scripted expert in a LiberoEnv: one episode, or a table of success over init states."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .control import ExpertConfig
from .core import ScriptedExpert
from .geometry import scene_geometry


@dataclass
class Episode:
    """One expert rollout. T = number of actions taken."""

    suite: str
    task_id: int
    init_index: int
    seed: int
    success: bool
    actions: np.ndarray  # (T, 7) float32, executed (with the config's action noise)
    proprio: np.ndarray  # (T, 8) float32, observation before each action
    states: dict[str, np.ndarray]  # key -> (T+1, ...) float64, privileged state incl. the final one
    agentview: np.ndarray | None = None  # (T, H, W, 3) uint8, flipped upright
    wrist: np.ndarray | None = None  # (T, H, W, 3) uint8
    events: list = field(default_factory=list)  # (step, label, eef xyz) from the expert
    intended: np.ndarray | None = None  # (T, 7) float32, the same actions before the noise (demo labels)

    @property
    def steps(self) -> int:
        return int(len(self.actions))


def run_episode(env, init_state: np.ndarray, *, seed: int = 0, cfg: ExpertConfig = ExpertConfig(),
                init_index: int = -1, geometry=None, max_steps: int | None = None) -> Episode:
    """Reset ``env`` to ``init_state``, let the expert act until success or the step budget."""
    obs = env.reset(init_state)
    geo = geometry if geometry is not None else scene_geometry(env)
    expert = ScriptedExpert(env.goal, geo, cfg, seed=seed)
    expert.reset(obs["state"])
    budget = max_steps or env.max_steps
    actions, intended, proprio, states, agent, wrist = [], [], [], [obs["state"]], [], []
    success = False
    for _ in range(budget):
        action = expert.act(obs["state"])
        actions.append(action.astype(np.float32))
        intended.append(expert.intended.astype(np.float32))
        proprio.append(obs["proprio"])
        if "agentview" in obs:
            agent.append(obs["agentview"])
        if "wrist" in obs:
            wrist.append(obs["wrist"])
        obs, success = env.step(action)
        states.append(obs["state"])
        if success:
            break
    stacked = {k: np.stack([s[k] for s in states]) for k in states[0]}
    return Episode(
        suite=env.task.suite, task_id=env.task.task_id, init_index=init_index, seed=seed, success=success,
        actions=np.asarray(actions, dtype=np.float32).reshape(-1, 7),
        proprio=np.asarray(proprio, dtype=np.float32).reshape(-1, 8), states=stacked,
        agentview=np.stack(agent) if agent else None, wrist=np.stack(wrist) if wrist else None,
        events=list(expert.events), intended=np.asarray(intended, dtype=np.float32).reshape(-1, 7),
    )
