"""Every variant's update on a synthetic group rollout, without the simulator: the LoRA weights
move, and on a group with one clearly better trajectory that trajectory becomes more likely."""
import dataclasses

import numpy as np
import pytest
import torch

from tgrpo_lib.algorithm.updates import group_skipped, preference_update, sequence_log_probs, update
from tgrpo_lib.algorithm.variants import ALGOS, VARIANTS
from tgrpo_lib.envs import GroupRollout
from tgrpo_lib.infra.config import config_for
from tgrpo_lib.policy import PolicyConfig, make_policy
from tgrpo_lib.policy.testing import synthetic_obs

INSTR = "pick up the alphabet soup and place it in the basket"
N, T = 4, 12


@pytest.fixture(scope="module")
def sampled():
    """A tiny VLA in RL mode and a group of N sampled trajectories of T steps on synthetic frames."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    policy = make_policy(PolicyConfig(use_wrist=False, image_size=64, pretrained_image_encoder=False, seed=1))
    policy.set_mode("rl")
    frames = synthetic_obs(batch=N * T, size=64, wrist=False, seed=2)
    agentview = frames["agentview"].reshape(N, T, 64, 64, 3)
    proprio = frames["proprio"].reshape(N, T, 8)
    tokens, logp, feats, actions = [], [], [], []
    for t in range(T):
        out = policy.act({"agentview": agentview[:, t], "proprio": proprio[:, t]}, INSTR, temperature=1.0)
        tokens.append(out.tokens), logp.append(out.log_prob), feats.append(out.features), actions.append(out.env_actions)
    stack = lambda xs: np.stack(xs, axis=1)  # noqa: E731  (N, T, ...)
    success = np.zeros((N, T), bool)
    success[0, -1] = True  # trajectory 0 is the clearly better one: it succeeds, the others fail
    rollout = GroupRollout(obs={"agentview": agentview, "proprio": proprio}, states={}, actions=stack(actions),
                           success=success, extras={"tokens": stack(tokens), "log_prob": stack(logp),
                                                    "features": stack(feats)}, init_state_index=0)
    return policy, rollout


def _rewards(algo: str) -> np.ndarray:
    if VARIANTS[algo].reward == "sparse":
        r = np.zeros((N, T))
        r[0, -1] = 1.0
        return r
    r = np.tile(np.linspace(0.0, 1.0, T), (N, 1)) * np.array([[3.0], [1.0], [0.5], [0.0]])  # dense, 0 best
    return r


def _trajectory_log_prob(policy, rollout) -> torch.Tensor:
    with torch.no_grad():
        return sequence_log_probs(policy, rollout, INSTR, np.arange(T)).sum(1)  # (N,)


@pytest.mark.parametrize("algo", ALGOS)
def test_update_moves_lora_and_raises_the_better_trajectory(sampled, algo):
    policy, rollout = sampled
    lora = policy.trainable_parameters()
    start = [p.detach().clone() for p in lora]
    cfg = config_for(algo=algo, lr=3e-3, epochs=3, minibatches=2)
    optimizer = torch.optim.AdamW(lora, lr=cfg.lr)
    before = _trajectory_log_prob(policy, rollout)
    try:
        stats = update(cfg, policy, optimizer, rollout, _rewards(algo), INSTR)
        after = _trajectory_log_prob(policy, rollout)
        moved = max(float((p.detach() - s).abs().max()) for p, s in zip(lora, start))
    finally:
        with torch.no_grad():  # the next variant starts from the same policy
            for p, s in zip(lora, start):
                p.copy_(s)
    assert all(np.isfinite(v) for v in stats.values()), stats
    assert moved > 0, f"{algo}: the LoRA weights did not change"
    assert after[0] > before[0], f"{algo}: the better trajectory's log-prob fell ({before[0]:.3f} -> {after[0]:.3f})"
    rest = (after[1:] - before[1:]).mean()
    assert after[0] - before[0] > rest, f"{algo}: the better trajectory gained less than the others"


@pytest.mark.parametrize("algo", [a for a in ALGOS if VARIANTS[a].is_preference])
def test_a_group_without_preference_takes_no_step(sampled, algo):
    policy, rollout = sampled
    tied = dataclasses.replace(rollout, success=np.zeros((N, T), bool))
    lora = policy.trainable_parameters()
    start = [p.detach().clone() for p in lora]
    cfg = config_for(algo=algo)
    stats = preference_update(cfg, policy, torch.optim.AdamW(lora, lr=1e-2), tied, np.ones((N, T)), INSTR)
    assert stats["losses/n_pairs"] == 0.0
    assert all(torch.equal(p, s) for p, s in zip(lora, start))


def test_clipped_update_takes_epochs_times_minibatches_steps(sampled):
    policy, rollout = sampled
    lora = policy.trainable_parameters()
    start = [p.detach().clone() for p in lora]
    optimizer = torch.optim.AdamW(lora, lr=1e-4)
    try:
        update(config_for(epochs=2, minibatches=3), policy, optimizer, rollout, _rewards("tgrpo"), INSTR)
        assert {int(s["step"]) for s in optimizer.state_dict()["state"].values()} == {6}
    finally:
        with torch.no_grad():
            for p, s in zip(lora, start):
                p.copy_(s)


def _update_once(policy, rollout, algo: str, **changes) -> list[torch.Tensor]:
    """The LoRA weights after one seeded update from the fixture's policy (restored afterwards)."""
    lora = policy.trainable_parameters()
    start = [p.detach().clone() for p in lora]
    torch.manual_seed(5)
    try:
        update(config_for(algo=algo, lr=3e-3, epochs=2, minibatches=2, **changes), policy, torch.optim.AdamW(lora, lr=3e-3),
               rollout, _rewards(algo), INSTR)
        return [p.detach().clone() for p in lora]
    finally:
        with torch.no_grad():
            for p, s in zip(lora, start):
                p.copy_(s)


