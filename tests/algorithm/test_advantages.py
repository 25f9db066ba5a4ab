"""Eq. 2, 3, 4 against numbers worked out by hand."""
import math

import pytest
import torch

from tgrpo_lib.algorithm.advantages import (fused_advantages, step_advantages, trajectory_advantages,
                                            zero_variance_fraction)

# N=3 trajectories x M=3 steps.
#   t=0: 1, 3, 2 -> mean 2, deviations -1, 1, 0, unbiased var (1+1+0)/2 = 1 -> A = -1, 1, 0
#   t=1: 0, 0, 0 -> flat -> A = 0 exactly
#   t=2: 2, 2, 5 -> mean 3, deviations -1, -1, 2, var (1+1+4)/2 = 3 -> A = -1/sqrt3, -1/sqrt3, 2/sqrt3
#   R_i = 3, 5, 7 -> mean 5, var (4+0+4)/2 = 4, std 2 -> A_i = -1, 0, 1
REWARDS = torch.tensor([[1.0, 0.0, 2.0],
                        [3.0, 0.0, 2.0],
                        [2.0, 0.0, 5.0]])
S3 = math.sqrt(3.0)


def test_step_advantages_eq2_by_hand():
    expected = torch.tensor([[-1.0, 0.0, -1 / S3],
                             [1.0, 0.0, -1 / S3],
                             [0.0, 0.0, 2 / S3]])
    torch.testing.assert_close(step_advantages(REWARDS), expected)


def test_step_advantages_use_unbiased_std():
    # N=2, t=0: 0, 1 -> deviations -0.5, 0.5; var with N-1: 0.5 -> A = -+0.5/sqrt(0.5) = -+0.7071
    # (population std would give -+1).
    adv = step_advantages(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    torch.testing.assert_close(adv, torch.tensor([[-1 / math.sqrt(2), 0.0], [1 / math.sqrt(2), 0.0]]))


def test_trajectory_advantages_eq3_by_hand():
    torch.testing.assert_close(trajectory_advantages(REWARDS), torch.tensor([-1.0, 0.0, 1.0]))


def test_fused_advantages_eq4_by_hand():
    # Adv = 0.3 A_{i,t} + 0.7 A_i; e.g. row 0, t=2: 0.3 * -1/sqrt3 + 0.7 * -1 = -0.87321
    expected = torch.tensor([[-1.0, -0.7, -0.3 / S3 - 0.7],
                             [0.3, 0.0, -0.3 / S3],
                             [0.7, 0.7, 0.6 / S3 + 0.7]])
    torch.testing.assert_close(fused_advantages(REWARDS, 0.3, 0.7), expected)


def test_fused_ablations_reduce_to_one_level():
    torch.testing.assert_close(fused_advantages(REWARDS, 1.0, 0.0), step_advantages(REWARDS))
    torch.testing.assert_close(fused_advantages(REWARDS, 0.0, 1.0),
                               trajectory_advantages(REWARDS)[:, None].expand(3, 3))


@pytest.mark.parametrize("value,dtype", [(0.1, torch.float32), (300.1, torch.float32),
                                         (0.0, torch.float64), (1e6 / 3, torch.float64)])
def test_flat_groups_give_exact_zero_not_nan(value, dtype):
    rewards = torch.full((3, 5), value, dtype=dtype)
    for adv in (step_advantages(rewards), trajectory_advantages(rewards),
                fused_advantages(rewards, 0.3, 0.7)):
        assert adv.dtype == dtype
        assert torch.isfinite(adv).all()
        assert (adv == 0).all()
    assert zero_variance_fraction(rewards) == {"step_groups": 1.0, "trajectory_group": 1.0}


def test_flat_column_among_varying_ones_is_exact_zero():
    torch.manual_seed(0)
    rewards = torch.rand(4, 6)
    rewards[:, 2] = 0.7
    adv = step_advantages(rewards)
    assert (adv[:, 2] == 0).all()
    assert (adv[:, [0, 1, 3, 4, 5]] != 0).all()
    # every non-flat column is standardised: mean 0, unbiased std 1
    torch.testing.assert_close(adv[:, [0, 1]].mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(adv[:, [0, 1]].std(0), torch.ones(2))


def test_mask_excludes_padded_steps():
    # t=0: 1, 3, 5 -> mean 3, std 2 -> -1, 0, 1
    # t=1: 2, 4, 0 -> mean 2, std 2 -> 0, 1, -1
    # t=2: only row 0 valid -> no group -> 0 (and the NaN padding never leaks)
    # R = 1+2+9 = 12, 7, 5 -> mean 8, deviations 4, -1, -3, var 26/2 = 13 -> A_i = (4, -1, -3)/sqrt13
    nan = float("nan")
    rewards = torch.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, nan], [5.0, 0.0, nan]])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, False]])
    torch.testing.assert_close(step_advantages(rewards, mask),
                               torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, -1.0, 0.0]]))
    s13 = math.sqrt(13.0)
    torch.testing.assert_close(trajectory_advantages(rewards, mask), torch.tensor([4 / s13, -1 / s13, -3 / s13]))
    fused = fused_advantages(rewards, 0.5, 0.5, mask)
    assert torch.isfinite(fused).all() and (fused[~mask] == 0).all()
    torch.testing.assert_close(fused[0, 2], torch.tensor(0.5 * 4 / s13))  # step part 0, trajectory part kept
    # fraction over time steps that have any valid step: only t=2 is flat -> 1/3
    assert zero_variance_fraction(rewards, mask) == {"step_groups": pytest.approx(1 / 3), "trajectory_group": 0.0}


def test_masked_member_leaves_the_group_statistics():
    # t=0 valid values 1, 3 (100 masked) -> -0.7071, 0.7071, 0
    rewards = torch.tensor([[1.0], [3.0], [100.0]])
    mask = torch.tensor([[True], [True], [False]])
    torch.testing.assert_close(step_advantages(rewards, mask),
                               torch.tensor([[-1 / math.sqrt(2)], [1 / math.sqrt(2)], [0.0]]))


def test_integer_rewards_give_float_advantages():
    adv = trajectory_advantages(torch.tensor([[1, 0], [0, 0]]))
    assert adv.is_floating_point()
    torch.testing.assert_close(adv, torch.tensor([1 / math.sqrt(2), -1 / math.sqrt(2)]))


def test_zero_variance_fraction_by_hand():
    assert zero_variance_fraction(REWARDS) == {"step_groups": pytest.approx(1 / 3), "trajectory_group": 0.0}


@pytest.mark.parametrize("alphas", [(0.5, 0.6), (1.2, -0.2), (-0.1, 1.1), (0.5, 0.5 + 1e-5)])
def test_bad_alphas_raise(alphas):
    with pytest.raises(ValueError, match="alpha1 \\+ alpha2 = 1"):
        fused_advantages(REWARDS, *alphas)


def test_alphas_within_tolerance_are_accepted():
    fused_advantages(REWARDS, 0.5, 0.5 + 5e-7)
    fused_advantages(REWARDS, 0.1 * 3, 0.7)  # 0.30000000000000004 + 0.7


@pytest.mark.parametrize("fn", [step_advantages, trajectory_advantages, zero_variance_fraction,
                                lambda r: fused_advantages(r, 0.3, 0.7)])
def test_single_trajectory_group_raises(fn):
    with pytest.raises(ValueError, match="N >= 2"):
        fn(torch.ones(1, 4))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="N trajectories, M steps"):
        step_advantages(torch.ones(4))
    with pytest.raises(ValueError, match="mask shape"):
        step_advantages(torch.ones(2, 3), torch.ones(2, 2, dtype=torch.bool))
