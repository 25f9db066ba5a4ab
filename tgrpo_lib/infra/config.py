"""The config tree and a run's identity, in one place.

- ``TrainConfig``: one frozen dataclass per layer, nested (env, policy, reward), validated when
  built (NaN and out-of-range values included), before any directory or simulator exists.
- ``override(cfg, {...})``: the one way to change fields, top-level or nested (``env.max_steps``
  or ``env={"max_steps": 50}``), in one replace per level so coupled fields are never checked
  half-changed; ``alpha1`` alone also sets ``alpha2 = 1 - alpha1`` (``alpha2_for``, Eq. 4).
- ``run_name(cfg)``: the one run-name builder, ``{readable key}__{hash of the config}``, so a
  rerun of the same config finds (and resumes) its run, and any change of config gets a new one.
- ``config_from_dict``: config.json back to the dataclass tree; config.json carries
  ``schema`` = ``CONFIG_SCHEMA``, and a run written under another schema is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import enum
import math
from dataclasses import dataclass, field, fields

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.algorithm.variants import ALGOS, get_variant
from tgrpo_lib.envs.config import STOP_RULES, EnvConfig
from tgrpo_lib.envs.init_states import INIT_STATE_SETS, N_TEST_STATES
from tgrpo_lib.envs.registry import canonical_suite
from tgrpo_lib.infra.checks import check_name, check_number
from tgrpo_lib.policy.config import PolicyConfig
from tgrpo_lib.reward.config import RewardConfig

DEFAULT_POLICY = PolicyConfig(feature_grid=4, use_wrist=False)
"""The CPU default: agentview as a 4 x 4 grid of CNN cells (where the objects are on the floor),
no wrist camera: with it SFT alone solves the task, leaving RL nothing to gain, and a wrist frame
costs about as much again to render. The measurements: docs/history.md, "Starting policy, step by
step" (in "The RL recipe, step by step")."""
DEFAULT_ENV = EnvConfig(cameras=("agentview",))
"""The cameras DEFAULT_POLICY reads (pass ("agentview", "wrist") with ``policy.use_wrist``)."""
N_TASKS = 10  # every LIBERO suite of the paper has 10 tasks
N_STANDARD_STATES = 50
SKIP_GROUPS = ("none", "no_outcome_contrast", "no_return_contrast", "all_success")
DEMO_LAYOUTS = ("sampled", "standard", "any")


def alpha2_for(alpha1: float) -> float:
    """The trajectory-level weight that goes with ``alpha1`` (Eq. 4: alpha1 + alpha2 = 1), rounded so
    that 1 - 0.3 is 0.7, not 0.7000000000000001 (run names and config hashes stay readable)."""
    return round(1.0 - float(alpha1), 10)


def check_cameras(policy: PolicyConfig, env: EnvConfig, who: str = "policy.use_wrist=True needs") -> None:
    """A policy that reads the wrist camera gets an env that renders it (one line naming the fix)."""
    if policy.use_wrist and "wrist" not in env.cameras:
        raise ValueError(f"{who} the wrist camera: pass env={{'cameras': ('agentview', 'wrist')}}.")


