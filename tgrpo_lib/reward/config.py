"""Reward configuration (one frozen dataclass, saved into every run's config.json)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

SOURCES = ("offline", "llm", "cache")


@dataclass(frozen=True)
class RewardConfig:
    """How the multi-stage dense reward (Eq. 1) is built."""

    source: str = "offline"
    """"offline": compile stages from the BDDL goal (deterministic, no API); "llm": ask Claude
    (answer cached under cache_dir), falling back to the cache then to offline without a key;
    "cache": only reuse a cached LLM answer, else offline."""
    model: str = "claude-sonnet-4-5"
    """Anthropic model name for source="llm" (the paper used Claude 3.7 Sonnet)."""
    w_f1: float = 1.0
    """Weight of f1, the stage-based object progress: f1 = stage + progress in [0, n_stages]."""
    w_f2: float = 1.0
    """Weight of f2, key-pose shaping exp(-|eef - key pose| / key_pose_scale) in (0, 1]."""
    key_pose_scale: float = 0.10
    """Length scale (m) of f2: at this eef distance from the stage's key pose f2 = 1/e."""
    progress_scale: float = 0.10
    """Length scale (m) of the in-stage geometric progress exp(-d / progress_scale)."""
    cache_dir: str = "rewards"
    """Cache of LLM answers, relative to the project root (committable): <suite>/task_<id>/<hash>.json."""
    max_tokens: int = 4096
    """Answer length budget for the LLM call."""
    temperature: float = 0.0
    """Sampling temperature of the LLM call (0 = as reproducible as the API allows)."""
    sandbox_timeout_s: float = 20.0
    """Wall-clock limit for one sandboxed evaluation of an LLM reward program."""
    sandbox_memory_mb: int = 2048
    """Address-space limit (RLIMIT_AS) of the sandbox worker process."""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"RewardConfig.source={self.source!r}: choose one of {SOURCES}")
        if self.w_f1 < 0 or self.w_f2 < 0:
            raise ValueError("RewardConfig weights w_f1, w_f2 must be >= 0")
        if self.key_pose_scale <= 0 or self.progress_scale <= 0:
            raise ValueError("RewardConfig.key_pose_scale and progress_scale must be > 0 (metres)")

    def to_dict(self) -> dict:
        return asdict(self)
