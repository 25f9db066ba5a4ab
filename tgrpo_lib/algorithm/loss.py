"""The TGRPO objective (paper Eq. 5, 6, 7) as one pure function returning (loss, stats).

All log-prob tensors are (N, M): one log-prob per step, i.e. the sum over the 7 action tokens
of that step (the action is one joint event for the ratio and the KL).

Minibatching over steps. Eq. 6 averages each trajectory over its own length |o_i| and then
over the N trajectories of the group. To split one group's steps into minibatches whose
losses *sum* to the full-batch loss, call ``tgrpo_loss`` on each minibatch with
  - the same N rows (a slice of columns ``[:, t0:t1]``, or the full (N, M) tensors with
    ``mask`` selecting the minibatch's steps; rows with no step in the minibatch are fine),
  - ``traj_lengths`` = the full trajectories' lengths (N,), e.g. ``full_mask.sum(1)``.
The default ``traj_lengths = mask.sum(1)`` is right only for a full-batch call.
"""
from __future__ import annotations

import torch


def kl_estimator(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-step D_KL[pi_theta || pi_ref] estimate of Eq. 7: r - log r - 1 with r = pi_ref / pi_theta.

    Non-negative, 0 exactly when logp == ref_logp, unbiased for KL(pi_theta || pi_ref) when
    the action was sampled from pi_theta (Schulman's k3 estimator). Shapes: any, elementwise.
    """
    log_r = ref_logp - logp
    return torch.exp(log_r) - log_r - 1


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return (torch.where(mask, x.to(torch.float64), 0.0).sum() / mask.sum().clamp(min=1)).item()


@torch.no_grad()
def _loss_stats(loss, surrogate, kl, ratio, log_ratio, adv, mask, lengths, clip_eps) -> dict[str, float]:
    """Diagnostics over the valid steps (the minibatch's own, for a minibatch call)."""
    def mean(x):
        return _masked_mean(x, mask)
    return {
        "loss": loss.item(),
        "policy_objective": (surrogate.sum(1) / lengths).mean().item(),  # Eq. 6 without the KL
        "kl_mean": mean(kl),
        "ratio_mean": mean(ratio),
        "clip_fraction": mean((ratio - 1).abs() > clip_eps),
        "approx_kl_old": mean((ratio - 1) - log_ratio),  # KL(old || new) drift, k3 again
        "zero_adv_fraction": mean(adv == 0),               # steps without learning signal
    }


def tgrpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor,
               advantages: torch.Tensor, mask: torch.Tensor | None = None,
               traj_lengths: torch.Tensor | None = None, clip_eps: float = 0.2,
               beta: float = 0.04, zero_variance_fraction: float | None = None):
    """loss = -J_TGRPO (Eq. 6) with rho = exp(logp - old_logp) (Eq. 5) and the KL of Eq. 7.

    logp (with grad), old_logp, ref_logp, advantages, mask: (N, M); traj_lengths: (N,)
    = |o_i|, see the module docstring for minibatches. Masked steps may hold any finite or
    non-finite value: they are replaced before any arithmetic so gradients stay finite.
    Returns (loss scalar tensor, stats dict of python floats).
    """
    mask = torch.ones_like(logp, dtype=torch.bool) if mask is None else mask.bool()
    lengths = mask.sum(1) if traj_lengths is None else torch.as_tensor(traj_lengths)
    lengths = lengths.to(logp.device, logp.dtype).clamp(min=1)                 # (N,) |o_i|
    zero = torch.zeros_like(logp)
    # Padded steps may hold inf/NaN: replace them first so no NaN reaches the sums or gradients.
    logp, old_logp, ref_logp, adv = (torch.where(mask, x, zero)
                                     for x in (logp, old_logp, ref_logp, advantages))
    log_ratio = logp - old_logp                                                # (N, M)
    ratio = torch.exp(log_ratio)                                               # (N, M) Eq. 5
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    kl = kl_estimator(logp, ref_logp)                                          # (N, M) Eq. 7, 0 where masked
    per_step = surrogate - beta * kl                                           # (N, M) inside Eq. 6
    per_traj = per_step.sum(1) / lengths                                       # (N,) 1/|o_i| sum_t
    loss = -per_traj.mean()                                                    # -(1/N) sum_i

    stats = _loss_stats(loss, surrogate, kl, ratio, log_ratio, adv, mask, lengths, clip_eps)
    if zero_variance_fraction is not None:
        stats["zero_variance_fraction"] = float(zero_variance_fraction)
    return loss, stats