# ------------------------------------------------------------------------------ the training config
@dataclass(frozen=True)
class TrainConfig:
    """One online RL run on one task (the paper fine-tunes one task at a time)."""

    suite: str = "libero_object"
    """LIBERO suite (aliases spatial|object|goal|long are turned into the canonical name)."""
    task_id: int = 0
    """Task index inside the suite, 0..9."""
    algo: str = "tgrpo"
    """Algorithm variant, one of ``variants.ALGOS`` (see that table)."""
    alpha1: float = 0.3
    """Weight of the step-level advantage (Eq. 4); the paper's best is 0.3."""
    alpha2: float = 0.7
    """Weight of the trajectory-level advantage (Eq. 4); alpha1 + alpha2 must be 1 (``override``
    with alpha1 alone sets it: ``alpha2_for``)."""
    group_size: int = 4
    """N, trajectories sampled in parallel from one init state (paper: 4)."""
    iterations: int = 50
    """Online iterations: one group rollout + K optimisation epochs each. 50 = one pass over the 50
    standard init states, the length the RL recipe was chosen at (docs/history.md, "The RL recipe,
    step by step"; experiments/rl_recipe/README.md)."""
    epochs: int = 2
    """K, optimisation epochs over each group (pi_old fixed within the iteration)."""
    minibatches: int = 4
    """AdamW steps per epoch. 1: one step on exactly the Eq. 6 objective of the whole group.
    M > 1: the group's time steps are shuffled into M minibatches (all N rows each), one step
    per minibatch with the loss averaged over its steps - PPO's recipe, more movement per
    (expensive) rollout; pi_old stays the rollout policy, so the clip bounds the drift. M = 1
    barely moved the policy away from its start (docs/history.md, "The RL recipe, step by step").
    dpo / tpo score whole trajectories and take one step per epoch whatever M is."""
    minibatch_steps: int = 64
    """Time steps per forward/backward chunk (all N rows each); gradients are accumulated over
    chunks, so each minibatch is one AdamW step on exactly its objective."""
    lr: float = 1e-4
    """AdamW learning rate on the LoRA parameters. Paper (OpenVLA-7B LoRA): 1e-5. The tiny VLA's
    rank-8 LoRA on a 1M-parameter head needs a larger step to move within 50 iterations; 1e-4
    rather than 3e-4, under which the KL to the reference grew and held-out success fell
    (docs/history.md, "The RL recipe, step by step"; experiments/rl_recipe/README.md)."""
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
    temperature: float = 0.5
    """Sampling temperature during rollouts (1.0 = sampling the policy itself; the loss's log-probs
    are always at 1.0). 0.5 because success is measured greedily: at T = 1 the groups sample a
    policy far from the greedy one, and training it lowered greedy success; at 0.5 it rose
    (docs/history.md, "The RL recipe, step by step"; experiments/rl_recipe/README.md)."""
    group_stop: str = "each"
    """When a group's rollout ends. "group": the paper's rule, all N stop at the first success,
    so the others are cut (counted as failures) wherever they are. "each": every trajectory runs
    to its own success or the step budget; a success's remaining steps repeat its final state
    (absorbing: the stage reward keeps its top value, no action is trained there). "each" because
    with a policy that succeeds at the expert's pace the paper's rule cuts the near-successes of a
    group, which the advantages then push down; with "each" the dense return ranks every success
    above every failure of its group. Alone it did not lift greedy success; with the rest of the
    recipe it did (docs/history.md, "The RL recipe, step by step")."""
    skip_groups: str = "no_outcome_contrast"
    """Which groups take no update step (the filter of DAPO's dynamic sampling, without
    resampling: the iteration's env steps are spent either way):
    "none"; "no_outcome_contrast": all N succeed or all fail (the outcome says nothing; the
    default, as before this option existed); "no_return_contrast": the N returns are all equal
    (for the sparse reward the same groups as the outcome rule; a dense reward still trains on an
    all-fail group whose trajectories got different distances); "all_success". The outcome rule
    hides exactly the all-fail groups where a dense reward could teach what the success bit cannot:
    compare rewards under "no_return_contrast" (experiments/dense_vs_sparse)."""
    env_step_budget: int | None = None
    """Stop once the run has taken this many env steps (the iteration that crosses it is
    finished), or after ``iterations``, whichever comes first; None: ``iterations`` only. Gives
    arms equal samples where their episodes end at different lengths."""
    train_init_states: str = "standard"
    """Init states cycled during training: "standard" (LIBERO's 50, as the paper) or "heldout".
    Never "test": the test layouts are only evaluated on."""
    eval_interval: int = 10
    """Evaluate every this many iterations (0 = only before and after training)."""
    eval_episodes: int = 10
    """Episodes per evaluation during training (standard init states, greedy actions)."""
    final_eval_episodes: int = 50
    """Episodes of the before/after evaluation on the standard and the held-out init states."""
    heldout_eval_episodes: int | None = None
    """Held-out episodes of the before/after evaluation when they should differ from
    ``final_eval_episodes`` (None: the same number). ``make run`` uses 50, as for the standard states."""
    test_eval_episodes: int | None = None
    """Episodes of the before/after evaluation on the untouched ``test`` layouts, the states nothing
    is trained or chosen on (0: none; at most 100, the set's size). None: as many as
    ``final_eval_episodes``, at most 100 (the default 50: the first 50 layouts, so ``make run``
    fits 20 minutes on 2 cores, docs/performance.md); the dense-vs-sparse study evaluates all 100.
    Runs saved under the earlier rule (None: twice ``final_eval_episodes``) keep their counts: a
    resumed run evaluates "after" on as many layouts as its "before"."""
    video_episodes: int = 1
    """Evaluation episodes saved as mp4 at each evaluation (0: none; the first episode otherwise)."""
    init_checkpoint: str | None = None
    """Policy directory to start from (the SFT checkpoint); None builds a fresh policy."""
    seed: int = 0
    """Seeds python/numpy/torch once at the start; recorded in the run."""
    run_name: str | None = None
    """Run directory name under outputs/train/; None = ``run_name(cfg)``, derived from the config."""
    checkpoint_interval: int = 1
    """Save model + optimiser + RNG every this many iterations (a killed run resumes from it)."""
    env: EnvConfig = field(default_factory=lambda: DEFAULT_ENV)
    policy: PolicyConfig = field(default_factory=lambda: DEFAULT_POLICY)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def __post_init__(self):
        object.__setattr__(self, "suite", canonical_suite(self.suite))
        get_variant(self.algo)
        for name in ("alpha1", "alpha2"):
            check_number(name, getattr(self, name), 0.0, 1.0)
        if abs(self.alpha1 + self.alpha2 - 1.0) > 1e-6:
            raise ValueError(f"alpha1 + alpha2 must be 1 (Eq. 4), got alpha1={self.alpha1}, alpha2={self.alpha2}; "
                             "use alpha2 = 1 - alpha1 (the paper's best is alpha1=0.3, alpha2=0.7).")
        check_number("task_id", self.task_id, 0, N_TASKS - 1, integer=True)
        if not isinstance(self.group_size, int) or self.group_size < 2:
            raise ValueError(f"group_size={self.group_size!r}: a group needs N >= 2 trajectories.")
        for name, low in (("iterations", 0), ("epochs", 1), ("minibatches", 1), ("minibatch_steps", 1),
                          ("eval_interval", 0), ("eval_episodes", 0), ("video_episodes", 0),
                          ("checkpoint_interval", 1), ("seed", 0)):
            check_number(name, getattr(self, name), low, integer=True)
        check_number("final_eval_episodes", self.final_eval_episodes, 1, N_STANDARD_STATES, integer=True)
        check_number("eval_episodes", self.eval_episodes, 0, N_STANDARD_STATES, integer=True)
        if self.heldout_eval_episodes is not None:
            check_number("heldout_eval_episodes", self.heldout_eval_episodes, 1, integer=True)
        for name, low, high, low_open in (("lr", 0.0, 1.0, True), ("weight_decay", 0.0, None, False),
                                          ("clip_eps", 0.0, 1.0, True), ("beta", 0.0, None, False),
                                          ("dpo_beta", 0.0, None, True), ("max_grad_norm", 0.0, None, True),
                                          ("temperature", 0.0, None, True)):
            check_number(name, getattr(self, name), low, high, low_open=low_open)
        if self.group_stop not in STOP_RULES:
            raise ValueError(f"group_stop={self.group_stop!r}: pass 'group' (the paper's stop rule) or 'each'.")
        if self.skip_groups not in SKIP_GROUPS:
            raise ValueError(f"skip_groups={self.skip_groups!r}: pass one of {SKIP_GROUPS}.")
        if self.env_step_budget is not None:
            check_number("env_step_budget", self.env_step_budget, 1, integer=True)
        if self.test_eval_episodes is not None:
            check_number("test_eval_episodes", self.test_eval_episodes, 0, N_TEST_STATES, integer=True)
        if self.train_init_states not in ("standard", "heldout"):
            raise ValueError(f"train_init_states={self.train_init_states!r}: pass 'standard' or 'heldout'.")
        if self.run_name is not None:
            check_name("run_name", self.run_name)
        check_cameras(self.policy, self.env)

    @property
    def advantage_weights(self) -> tuple[float, float]:
        """(alpha1, alpha2) actually used by ``algo`` (ablations override the configured pair)."""
        return get_variant(self.algo).advantage_weights(self.alpha1, self.alpha2)

    @property
    def name_key(self) -> str:
        """Readable part of the run name."""
        return f"{self.suite}-{self.task_id}__{self.algo}__a{self.advantage_weights[0]:g}__N{self.group_size}__s{self.seed}"

    @property
    def heldout_episodes(self) -> int:
        return self.heldout_eval_episodes or self.final_eval_episodes

    @property
    def test_episodes(self) -> int:
        """Test layouts evaluated before and after (0: none)."""
        if self.test_eval_episodes is not None:
            return self.test_eval_episodes
        return min(N_TEST_STATES, self.final_eval_episodes)


