"""One optimisation phase on one group rollout: the clipped objective (Eq. 5-7) and the
preference objectives (DPO, GRAPE-style), each its own function of (config, policy, optimiser,
rollout, rewards). ``UPDATES[variant.objective]`` picks one; the trainer's loop does not branch.

pi_old is the rollout policy, fixed for the iteration; its log-probs are recomputed before the
first epoch with the update's own teacher-forced pass (same function, dtype and batches), so the
first ratio is 1 up to float error. The numbers ``act`` recorded come from another computation
(the HF VLA's KV-cached bf16 decode, not its teacher-forced pass); their mean absolute gap is
logged as ``losses/rollout_logp_gap``. pi_ref is the starting policy (the LoRA adapters disabled).

Memory: every log-prob pass holds ``pass_steps`` time steps of all N trajectories, i.e. at most
``cfg.minibatch_steps`` steps and at most the policy's ``micro_batch`` sequences.
"""
from __future__ import annotations

import numpy as np
import torch

from tgrpo_lib.algorithm.advantages import fused_advantages, zero_variance_fraction
from tgrpo_lib.algorithm.loss import tgrpo_loss
from tgrpo_lib.algorithm.preference import dpo_loss, preference_pairs, tpo_loss, trajectory_log_prob
from tgrpo_lib.algorithm.variants import get_variant
from tgrpo_lib.infra.config import TrainConfig


# ------------------------------------------------------------------------------ log-probs of a rollout
def _step_batch(rollout, cols: np.ndarray) -> dict:
    """Observations of steps ``cols`` of all N trajectories, flattened to a (N*len(cols)) batch."""
    batch = {}
    src = {"features": rollout.extras["features"]} if "features" in rollout.extras else dict(rollout.obs)
    src["proprio"] = rollout.obs["proprio"]
    for k, v in src.items():
        part = v[:, cols]
        batch[k] = part.reshape(-1, *part.shape[2:])
    return batch


def sequence_log_probs(policy, rollout, instruction: str, cols: np.ndarray, reference: bool = False) -> torch.Tensor:
    """(N, len(cols)) per-step log-probs of the taken tokens (sum over the 7 action tokens)."""
    n = rollout.actions.shape[0]
    tokens = rollout.extras["tokens"][:, cols].reshape(-1, 7)
    fn = policy.ref_log_prob if reference else policy.log_prob
    return fn(_step_batch(rollout, cols), instruction, tokens).reshape(n, len(cols))


def chunks(length: int, size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + size, length)) for s in range(0, length, size)]


