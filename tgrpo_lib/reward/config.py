"""Reward configuration (one frozen dataclass, saved into every run's config.json)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SOURCES = ("offline", "llm", "cache")
FALLBACKS = ("none", "offline")


@dataclass(frozen=True)
class RewardConfig:
    """How the multi-stage dense reward (Eq. 1) is built."""

    source: str = "offline"
    """"offline": compile stages from the BDDL goal (deterministic, no API). "llm": a validated
    cached Claude program for this exact prompt, else ask Claude (needs ANTHROPIC_API_KEY), validate
    and cache the answer. "cache": only a validated cached program, never the API."""
    fallback: str = "none"
    """What happens when source "llm"/"cache" cannot give a validated program: "none" stops with
    one line naming the cause and the fix; "offline" logs that line and uses the offline compiler."""
    model: str = "claude-sonnet-4-5"
    """Anthropic model name for source="llm" (the paper used Claude 3.7 Sonnet); part of the cache key."""
    w_f1: float = 1.0
    """Weight of f1, the stage-based object progress: f1 = stage + progress in [0, n_stages]."""
    w_f2: float = 1.0
    """Weight of f2, key-pose shaping exp(-|eef - key pose| / key_pose_scale) in (0, 1]."""
    key_pose_scale: float = 0.10
    """Length scale (m) of f2: at this eef distance from the stage's key pose f2 = 1/e."""
    progress_scale: float = 0.10
    """Length scale (m) of the in-stage geometric progress exp(-d / progress_scale)."""
    key_pose_demos: int = 175
    """f2's key poses are averaged over the first this many recorded expert demos of the task (all
    when fewer are recorded): 175 = ``config.SFT_RECIPE``'s demo count, so the reward of a run does
    not change with how many demos the outputs folder holds (it did: 200 recorded for an older
    recipe moved the poses by 0.1-0.3 mm against a fresh folder's 175)."""
    cache_dir: str = "rewards"
    """Validated LLM programs, relative to the project root (committable):
    <suite>/task_<id>/<key>.{json,py,prompt.md}, key = hash of prompt + model + validator version."""
    max_tokens: int = 4096
    """Answer length budget of the LLM call; an answer cut at this length is refused."""
    request_timeout_s: float = 30.0
    """Longest the API may stay silent (connecting, or between two streamed chunks of the answer)
    before the try counts as timed out; the answer streams, so a long answer is not cut."""
    max_retries: int = 3
    """Retries after a 429 / 529 / 5xx / timeout / dropped connection, waiting `retry-after` when the
    server sends it, else 1, 2, 4 ... s; 401 / 403 / 404 / 400 are never retried."""
    sandbox_timeout_s: float = 20.0
    """Wall-clock limit for one sandboxed evaluation of an LLM reward program."""
    sandbox_memory_mb: int = 2048
    """Address-space limit (RLIMIT_AS) of the sandbox worker process."""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"RewardConfig.source={self.source!r}: choose one of {SOURCES}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"RewardConfig.fallback={self.fallback!r}: choose one of {FALLBACKS}")
        for name in ("w_f1", "w_f2", "key_pose_scale", "progress_scale", "request_timeout_s", "sandbox_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"RewardConfig.{name}={value!r}: pass a finite number")
        if self.w_f1 < 0 or self.w_f2 < 0:
            raise ValueError("RewardConfig weights w_f1, w_f2 must be >= 0")
        if self.key_pose_scale <= 0 or self.progress_scale <= 0:
            raise ValueError("RewardConfig.key_pose_scale and progress_scale must be > 0 (metres)")
        if self.request_timeout_s <= 0 or self.sandbox_timeout_s <= 0:
            raise ValueError("RewardConfig.request_timeout_s and sandbox_timeout_s must be > 0 (seconds)")
        for name, low, high in (("max_tokens", 1, 64_000), ("max_retries", 0, 10), ("sandbox_memory_mb", 256, 65_536),
                                ("key_pose_demos", 1, 1_000_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"RewardConfig.{name}={value!r}: pass an integer in {low}..{high}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"RewardConfig.model={self.model!r}: pass an Anthropic model name, e.g. 'claude-sonnet-4-5'")

    def to_dict(self) -> dict:
        return asdict(self)
