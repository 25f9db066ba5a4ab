"""The policy interface every trainer uses (see docs/INTERFACES.md) and helpers shared by the
tiny VLA and the HF VLA.

Log-prob convention: ``act(..., temperature=T)`` samples from softmax(logits / T) but stores
in ``out.log_prob`` the log-prob of the taken tokens under the *policy itself* (T = 1), i.e.
exactly what ``log_prob(obs, instruction, out.tokens)`` recomputes. GRPO/PPO ratios compare the
updated policy with the policy that was trained, so that is the number they need; with T != 1
the rollout is slightly off-policy, and the sampling distribution's own log-prob is kept in
``out.sample_log_prob`` for anyone who wants an exact behaviour-policy correction.
Greedy decoding (or T = 0) takes the argmax; ``log_prob`` is still the T = 1 log-prob.
"""
from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .action_tokens import ActionStats, ActionTokenizer, to_env_actions
from .config import PolicyConfig

POLICY_MODES = ("sft", "rl")


@dataclass
class PolicyOutput:
    env_actions: np.ndarray  # (B, 7) float64, ready for env.step (unnormalised, LIBERO gripper)
    tokens: np.ndarray  # (B, 7) int64 OpenVLA token ids
    log_prob: np.ndarray  # (B,) float64, sum of the 7 token log-probs at temperature 1
    sample_log_prob: np.ndarray  # (B,) log-prob under the distribution actually sampled (T)
    normalized_actions: np.ndarray  # (B, 7) decoded bin centers in [-1, 1]
    features: np.ndarray | None = None  # (B, N, C) frozen encoder features; pass back as obs["features"]


def as_instruction_list(instruction: str | Sequence[str], batch_size: int) -> list[str]:
    if isinstance(instruction, str):
        return [instruction] * batch_size
    instructions = list(instruction)
    if len(instructions) != batch_size:
        raise ValueError(f"got {len(instructions)} instructions for a batch of {batch_size}; pass one "
                         "string for the whole batch or one per row.")
    return instructions


def batch_size_of(obs_batch: Mapping) -> int:
    for key in ("proprio", "agentview", "features"):
        if key in obs_batch:
            return int(np.shape(obs_batch[key])[0])
    raise ValueError("obs_batch needs at least 'agentview' (B,H,W,3) uint8 and 'proprio' (B,8); got keys "
                     f"{sorted(obs_batch)}.")


def sample_bins(logits: torch.Tensor, greedy: bool, temperature: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """(..., n_bins) logits -> (...,) sampled bin index (argmax when greedy or T <= 0)."""
    if greedy or temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    if generator is not None and generator.device != flat.device:
        flat = flat.to(generator.device)  # (B*7, 256) is tiny; keeps one seeded stream per policy
    idx = torch.multinomial(flat, 1, generator=generator)
    return idx.reshape(probs.shape[:-1]).to(logits.device)


@contextlib.contextmanager
def seeded(seed: int):
    """Seeds torch for parameter init without touching the caller's global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def gather_log_prob(logits: torch.Tensor, bin_index: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, 7, n_bins) logits, (B, 7) bins -> (B,) sum over the 7 dims of log softmax(logits / T)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, bin_index.unsqueeze(-1)).squeeze(-1).sum(-1)


class Policy(ABC):
    """Shared plumbing: tokenizer, action stats, modes, output assembly, save metadata."""

    config: PolicyConfig
    tokenizer: ActionTokenizer
    action_stats: ActionStats
    mode: str

    def __init__(self, config: PolicyConfig, action_stats: ActionStats | None):
        self.config = config
        self.tokenizer = ActionTokenizer(config.vocab_size, config.n_bins)
        self.action_stats = action_stats or ActionStats.identity()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.mode = "sft"

    # -- the interface -------------------------------------------------------------------
    @abstractmethod
    def act(self, obs_batch: Mapping, instruction: str | Sequence[str], greedy: bool = False,
            temperature: float = 1.0) -> PolicyOutput: ...

    @abstractmethod
    def log_prob(self, obs_batch: Mapping, instruction: str | Sequence[str], tokens) -> torch.Tensor: ...

    @abstractmethod
    def ref_log_prob(self, obs_batch: Mapping, instruction: str | Sequence[str], tokens) -> torch.Tensor: ...

    @abstractmethod
    def sft_loss(self, obs_batch: Mapping, instruction: str | Sequence[str], target_actions) -> torch.Tensor: ...

    @abstractmethod
    def set_mode(self, mode: str) -> None: ...

    @abstractmethod
    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    @abstractmethod
    def all_parameters(self) -> list[torch.nn.Parameter]: ...

    @abstractmethod
    def save(self, path: str | Path) -> Path: ...

    @property
    def micro_batch(self) -> int | None:
        """Most sequences one ``log_prob`` pass should hold (the update cuts its forward/backward
        chunks to it); None: no limit. ``PolicyConfig.micro_batch`` or the kind's default."""
        return self.config.micro_batch

    def parameter_summary(self) -> dict:
        total = sum(p.numel() for p in self.all_parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return dict(total=total, trainable=trainable, mode=self.mode, kind=self.config.kind)

    # -- helpers ---------------------------------------------------------------------------
    def _check_mode(self, mode: str) -> None:
        if mode not in POLICY_MODES:
            raise ValueError(f"mode must be one of {POLICY_MODES}; got {mode!r}.")

    def bins_from_tokens(self, tokens, device) -> torch.Tensor:
        ids = tokens.detach().cpu().numpy() if torch.is_tensor(tokens) else np.asarray(tokens)
        return torch.as_tensor(self.tokenizer.ids_to_bin_index(ids), device=device)  # (B, 7)

    def target_bins(self, target_actions, device) -> torch.Tensor:
        a = target_actions.detach().cpu().numpy() if torch.is_tensor(target_actions) else np.asarray(target_actions)
        normalized = self.action_stats.normalize(a)
        return torch.as_tensor(self.tokenizer.actions_to_bin_index(normalized), device=device)

    def _output(self, bins: torch.Tensor, log_prob: torch.Tensor, sample_log_prob: torch.Tensor,
                features: np.ndarray | None = None) -> PolicyOutput:
        tokens = self.tokenizer.bin_index_to_ids(bins.cpu().numpy())
        normalized = self.tokenizer.decode(tokens)
        env_actions = to_env_actions(normalized, self.action_stats, self.config.gripper_convention)
        return PolicyOutput(env_actions=env_actions, tokens=tokens,
                            log_prob=log_prob.detach().double().cpu().numpy(),
                            sample_log_prob=sample_log_prob.detach().double().cpu().numpy(),
                            normalized_actions=normalized, features=features)

    def _save_common(self, path: str | Path, extra: dict | None = None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.to_json(path / "policy_config.json")
        self.action_stats.to_json(path / "action_stats.json")
        meta = dict(mode=self.mode, format_version=1, **(extra or {}))
        (path / "policy_meta.json").write_text(json.dumps(meta, indent=2))
        return path


def read_meta(path: Path) -> dict:
    return json.loads((path / "policy_meta.json").read_text())