def pass_steps(cfg: TrainConfig, policy, n: int) -> int:
    """Time steps (x N trajectories) per log-prob pass: ``cfg.minibatch_steps``, cut so a pass holds
    at most the policy's ``micro_batch`` sequences (never less than one step)."""
    rows = policy.micro_batch
    return cfg.minibatch_steps if rows is None else max(1, min(cfg.minibatch_steps, rows // n))


def _all_log_probs(policy, rollout, instruction, size: int, reference: bool = False) -> torch.Tensor:
    return torch.cat([sequence_log_probs(policy, rollout, instruction, c, reference) for c in chunks(rollout.length, size)], 1)


def _passes(order: np.ndarray, n_mb: int, size: int) -> list[list[np.ndarray]]:
    """An epoch's minibatches (``order`` split in ``n_mb``), each as its sorted passes of <= ``size`` steps."""
    return [[np.sort(mb[c:c + size]) for c in range(0, len(mb), size)] for mb in np.array_split(order, n_mb)]


def _log_probs_over(policy, rollout, instruction, passes: list[list[np.ndarray]],
                    reference: bool = False) -> torch.Tensor:
    """(N, T) log-probs computed pass by pass exactly as the update's forward passes are cut."""
    out = torch.zeros(rollout.actions.shape[0], rollout.length)
    for cols in (c for mb in passes for c in mb):
        out[:, cols] = sequence_log_probs(policy, rollout, instruction, cols, reference).float().cpu()
    return out


def _group_stats(r: torch.Tensor) -> dict:
    zv = zero_variance_fraction(r)
    return {"adv/zero_variance_step_groups": zv["step_groups"], "adv/zero_variance_trajectory_group": zv["trajectory_group"]}


def _step(params, optimizer, max_grad_norm: float, stats: dict, into: dict, n_steps: int) -> None:
    """Clip, one AdamW step, and the step's statistics averaged into ``into``."""
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    stats["grad_norm"] = float(grad_norm)
    for k, v in stats.items():
        into[k] = into.get(k, 0.0) + v / n_steps


# ------------------------------------------------------------------------------ Eq. 5-7
def clipped_update(cfg: TrainConfig, policy, optimizer, rollout, rewards: np.ndarray, instruction: str) -> dict:
    """K epochs of the clipped objective with fused advantages (Eq. 4) on one group.

    minibatches = 1: one AdamW step per epoch on exactly Eq. 6. Otherwise the group's time steps
    are shuffled into M minibatches (all N rows each), one step per minibatch, each loss averaged
    over its own steps (1/|mb| in place of 1/|o_i|): PPO's recipe. ``pass_steps`` (minibatch_steps,
    cut to the policy's micro_batch) bounds the steps of one forward/backward chunk; gradients
    accumulate over chunks. pi_old and pi_ref are computed over the first epoch's very chunks."""
    n, t = rewards.shape
    size, n_mb = pass_steps(cfg, policy, n), min(cfg.minibatches, t)

    def epoch_passes() -> list[list[np.ndarray]]:
        order = np.arange(t) if n_mb == 1 else torch.randperm(t).numpy()  # seeded torch stream, resumable
        return _passes(order, n_mb, size)
    first = epoch_passes()
    with torch.no_grad():  # pi_old and pi_ref from the very passes the first epoch differentiates
        old_logp = _log_probs_over(policy, rollout, instruction, first)  # (N, T) pi_old, fixed
        ref_logp = _log_probs_over(policy, rollout, instruction, first, reference=True)  # (N, T)
    valid = torch.as_tensor(rollout.valid)  # (N, T) steps taken; padded ones (stop="each") leave the loss
    gap = (old_logp - torch.as_tensor(rollout.extras["log_prob"], dtype=torch.float32)).abs()
    rollout_gap = float(gap[valid].mean())
    r = torch.as_tensor(rewards, dtype=torch.float64)  # padded steps hold the absorbing success reward
    adv = fused_advantages(r, *cfg.advantage_weights).float()  # (N, T), the weights the variant uses
    params = policy.trainable_parameters()
    totals: dict[str, float] = {}
    for epoch in range(cfg.epochs):
        for mb_passes in first if epoch == 0 else epoch_passes():
            optimizer.zero_grad(set_to_none=True)
            stats: dict[str, float] = {}
            lengths = valid[:, np.concatenate(mb_passes)].sum(1).float()  # (N,) each row's steps in this minibatch
            mb_steps = float(sum(len(c) for c in mb_passes))
            for cols in mb_passes:
                logp = sequence_log_probs(policy, rollout, instruction, cols)
                old, ref, a, m = (x[:, cols].to(logp.device) for x in (old_logp, ref_logp, adv, valid))  # (N, |cols|)
                loss, s = tgrpo_loss(logp, old, ref, a, mask=m, traj_lengths=lengths, clip_eps=cfg.clip_eps,
                                     beta=cfg.beta)
                loss.backward()
                w = len(cols) / mb_steps  # chunks of one minibatch sum to its loss
                for k, v in s.items():
                    stats[k] = stats.get(k, 0.0) + (v if k == "loss" else w * v)
            _step(params, optimizer, cfg.max_grad_norm, stats, totals, cfg.epochs * n_mb)
    return {**{f"losses/{k}": v for k, v in totals.items()}, "losses/rollout_logp_gap": rollout_gap,
            **_group_stats(r), "adv/abs_mean": float(adv.abs().mean())}


# ------------------------------------------------------------------------------ DPO / GRAPE-style
def preference_update(cfg: TrainConfig, policy, optimizer, rollout, rewards: np.ndarray, instruction: str) -> dict:
    """K epochs, one AdamW step each, of a preference loss on the group's trajectories ranked by
    success, then return: ``dpo`` on the best vs the worst trajectory, ``tpo`` (GRAPE-style) on
    every ordered pair. A group without a strict ordering (all tied) carries no preference: no
    step is taken and ``losses/n_pairs`` is 0."""
    objective = get_variant(cfg.algo).objective
    returns, success = rewards.sum(1), rollout.episode_success
    pairs = preference_pairs(returns, success)
    size = pass_steps(cfg, policy, rollout.actions.shape[0])
    valid = torch.as_tensor(rollout.valid)  # padded steps (stop="each") are no actions: 0 in the sums
    with torch.no_grad():
        ref_logp = _all_log_probs(policy, rollout, instruction, size, reference=True) * valid  # (N, T)
    params = policy.trainable_parameters()
    totals: dict[str, float] = {}
    for _ in range(cfg.epochs if pairs else 0):
        optimizer.zero_grad(set_to_none=True)
        logp = _all_log_probs(policy, rollout, instruction, size) * valid  # (N, T)
        if objective == "tpo":
            loss, stats = tpo_loss(logp, ref_logp, returns, success, beta=cfg.dpo_beta)
        else:
            rank = lambda i: (success[i], returns[i])  # noqa: E731
            best, worst = max(range(len(returns)), key=rank), min(range(len(returns)), key=rank)
            seq, ref = trajectory_log_prob(logp), trajectory_log_prob(ref_logp)
            loss, stats = dpo_loss(seq[[best]], seq[[worst]], ref[[best]], ref[[worst]], beta=cfg.dpo_beta)
        loss.backward()
        _step(params, optimizer, cfg.max_grad_norm, dict(stats), totals, cfg.epochs)
    totals.setdefault("n_pairs", float(len(pairs)))
    totals.setdefault("loss", 0.0)
    return {**{f"losses/{k}": v for k, v in totals.items()}, **_group_stats(torch.as_tensor(rewards, dtype=torch.float64))}


UPDATES = {"clipped": clipped_update, "dpo": preference_update, "tpo": preference_update}
"""Objective of a variant (``variants.VARIANTS``) -> its update function."""


def group_skipped(rule: str, success: np.ndarray, returns: np.ndarray) -> bool:
    """Whether ``TrainConfig.skip_groups``' ``rule`` leaves a group without an update step.
    ``success``: (N,) outcomes; ``returns``: (N,) the group's returns under the run's reward."""
    if rule == "none":
        return False
    if rule == "no_outcome_contrast":
        return bool(success.all() or not success.any())
    if rule == "no_return_contrast":
        return bool(np.ptp(returns) <= 1e-9 * max(1.0, float(np.abs(returns).max())))
    if rule == "all_success":
        return bool(success.all())
    raise ValueError(f"skip_groups={rule!r}: pass one of none, no_outcome_contrast, no_return_contrast, all_success.")


def update(cfg: TrainConfig, policy, optimizer, rollout, rewards: np.ndarray, instruction: str) -> dict:
    """The update of ``cfg.algo``'s objective on one group; returns averaged loss statistics.
    A group ``cfg.skip_groups`` filters out is left alone (``update/skipped`` = 1)."""
    if group_skipped(cfg.skip_groups, rollout.episode_success, rewards.sum(1)):
        return {"update/skipped": 1.0}
    stats = UPDATES[get_variant(cfg.algo).objective](cfg, policy, optimizer, rollout, rewards, instruction)
    return {**stats, "update/skipped": 0.0}
