"""From the policy interface (``act``) to the plain ``obs batch -> {"actions", ...}`` function the
env layer's engines call. The env layer never sees the model; what training keeps of each step
(tokens, sampling log-probs, frozen image features) is packaged here, beside the policy."""
from __future__ import annotations

import time
from typing import Callable, Mapping

import numpy as np
import torch


class ActingPolicy:
    """Acts without gradients on one torch thread (the simulator workers hold the other cores),
    returns actions plus tokens / log-probs / features, and counts the seconds spent acting."""

    def __init__(self, policy, instruction: str, greedy: bool = True, temperature: float = 1.0, threads: int | None = 1):
        self.policy, self.instruction, self.greedy, self.temperature = policy, instruction, greedy, temperature
        self.threads = threads
        self.seconds = 0.0

    def __call__(self, obs: dict) -> dict:
        t0 = time.perf_counter()
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                out = self.policy.act(obs, self.instruction, greedy=self.greedy, temperature=self.temperature)
        finally:
            torch.set_num_threads(before)
        self.seconds += time.perf_counter() - t0
        rec = {"actions": out.env_actions, "tokens": out.tokens, "log_prob": out.log_prob}
        if out.features is not None:
            rec["features"] = out.features
        return rec


def as_policy_fn(policy, instruction: str, greedy: bool = True, temperature: float = 1.0) -> Callable[[dict], Mapping[str, np.ndarray]]:
    """A policy object (``act``) as an ``ActingPolicy``; a plain ``obs -> actions`` callable as a policy_fn."""
    if hasattr(policy, "act"):
        return ActingPolicy(policy, instruction, greedy=greedy, temperature=temperature)
    if callable(policy):
        def fn(obs):
            res = policy(obs)
            return res if isinstance(res, Mapping) else {"actions": res}
        return fn
    raise TypeError(f"policy must have an act() method or be callable, got {type(policy).__name__}.")
