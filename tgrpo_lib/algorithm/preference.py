"""Preference-optimisation baselines of the paper's Table I (OpenVLA-DPO, GRAPE) as pure functions.

Both run on the same group rollouts as TGRPO: the N trajectories of a group are ranked and
turned into (better, worse) pairs, then a Bradley-Terry / DPO objective raises the policy's
log-likelihood ratio to the frozen reference on the better trajectory relative to the worse.

- ``dpo_loss``: DPO (Rafailov et al. 2023) on whole-trajectory log-probs, i.e. the *sum* of the
  per-step log-probs (each step's log-prob is itself the sum over its 7 action tokens). With
  pairs from ``preference_pairs(success.float())`` this is the OpenVLA-DPO baseline: successful
  trajectories preferred over failed ones.
- ``tpo_loss``: GRAPE-style trajectory-wise preference optimisation (Zhang et al. 2024). GRAPE
  ranks trajectories by a cost built from success and stage-wise progress and optimises a DPO
  objective on trajectory pairs. Our choices, so that it can be compared with TGRPO on equal
  data: trajectories are ranked by (success, then return of the dense multi-stage reward);
  *every* strictly ordered pair of the group enters the loss (N(N-1)/2 pairs at most, ties
  dropped) and is weighted equally; the log-ratio of a trajectory is *averaged over its steps*
  (1/|o_i| sum_t), not summed, so that long and short trajectories weigh the same and beta
  does not need retuning across suites with 220-520 step horizons.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def trajectory_log_prob(step_logp: torch.Tensor, mask: torch.Tensor | None = None,
                        average: bool = False) -> torch.Tensor:
    """Trajectory log-prob from per-step log-probs (N, M): sum over valid steps, or mean if average. (N,)"""
    mask = torch.ones_like(step_logp, dtype=torch.bool) if mask is None else mask.bool()
    total = torch.where(mask, step_logp, torch.zeros_like(step_logp)).sum(1)   # (N,)
    return total / mask.sum(1).clamp(min=1) if average else total


def preference_pairs(returns, success=None, tol: float = 1e-6) -> list[tuple[int, int]]:
    """All (i, j) with trajectory i strictly preferred to j, in index order.

    i beats j when it succeeded and j did not, or when both share the same success and
    R_i > R_j + tol. Ties give no pair. returns, success: (N,) sequences or tensors; success
    defaults to "all equal" (rank by return only).
    """
    r = torch.as_tensor(returns, dtype=torch.float64).flatten()                 # (N,)
    s = torch.zeros_like(r) if success is None else torch.as_tensor(success).flatten().double()
    if s.shape != r.shape:
        raise ValueError(f"returns {tuple(r.shape)} and success {tuple(s.shape)} must both hold one value "
                         "per trajectory of the group")
    n = len(r)
    return [(i, j) for i in range(n) for j in range(n)
            if s[i] > s[j] or (s[i] == s[j] and r[i] > r[j] + tol)]


def dpo_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1):
    """DPO: -mean log sigmoid(beta [(logp_c - ref_c) - (logp_r - ref_r)]) over P pairs.

    All inputs (P,): trajectory log-probs of the chosen / rejected member of each pair under
    the policy (with grad) and the reference. Returns (loss, stats of python floats); the
    stats' rewards are DPO's implicit rewards beta * (logp - ref).
    """
    chosen_reward = beta * (logp_chosen - ref_chosen)                          # (P,)
    rejected_reward = beta * (logp_rejected - ref_rejected)                    # (P,)
    margin = chosen_reward - rejected_reward                                   # (P,)
    loss = -F.logsigmoid(margin).mean()
    with torch.no_grad():
        stats = {"loss": loss.item(), "n_pairs": float(margin.numel()),
                 "reward_accuracy": (margin > 0).double().mean().item(),
                 "margin_mean": margin.mean().item(),
                 "chosen_reward": chosen_reward.mean().item(),
                 "rejected_reward": rejected_reward.mean().item()}
    return loss, stats


def tpo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, returns, success=None,
             mask: torch.Tensor | None = None, beta: float = 0.1):
    """GRAPE-style trajectory preference loss over all ranked pairs of one group (module docstring).

    logp (with grad), ref_logp, mask: (N, M) per-step log-probs; returns, success: (N,).
    A group without any strict preference (all tied) gives loss 0 with zero gradients.
    """
    pairs = preference_pairs(returns, success)
    avg = trajectory_log_prob(logp, mask, average=True)                        # (N,) per-step mean
    if not pairs:  # keep the graph so loss.backward() still works and gives zero gradients
        return avg.sum() * 0.0, {"loss": 0.0, "n_pairs": 0.0, "reward_accuracy": 0.0,
                                 "margin_mean": 0.0, "chosen_reward": 0.0, "rejected_reward": 0.0}
    ref_avg = trajectory_log_prob(ref_logp, mask, average=True)                # (N,)
    better, worse = (torch.tensor(idx, device=logp.device) for idx in zip(*pairs))  # (P,) each
    return dpo_loss(avg[better], avg[worse], ref_avg[better], ref_avg[worse], beta)