# ------------------------------------------------------------------------------ the SFT config
@dataclass(frozen=True)
class SFTConfig:
    """Behaviour cloning of the tiny VLA on demonstrations of one task or a whole suite."""

    suite: str = "libero_object"
    """LIBERO suite (aliases spatial|object|goal|long)."""
    task_ids: tuple[int, ...] | None = (0,)
    """Tasks to train on; None = the whole suite (one multi-task policy)."""
    demos_root: str | None = None
    """Directory with <suite>/task_<id>/demos.h5 (default outputs/demos)."""
    max_demos_per_task: int | None = None
    """Use at most this many demonstrations per task (None = all)."""
    demo_layouts: str = "sampled"
    """Scenes the demonstrations must come from: "sampled" (one fresh training layout each, seeds
    disjoint from the held-out ones, so both evaluation sets are unseen) or "standard" (LIBERO's
    50 evaluation states, cycled). Demos of the other kind are refused; "any" takes what is there
    (official LIBERO files)."""
    epochs: int = 30
    """Passes over the training frames."""
    batch_size: int = 256
    """Frames per AdamW step."""
    lr: float = 1e-3
    """AdamW learning rate (full small transformer; encoders stay frozen)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    val_fraction: float = 0.1
    """Share of demonstrations held out to report a validation loss."""
    eval_episodes: int = 50
    """Episodes per task and init-state set after training (0 = skip evaluation)."""
    eval_init_sets: tuple[str, ...] = ("standard", "heldout")
    """Init-state sets evaluated: LIBERO's 50 standard states and never-seen held-out ones."""
    eval_envs: int = 4
    """Environments stepping in parallel during evaluation."""
    seed: int = 0
    """Seeds python/numpy/torch; recorded in the run."""
    run_name: str | None = None
    """Directory name under outputs/sft/ (None: ``config.run_name(cfg)``, derived from the config)."""
    env: EnvConfig = field(default_factory=lambda: DEFAULT_ENV)
    policy: PolicyConfig = field(default_factory=lambda: DEFAULT_POLICY)

    def __post_init__(self):
        object.__setattr__(self, "suite", canonical_suite(self.suite))
        if self.task_ids is not None:
            object.__setattr__(self, "task_ids", tuple(int(t) for t in self.task_ids))
        object.__setattr__(self, "eval_init_sets", tuple(self.eval_init_sets))
        for t in self.task_ids or ():
            check_number("task id", t, 0, N_TASKS - 1, integer=True)
        for name, low in (("epochs", 1), ("batch_size", 1), ("eval_episodes", 0), ("eval_envs", 1), ("seed", 0)):
            check_number(name, getattr(self, name), low, integer=True)
        if self.max_demos_per_task is not None:
            check_number("max_demos_per_task", self.max_demos_per_task, 1, integer=True)
        check_number("lr", self.lr, 0.0, 1.0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("val_fraction", self.val_fraction, 0.0, 0.5)
        if self.demo_layouts not in DEMO_LAYOUTS:
            raise ValueError(f"demo_layouts={self.demo_layouts!r}: pass one of {DEMO_LAYOUTS}.")
        check_cameras(self.policy, self.env)
        bad = [s for s in self.eval_init_sets if s not in INIT_STATE_SETS]
        if bad:
            raise ValueError(f"eval_init_sets {bad}: pass any of {INIT_STATE_SETS}.")
        if self.run_name is not None:
            check_name("run_name", self.run_name)

    @property
    def name_key(self) -> str:
        """Readable part of the run name."""
        tasks = "all" if self.task_ids is None else "_".join(map(str, self.task_ids)) if len(self.task_ids) <= 3 else "many"
        return f"{self.suite}-{tasks}__sft__d{self.max_demos_per_task or 'all'}_e{self.epochs}__s{self.seed}"


SFT_RECIPE = dict(max_demos_per_task=175, epochs=10)
"""The starting policy's recipe (``make run``, the notebooks' "auto"): the fewest demonstrations
that put greedy SFT on libero_object task 0 inside the 45-80 % band on both its standard and its
held-out states (room for RL to show a gain) and one task of each other suite at 30 % or more.
The screens that chose each value, one SFT run per cell: docs/history.md, "175 demos, screened as
the next recipe" (in "The RL recipe, step by step"), and experiments/sft_demos/README.md."""


def sft_default(suite: str, task_id: int, demos: int | None = None, epochs: int | None = None,
                seed: int = 0) -> SFTConfig:
    """The SFT run RL starts from by default: ``demos`` expert demonstrations of one task on
    sampled layouts (None: ``SFT_RECIPE``), ``epochs`` passes, no evaluation of its own (the RL
    run's before-evaluation is the SFT number, cached beside the checkpoint)."""
    return SFTConfig(suite=suite, task_ids=(task_id,), seed=seed, eval_episodes=0,
                     max_demos_per_task=SFT_RECIPE["max_demos_per_task"] if demos is None else demos,
                     epochs=SFT_RECIPE["epochs"] if epochs is None else epochs)


# ------------------------------------------------------------------------------ a run's identity
def override(cfg, changes: dict | None = None, **kw):
    """``cfg`` with fields changed: keys are field names, dotted nested names ("env.max_steps") or
    nested dicts (env={"max_steps": 50}); lists become tuples. Unknown fields raise ValueError.
    ``alpha1`` without ``alpha2`` sets both (``alpha2_for``)."""
    changes = {**(changes or {}), **kw}
    names = {f.name for f in fields(cfg)}
    if "alpha1" in changes and "alpha2" not in changes and "alpha2" in names:
        changes["alpha2"] = alpha2_for(changes["alpha1"])
    top: dict = {}
    nested: dict[str, dict] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ValueError(f"{type(cfg).__name__} has no field {head!r} (in {key!r}); "
                             f"use one of {sorted(names)} (nested ones as 'env.max_steps').")
        current = getattr(cfg, head)
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif isinstance(value, dict) and dataclasses.is_dataclass(current):
            nested.setdefault(head, {}).update(value)
        else:
            top[head] = tuple(value) if isinstance(value, list) else value
    for head, sub in nested.items():
        top[head] = override(top.get(head, getattr(cfg, head)), sub)
    return dataclasses.replace(cfg, **top)


def config_for(**overrides) -> TrainConfig:
    """TrainConfig from the defaults with ``override``'s keys, e.g. config_for(iterations=5, env={"max_steps": 50})."""
    return override(TrainConfig(), overrides)


def config_to_dict(config) -> dict:
    """A config dataclass (tree) or dict as plain JSON types, exactly as it reads back from config.json."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dataclass instance or a dict, got {type(config).__name__}")
    return json.loads(json.dumps(config, default=json_default, sort_keys=True))


def json_default(obj):
    """JSON for the few non-JSON types configs and summaries hold (paths, numpy values, enums, sets)."""
    from pathlib import Path

    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON; convert it to str/int/float/list first")


def config_hash(cfg) -> str:
    """8 hex digits naming everything a run depends on: the config without its run_name, and the schema."""
    d = config_to_dict(dataclasses.replace(cfg, run_name=None))
    return hashlib.sha1(json.dumps({"schema": CONFIG_SCHEMA, **d}, sort_keys=True).encode()).hexdigest()[:8]


def run_name(cfg) -> str:
    """The run directory name: ``cfg.run_name`` if given, else ``{cfg.name_key}__{config_hash(cfg)}``."""
    return cfg.run_name or f"{cfg.name_key}__{config_hash(cfg)}"


def check_schema(d: dict, source: str) -> dict:
    """``d`` without its ``schema`` key, or one line saying it was written under another schema."""
    schema = d.get("schema", 1)
    if schema != CONFIG_SCHEMA:
        raise ValueError(f"{source} was written under config schema {schema}; this tgrpo_lib writes schema "
                         f"{CONFIG_SCHEMA}: rerun under a new run name (or move the old run away).")
    return {k: v for k, v in d.items() if k != "schema"}


def config_from_dict(d: dict, cls=TrainConfig, source: str = "config.json"):
    """config.json (or any saved config dict) back to the dataclass tree it was written from.
    A run saved before ``skip_groups`` existed reads its ``skip_uniform_groups`` flag as the rule
    it was (True: "no_outcome_contrast", False: "none") and evaluated no test layouts."""
    d = check_schema(d, source)
    if cls is TrainConfig and "skip_uniform_groups" in d:
        d = dict(d)
        d.setdefault("skip_groups", "no_outcome_contrast" if d.pop("skip_uniform_groups") else "none")
        d.setdefault("test_eval_episodes", 0)
    return override(cls(), d)


__all__ = ["ALGOS", "CONFIG_SCHEMA", "alpha2_for", "DEFAULT_ENV", "DEFAULT_POLICY", "EnvConfig", "PolicyConfig", "RewardConfig", "SFTConfig", "TrainConfig", "sft_default",
           "check_name", "check_number", "check_schema", "config_for", "config_from_dict", "config_hash",
           "config_to_dict", "json_default", "override", "run_name"]
