"""DPO / GRAPE-style trajectory preference losses against numbers worked out by hand."""
import math

import pytest
import torch

from tgrpo_lib.algorithm.preference import dpo_loss, preference_pairs, tpo_loss, trajectory_log_prob


def softplus(x):
    return math.log1p(math.exp(-x))  # -log sigmoid(x)


def test_preference_pairs_success_first_then_return():
    # trajectory 2 succeeded: beats both failures despite the lower return than 1;
    # among the failures 1 (return 3) beats 0 (return 1)
    assert preference_pairs([1.0, 3.0, 2.0], [False, False, True]) == [(1, 0), (2, 0), (2, 1)]


def test_preference_pairs_ties_give_no_pair():
    assert preference_pairs(torch.tensor([1.0, 1.0, 2.0])) == [(2, 0), (2, 1)]
    assert preference_pairs([1.0, 1.0 + 1e-9]) == []
    assert preference_pairs([0.5, 0.5], [True, True]) == []


def test_preference_pairs_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one value per trajectory"):
        preference_pairs([1.0, 2.0], [True])


def test_dpo_loss_by_hand():
    # beta 0.5: chosen reward 0.5 (-1 - -2), rejected reward 0.5 (-3 - -2) = -0.5; margin 1
    # loss = -log sigmoid(1) = log(1 + e^-1) = 0.313262
    # d loss / d logp_chosen = -beta sigmoid(-1) = -0.5 * 0.268941 = -0.134471
    lc = torch.tensor([-1.0], requires_grad=True)
    loss, stats = dpo_loss(lc, torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    torch.testing.assert_close(loss, torch.tensor(softplus(1.0)))
    loss.backward()
    torch.testing.assert_close(lc.grad, torch.tensor([-0.5 / (1 + math.e)]))
    assert stats["reward_accuracy"] == 1.0 and stats["n_pairs"] == 1.0
    assert stats["margin_mean"] == pytest.approx(1.0)
    assert stats["chosen_reward"] == pytest.approx(0.5) and stats["rejected_reward"] == pytest.approx(-0.5)


def test_dpo_loss_is_log2_at_reference():
    x = torch.tensor([-4.0, -7.0])
    loss, stats = dpo_loss(x, x, x, x)
    torch.testing.assert_close(loss, torch.tensor(math.log(2.0)))
    assert stats["reward_accuracy"] == 0.0


def test_trajectory_log_prob_sum_and_mean():
    step = torch.tensor([[-1.0, -2.0, float("nan")], [-3.0, -3.0, -3.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    torch.testing.assert_close(trajectory_log_prob(step, mask), torch.tensor([-3.0, -9.0]))
    torch.testing.assert_close(trajectory_log_prob(step, mask, average=True), torch.tensor([-1.5, -3.0]))


def test_tpo_loss_by_hand():
    # per-step mean log-probs -1, -3, -3 against a reference of -2 -> log-ratios +1, -1, -1
    # returns 2 > 1 > 0 -> pairs (0,1), (0,2), (1,2) with beta=1 margins 2, 2, 0
    # loss = (2 log(1 + e^-2) + log 2) / 3 = 0.315668
    logp = torch.tensor([[-1.0, -1.0], [-2.0, -4.0], [-3.0, -3.0]], requires_grad=True)
    ref = torch.full((3, 2), -2.0)
    loss, stats = tpo_loss(logp, ref, returns=[2.0, 1.0, 0.0], beta=1.0)
    torch.testing.assert_close(loss, torch.tensor((2 * softplus(2.0) + math.log(2.0)) / 3))
    assert stats["n_pairs"] == 3.0 and stats["reward_accuracy"] == pytest.approx(2 / 3)
    loss.backward()
    # d/d logp[0, t]: each of the 2 pairs won by 0 gives -beta sigmoid(-2) / 3 pairs, / 2 steps
    g0 = -2 * (1 / (1 + math.exp(2.0))) / 3 / 2
    torch.testing.assert_close(logp.grad[0], torch.tensor([g0, g0]))


def test_tpo_loss_respects_mask_and_success():
    # row 1's second step is padding: its mean log-prob is -2 (not -3), log-ratio 0;
    # row 1 succeeded so it beats row 0 despite the lower return: margin 0.1 * (0 - 1) = -0.1
    logp = torch.tensor([[-1.0, -1.0], [-2.0, float("nan")]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    loss, stats = tpo_loss(logp, torch.full((2, 2), -2.0), returns=[5.0, 1.0], success=[False, True],
                           mask=mask, beta=0.1)
    torch.testing.assert_close(loss, torch.tensor(softplus(-0.1)))
    loss.backward()
    assert torch.isfinite(logp.grad).all() and logp.grad[1, 1] == 0


def test_tpo_loss_without_preferences_is_zero_with_zero_gradients():
    logp = torch.randn(3, 4, requires_grad=True)
    loss, stats = tpo_loss(logp, torch.zeros(3, 4), returns=[1.0, 1.0, 1.0])
    loss.backward()
    assert loss.item() == 0.0 and stats["n_pairs"] == 0.0
    assert (logp.grad == 0).all()
