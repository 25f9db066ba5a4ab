"""Eq. 5, 6, 7 against numbers worked out by hand."""
import math

import pytest
import torch

from tgrpo_lib.algorithm.loss import kl_estimator, tgrpo_loss

LN = math.log


def _clip_case():
    """N=2, M=2, every step at ratio 1.5 or 0.5 (outside 1 +- 0.2).

    step (ratio, A) -> min(rho A, clip(rho) A):
      (1.5, +1) -> min(1.5, 1.2) =  1.2  clipped, no gradient
      (0.5, +1) -> min(0.5, 0.8) =  0.5  unclipped: the pessimistic side keeps its gradient
      (1.5, -1) -> min(-1.5, -1.2) = -1.5 unclipped
      (0.5, -1) -> min(-0.5, -0.8) = -0.8 clipped, no gradient
    per trajectory: (1.2 + 0.5)/2 = 0.85, (-1.5 - 0.8)/2 = -1.15; J = (0.85 - 1.15)/2 = -0.15
    """
    old = torch.tensor([[-2.0, -2.0], [-2.0, -2.0]])
    logp = (old + torch.tensor([[LN(1.5), LN(0.5)], [LN(1.5), LN(0.5)]])).requires_grad_()
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    return logp, old, adv


def test_clipped_surrogate_by_hand():
    logp, old, adv = _clip_case()
    loss, stats = tgrpo_loss(logp, old, logp.detach(), adv, clip_eps=0.2, beta=0.04)  # ref == logp: KL 0
    torch.testing.assert_close(loss, torch.tensor(0.15))
    loss.backward()
    # d loss / d logp = -(1/N)(1/|o_i|) rho A on unclipped steps: -(1/4)(0.5)(+1), -(1/4)(1.5)(-1)
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.125], [0.375, 0.0]]))
    assert stats["clip_fraction"] == 1.0
    assert stats["ratio_mean"] == pytest.approx(1.0)
    assert stats["kl_mean"] == 0.0
    assert stats["loss"] == pytest.approx(0.15)
    assert stats["policy_objective"] == pytest.approx(-0.15)


def test_ratio_inside_clip_range_is_plain_policy_gradient():
    # rho = 1.1 with A = 2: objective 2.2, gradient -rho A / (N M) = -2.2 / 1
    old = torch.tensor([[0.0]])
    logp = torch.tensor([[LN(1.1)]], requires_grad=True)
    loss, stats = tgrpo_loss(logp, old, logp.detach(), torch.tensor([[2.0]]))
    torch.testing.assert_close(loss, torch.tensor(-2.2))
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2.2]]))
    assert stats["clip_fraction"] == 0.0


def test_kl_estimator_eq7_by_hand():
    # ref/pi = 2: 2 - ln 2 - 1 = 0.306853; ref/pi = 1/2: 0.5 + ln 2 - 1 = 0.193147; equal: 0
    logp = torch.zeros(3)
    ref = torch.tensor([LN(2.0), -LN(2.0), 0.0])
    torch.testing.assert_close(kl_estimator(logp, ref), torch.tensor([1 - LN(2.0), LN(2.0) - 0.5, 0.0]))


def test_kl_term_in_loss_by_hand():
    # A = 0 and rho = 1, so the loss is beta * mean KL:
    # row 0 KLs 0.306853, 0.193147 -> mean 0.25; row 1 KLs 0, 0 -> mean 0; J = -0.04 * 0.125 = -0.005
    logp = torch.zeros(2, 2, requires_grad=True)
    ref = torch.tensor([[LN(2.0), -LN(2.0)], [0.0, 0.0]])
    loss, stats = tgrpo_loss(logp, torch.zeros(2, 2), ref, torch.zeros(2, 2), beta=0.04)
    torch.testing.assert_close(loss, torch.tensor(0.005))
    assert stats["kl_mean"] == pytest.approx(0.125)
    assert stats["zero_adv_fraction"] == 1.0
    loss.backward()
    # d KL / d logp = 1 - ref/pi: 1 - 2 = -1, 1 - 0.5 = 0.5; scaled by beta / (N M) = 0.01
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.01, 0.005], [0.0, 0.0]]))


def test_mask_uses_per_trajectory_length_and_ignores_padding():
    # row 0 has 2 valid steps, row 1 has 1; padding holds inf/nan that must not leak.
    # rho = 1 everywhere: J = ((1 + 3)/2 + 5/1)/2 = 3.5
    inf, nan = float("inf"), float("nan")
    logp = torch.tensor([[0.0, 0.0, nan], [0.0, -inf, nan]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 7.0], [0.0, inf, 0.0]])
    adv = torch.tensor([[1.0, 3.0, nan], [5.0, 100.0, 100.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss, stats = tgrpo_loss(logp, old, old, adv, mask=mask)
    torch.testing.assert_close(loss, torch.tensor(-3.5))
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert (logp.grad[~mask] == 0).all()
    assert stats["ratio_mean"] == 1.0 and stats["clip_fraction"] == 0.0


def _random_batch(seed=0, n=3, m=6):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(n, m, generator=g) * 3
    logp = (old + 0.4 * torch.randn(n, m, generator=g)).requires_grad_()
    ref = old + 0.3 * torch.randn(n, m, generator=g)
    adv = torch.randn(n, m, generator=g)
    mask = torch.arange(m)[None, :] < torch.tensor([[6], [4], [5]])
    return logp, old, ref, adv, mask


def test_minibatch_losses_sum_to_full_batch_loss():
    logp, old, ref, adv, mask = _random_batch()
    full, _ = tgrpo_loss(logp, old, ref, adv, mask=mask)
    full_grad, = torch.autograd.grad(full, logp)
    lengths = mask.sum(1)
    # split the valid steps into 3 random minibatches, each given as a mask over the full tensors
    chunk = torch.randint(0, 3, mask.shape, generator=torch.Generator().manual_seed(1))
    parts = [tgrpo_loss(logp, old, ref, adv, mask=mask & (chunk == k), traj_lengths=lengths)[0] for k in range(3)]
    total = sum(parts)
    torch.testing.assert_close(total, full)
    torch.testing.assert_close(torch.autograd.grad(total, logp)[0], full_grad)
    # and as column slices
    cols = sum(tgrpo_loss(logp[:, a:b], old[:, a:b], ref[:, a:b], adv[:, a:b], mask=mask[:, a:b],
                          traj_lengths=lengths)[0] for a, b in [(0, 2), (2, 5), (5, 6)])
    torch.testing.assert_close(cols, full)
    # without traj_lengths each minibatch would renormalise by its own length: not additive
    wrong = sum(tgrpo_loss(logp, old, ref, adv, mask=mask & (chunk == k))[0] for k in range(3))
    assert not torch.allclose(wrong, full)


def test_gradients_finite_and_nonzero():
    logp, old, ref, adv, mask = _random_batch(seed=3)
    loss, stats = tgrpo_loss(logp, old, ref, adv, mask=mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert (logp.grad[mask] != 0).any()
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())


def test_zero_variance_fraction_passed_through():
    logp, old, ref, adv, mask = _random_batch()
    adv = torch.where(torch.arange(6) < 3, adv, torch.zeros_like(adv))  # half the steps carry no signal
    _, stats = tgrpo_loss(logp, old, ref, adv, zero_variance_fraction=0.25)
    assert stats["zero_variance_fraction"] == 0.25
    assert stats["zero_adv_fraction"] == pytest.approx(0.5)