@pytest.mark.parametrize("algo", ["tgrpo", "dpo"])
def test_padded_steps_of_a_finished_trajectory_do_not_train(sampled, algo):
    """stop="each": what a padded step holds (here other tokens) changes nothing; the valid steps do."""
    policy, rollout = sampled
    valid = np.ones((N, T), bool)
    valid[0, 8:] = False  # trajectory 0 succeeded after 8 steps and was padded
    padded = dataclasses.replace(rollout, valid=valid)
    tokens = rollout.extras["tokens"].copy()
    tokens[0, 8:] = tokens[1, 8:]  # other valid ids
    other_pad = dataclasses.replace(padded, extras={**rollout.extras, "tokens": tokens})
    a, b = _update_once(policy, padded, algo), _update_once(policy, other_pad, algo)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    tokens_valid = rollout.extras["tokens"].copy()
    tokens_valid[0, :8] = tokens_valid[1, :8]
    c = _update_once(policy, dataclasses.replace(padded, extras={**rollout.extras, "tokens": tokens_valid}), algo)
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("all_succeed", [True, False])
def test_skip_groups_no_outcome_contrast_leaves_a_uniform_group_alone(sampled, all_succeed):
    policy, rollout = sampled
    uniform = dataclasses.replace(rollout, success=np.full((N, T), all_succeed))
    lora = policy.trainable_parameters()
    start = [p.detach().clone() for p in lora]
    stats = update(config_for(skip_groups="no_outcome_contrast"), policy, torch.optim.AdamW(lora, lr=1e-2), uniform,
                   _rewards("tgrpo"), INSTR)
    assert stats == {"update/skipped": 1.0}
    assert all(torch.equal(p, s) for p, s in zip(lora, start))


def test_skip_groups_no_return_contrast_trains_an_all_fail_group_with_dense_returns(sampled):
    policy, rollout = sampled
    all_fail = dataclasses.replace(rollout, success=np.zeros((N, T), bool))
    rewards = _rewards("tgrpo")
    assert np.ptp(rewards.sum(1)) > 0  # the dense returns differ although every trajectory failed
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    lora = policy.trainable_parameters()
    stats = update(config_for(skip_groups="no_return_contrast"), policy, torch.optim.AdamW(lora, lr=1e-2), all_fail,
                   rewards, INSTR)
    assert stats["update/skipped"] == 0.0
    assert not all(torch.equal(a, b) for a, b in zip(policy.trainable_parameters(), before))


def test_group_skipped_rules_by_hand():
    mixed, none_, all_ = np.array([True, False]), np.zeros(2, bool), np.ones(2, bool)
    dense, flat = np.array([3.0, 1.5]), np.array([2.0, 2.0])
    assert [group_skipped("no_outcome_contrast", s, dense) for s in (mixed, none_, all_)] == [False, True, True]
    # the sparse return is the outcome: the return rule skips the same groups as the outcome rule
    assert [group_skipped("no_return_contrast", s, s.astype(float)) for s in (mixed, none_, all_)] == [False, True, True]
    assert group_skipped("no_return_contrast", none_, dense) is False and group_skipped("no_return_contrast", none_, flat)
    assert [group_skipped("all_success", s, dense) for s in (mixed, none_, all_)] == [False, False, True]
    assert not any(group_skipped("none", s, flat) for s in (mixed, none_, all_))
    with pytest.raises(ValueError, match="skip_groups"):
        group_skipped("uniform", mixed, dense)


def test_skip_groups_still_trains_a_mixed_group(sampled):
    policy, rollout = sampled  # trajectory 0 succeeds, the others fail
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    after = _update_once(policy, rollout, "tgrpo", skip_groups="no_outcome_contrast")
    assert not all(torch.equal(a, b) for a, b in zip(after, before))
