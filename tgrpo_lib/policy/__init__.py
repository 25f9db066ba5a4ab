"""Policy layer: the only part of tgrpo_lib that imports transformers / peft / sentence-transformers.

    policy = make_policy(PolicyConfig())                       # tiny VLA, CPU, offline
    policy = make_policy(PolicyConfig(kind="hf_vla", model_path="/models/openvla-7b",
                                      unnorm_key="libero_object_no_noops", gripper_convention="openvla",
                                      lora_rank=32, lora_alpha=16, device="cuda"))
    # an OpenVLA checkpoint loads into the native model (policy/openvla.py); remote_code=True: its own code
    out = policy.act(obs_batch, instruction)                   # see docs/INTERFACES.md
    policy.save(run_dir / "checkpoints" / "policy"); policy = load_policy(that_path)
"""
from __future__ import annotations

from pathlib import Path

from .config import POLICY_KINDS, PolicyConfig

__all__ = ["ActingPolicy", "ActionStats", "ActionTokenizer", "Policy", "PolicyConfig", "PolicyOutput", "POLICY_KINDS",
           "as_policy_fn", "gripper_to_env", "load_policy", "make_policy", "to_env_actions"]
_LAZY = {"ActionStats": "action_tokens", "ActionTokenizer": "action_tokens", "gripper_to_env": "action_tokens",
         "to_env_actions": "action_tokens", "Policy": "base", "PolicyOutput": "base",
         "ActingPolicy": "acting", "as_policy_fn": "acting"}


def __getattr__(name):  # torch loads on first use, so a config (policy.config) can be built and checked in a blink
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


def make_policy(cfg: PolicyConfig, action_stats=None):
    """Build a fresh policy in "sft" mode (call ``policy.set_mode("rl")`` before RL)."""
    if cfg.kind == "tiny_vla":
        from .tiny_vla import TinyVLAPolicy  # deferred: torch only once a policy is built (configs stay torch-free)

        return TinyVLAPolicy(cfg, action_stats)
    from .hf_vla import HFVLAPolicy  # deferred: torch only once a policy is built (configs stay torch-free)

    return HFVLAPolicy(cfg, action_stats)


def load_policy(path: str | Path):
    """Reload a policy written by ``policy.save(path)``, in the mode it was saved in."""
    path = Path(path)
    if not (path / "policy_config.json").is_file():
        raise FileNotFoundError(f"no policy_config.json in {path}: pass the directory given to policy.save(), "
                                "e.g. outputs/<kind>/<run>/checkpoints/policy.")
    cfg = PolicyConfig.from_json(path / "policy_config.json")
    if cfg.kind == "tiny_vla":
        from .tiny_vla import TinyVLAPolicy  # deferred: torch only once a policy is built (configs stay torch-free)

        return TinyVLAPolicy.load(path)
    from .hf_vla import HFVLAPolicy  # deferred: torch only once a policy is built (configs stay torch-free)

    return HFVLAPolicy.load(path)
