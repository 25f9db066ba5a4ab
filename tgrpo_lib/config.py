"""The config tree: one frozen dataclass per layer, nested in ``TrainConfig`` and saved as
``config.json`` in every run directory (``config_to_dict`` / ``train_config_from_dict``)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from tgrpo_lib.envs.config import EnvConfig
from tgrpo_lib.policy.config import PolicyConfig
from tgrpo_lib.reward.config import RewardConfig

ALGOS = ("tgrpo", "step_only", "traj_only", "grpo_sparse", "dpo", "tpo")
"""tgrpo: Eq. 2-7 with alpha1/alpha2; step_only (alpha1=1) and traj_only (alpha2=1): Table II
ablations; grpo_sparse: binary success reward, trajectory-level advantage only (the recipe of
recent GRPO-for-VLA work, a baseline the paper lacks); dpo / tpo: Table I preference baselines
(DPO on success/return-ranked trajectory pairs; GRAPE-style trajectory preference optimisation)
trained on the same online rollouts."""

DEFAULT_POLICY = PolicyConfig(use_wrist=False)  # one camera: a rendered frame costs as much as 5 physics steps


@dataclass(frozen=True)
class TrainConfig:
    """One online RL run on one task (the paper fine-tunes one task at a time)."""

    suite: str = "libero_object"
    """LIBERO suite (aliases spatial|object|goal|long)."""
    task_id: int = 0
    """Task index inside the suite, 0..9."""
    algo: str = "tgrpo"
    """Objective, one of ALGOS."""
    alpha1: float = 0.3
    """Weight of the step-level advantage (Eq. 4); the paper's best is 0.3."""
    alpha2: float = 0.7
    """Weight of the trajectory-level advantage (Eq. 4); alpha1 + alpha2 must be 1."""
    group_size: int = 4
    """N, trajectories sampled in parallel from one init state (paper: 4)."""
    iterations: int = 20
    """Online iterations: one group rollout + K optimisation epochs each."""
    epochs: int = 2
    """K, optimisation epochs over each group (pi_old fixed within the iteration)."""
    minibatches: int = 4
    """AdamW steps per epoch. 1: one step on exactly the Eq. 6 objective of the whole group.
    M > 1: the group's time steps are shuffled into M minibatches (all N rows each), one step
    per minibatch with the loss averaged over its steps - PPO's recipe, more movement per
    (expensive) rollout; pi_old stays the rollout policy, so the clip bounds the drift. With
    M = 1 a 20-iteration run made only 40 AdamW steps (KL to the reference 0.03, no clipping).
    dpo / tpo score whole trajectories and take one step per epoch whatever M is."""
    minibatch_steps: int = 64
    """Time steps per forward/backward chunk (all N rows each); gradients are accumulated over
    chunks, so each epoch is one AdamW step on exactly the Eq. 6 objective."""
    lr: float = 3e-4
    """AdamW learning rate on the LoRA parameters. Paper (OpenVLA-7B LoRA): 1e-5. The tiny VLA's
    rank-8 LoRA on a 1M-parameter head needs a larger step to move within ~20 iterations."""
    weight_decay: float = 0.0
    """AdamW weight decay (LoRA factors are small; decay would pull them back to the SFT policy)."""
    clip_eps: float = 0.2
    """epsilon of the clipped ratio (Eq. 6)."""
    beta: float = 0.04
    """KL coefficient to the reference policy (Eq. 6-7)."""
    dpo_beta: float = 0.1
    """Inverse temperature of the dpo / tpo preference losses."""
    max_grad_norm: float = 1.0
    """Gradient clipping of each AdamW step."""
    temperature: float = 1.0
    """Sampling temperature during rollouts (1.0 = on-policy)."""
    train_init_states: str = "standard"
    """Init states cycled during training: "standard" (LIBERO's 50, as the paper) or "heldout"."""
    eval_interval: int = 10
    """Evaluate every this many iterations (0 = only before and after training)."""
    eval_episodes: int = 10
    """Episodes per evaluation during training (standard init states, greedy actions)."""
    final_eval_episodes: int = 50
    """Episodes of the before/after evaluation on the standard and the held-out init states."""
    heldout_eval_episodes: int | None = None
    """Held-out episodes of the before/after evaluation when they should differ from
    ``final_eval_episodes`` (None: the same number). ``make run`` uses 25 to fit its time budget."""
    video_episodes: int = 1
    """Evaluation episodes saved as mp4 at each evaluation."""
    init_checkpoint: str | None = None
    """Policy directory to start from (the SFT checkpoint); None builds a fresh policy."""
    seed: int = 0
    """Seeds python/numpy/torch once at the start; recorded in the run."""
    run_name: str | None = None
    """Run directory name under outputs/train/; None = CleanRL-style {task}__{algo}__{seed}__{time}."""
    checkpoint_interval: int = 1
    """Save model + optimiser + RNG every this many iterations (a killed run resumes from it)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=lambda: DEFAULT_POLICY)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def __post_init__(self):
        from tgrpo_lib.advantages import check_alphas

        if self.algo not in ALGOS:
            raise ValueError(f"algo={self.algo!r}: pass one of {ALGOS}.")
        check_alphas(self.alpha1, self.alpha2)
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: a group needs N >= 2 trajectories.")
        if self.iterations < 0 or self.epochs < 1 or self.minibatch_steps < 1 or self.minibatches < 1:
            raise ValueError("iterations must be >= 0; epochs, minibatches and minibatch_steps >= 1.")
        if self.train_init_states not in ("standard", "heldout"):
            raise ValueError(f"train_init_states={self.train_init_states!r}: pass 'standard' or 'heldout'.")
        if self.policy.use_wrist and "wrist" not in self.env.cameras:
            raise ValueError("policy.use_wrist=True needs the wrist camera: pass env=EnvConfig(cameras=('agentview', 'wrist')).")

    @property
    def advantage_weights(self) -> tuple[float, float]:
        """(alpha1, alpha2) actually used by ``algo`` (ablations override the configured pair)."""
        return {"step_only": (1.0, 0.0), "traj_only": (0.0, 1.0), "grpo_sparse": (0.0, 1.0)}.get(
            self.algo, (self.alpha1, self.alpha2))


def train_config_from_dict(d: dict) -> TrainConfig:
    """Inverse of ``runs.config_to_dict`` for a TrainConfig (config.json -> dataclass tree)."""
    d = dict(d)
    nested = {"env": EnvConfig, "policy": PolicyConfig, "reward": RewardConfig}
    for key, cls in nested.items():
        if key in d and isinstance(d[key], dict):
            sub = {k: tuple(v) if isinstance(v, list) else v for k, v in d[key].items()}
            d[key] = PolicyConfig.from_dict(sub) if cls is PolicyConfig else cls(**sub)
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}: was the config written by another version?")
    return TrainConfig(**d)


__all__ = ["ALGOS", "EnvConfig", "PolicyConfig", "RewardConfig", "TrainConfig", "replace", "train_config_from_dict"]
