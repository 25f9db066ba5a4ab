"""Group-relative advantages of TGRPO (paper Eq. 2, 3, 4) as pure tensor functions.

A group is the N trajectories sampled in parallel from the same initial state. Rewards are a
tensor (N, M): N trajectories x M steps. An optional boolean ``mask`` (N, M) marks the valid
steps; the paper cuts every group to a common length so the mask is all True there, but padded
groups work too: masked steps leave the step-group statistics and the returns R_i, and get
advantage 0.

Zero-variance groups. When every member of a group has the same value (all trajectories
failed with the same reward, a time step where no one made progress...), the centred values
are 0 but floating-point rounding can leave them at 1e-17 and dividing by a std of 1e-17
would blow them up to +-1. So statistics are computed in float64 and a group is called flat
when its std <= ``tol * max(1, max |value|)``; flat groups get advantage exactly 0 (a
``torch.where``, not a division by a clamped std), never NaN or inf. A step group with fewer
than 2 valid members has no unbiased std and is treated as flat too.
"""
from __future__ import annotations

import torch

#: Relative tolerance under which a group's std counts as zero (see module docstring).
FLAT_TOL = 1e-6


def _check_group(rewards: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Validate (N, M) rewards and return a boolean (N, M) mask."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (N trajectories, M steps), got shape {tuple(rewards.shape)}; "
                         "add a leading group dimension for a single trajectory set")
    if rewards.shape[0] < 2:
        raise ValueError(f"group-relative advantages need N >= 2 trajectories per group, got N={rewards.shape[0]}; "
                         "sample more trajectories per group (the paper uses N=4)")
    if mask is None:
        return torch.ones_like(rewards, dtype=torch.bool)
    if mask.shape != rewards.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != rewards shape {tuple(rewards.shape)}; "
                         "pass one boolean per (trajectory, step)")
    return mask.bool()


def _float_dtype(t: torch.Tensor) -> torch.dtype:
    """Advantages keep a float input's dtype; integer rewards (e.g. 0/1 success) give floats."""
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


def _returns(rewards: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """R_i = sum of the valid R_{i,t}, in float64 so equal reward rows give equal returns. (N, 1)"""
    return torch.where(valid, rewards.double(), 0.0).sum(1, keepdim=True)


def group_normalise(values: torch.Tensor, valid: torch.Tensor, tol: float = FLAT_TOL):
    """(x - mean) / unbiased std over dim 0 (the group), per column; flat columns -> 0.

    values, valid: (N, K). Returns (advantages (N, K), flat (K,) bool).
    """
    x = torch.where(valid, values.double(), 0.0)                 # (N, K) masked members -> 0
    n = valid.sum(0).double()                                    # (K,) group sizes
    mean = x.sum(0) / n.clamp(min=1)                             # (K,)
    centred = (x - mean) * valid                                 # (N, K)
    std = (centred.pow(2).sum(0) / (n - 1).clamp(min=1)).sqrt()  # (K,) Bessel-corrected (N-1)
    scale = x.abs().amax(0).clamp(min=1.0)                       # (K,) relative tolerance
    flat = (std <= tol * scale) | (n < 2)                        # (K,)
    safe_std = torch.where(flat, torch.ones_like(std), std)
    adv = torch.where(flat | ~valid, torch.zeros_like(centred), centred / safe_std)
    return adv.to(_float_dtype(values)), flat


def step_advantages(rewards: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Step-level relative advantage A_{i,t} (Eq. 2).

    The steps at the same time t of the N trajectories form a group:
    A_{i,t} = (R_{i,t} - mean_i R_{i,t}) / std_i R_{i,t}, std with N-1 (unbiased).
    rewards, mask: (N, M). Returns (N, M); 0 on flat time steps and masked steps.
    """
    valid = _check_group(rewards, mask)
    adv, _ = group_normalise(rewards, valid)
    return adv                                                   # (N, M)


def trajectory_advantages(rewards: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Trajectory-level relative advantage A_i (Eq. 3) of the returns R_i = sum_t R_{i,t}.

    The N trajectories form one group: A_i = (R_i - mean R) / std R, std with N-1.
    rewards, mask: (N, M). Returns (N,); all 0 when every return is equal.
    """
    valid = _check_group(rewards, mask)
    returns = _returns(rewards, valid)                           # (N, 1) R_i over valid steps
    adv, _ = group_normalise(returns, torch.ones_like(returns, dtype=torch.bool))
    return adv[:, 0].to(_float_dtype(rewards))                   # (N,)


def check_alphas(alpha1: float, alpha2: float) -> None:
    """Raise one clear ValueError unless alpha1, alpha2 >= 0 and alpha1 + alpha2 = 1."""
    if alpha1 < 0 or alpha2 < 0 or abs(alpha1 + alpha2 - 1.0) > 1e-6:
        raise ValueError(f"TGRPO weights must satisfy alpha1, alpha2 >= 0 and alpha1 + alpha2 = 1 (Eq. 4), "
                         f"got alpha1={alpha1}, alpha2={alpha2}; e.g. use alpha2 = 1 - alpha1 "
                         "(the paper's best is alpha1=0.3, alpha2=0.7)")


def fused_advantages(rewards: torch.Tensor, alpha1: float, alpha2: float,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fused advantage Adv_{i,t} = alpha1 A_{i,t} + alpha2 A_i (Eq. 4).

    alpha1 weighs the step level (Eq. 2), alpha2 the trajectory level (Eq. 3);
    (1, 0) and (0, 1) are the paper's ablations. rewards, mask: (N, M). Returns (N, M),
    0 on masked steps.
    """
    check_alphas(alpha1, alpha2)
    valid = _check_group(rewards, mask)
    a_step = step_advantages(rewards, valid)                     # (N, M)
    a_traj = trajectory_advantages(rewards, valid)               # (N,)
    fused = alpha1 * a_step + alpha2 * a_traj[:, None]           # (N, M)
    return torch.where(valid, fused, torch.zeros_like(fused))


def zero_variance_fraction(rewards: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """How much of a group carries no learning signal, for logging.

    Returns {"step_groups": fraction of time steps whose step group is flat (Eq. 2 gives 0
    there), "trajectory_group": 1.0 if all returns R_i are equal (Eq. 3 gives 0) else 0.0}.
    """
    valid = _check_group(rewards, mask)
    _, step_flat = group_normalise(rewards, valid)               # (M,)
    returns = _returns(rewards, valid)                           # (N, 1)
    _, traj_flat = group_normalise(returns, torch.ones_like(returns, dtype=torch.bool))
    has_steps = valid.any(0)                                     # (M,) columns with any valid step
    frac = (step_flat & has_steps).sum().item() / max(int(has_steps.sum().item()), 1)
    return {"step_groups": float(frac), "trajectory_group": float(traj_flat.item())}
