"""The reward interface: a RewardProgram maps privileged states to Eq. 1 rewards and stages.

    out = program(state)          # state: flat dict, arrays (*B, T, ...), e.g. (N, T, 3)
    out.reward (*B, T) float      # R_t = w_f1 * f1 + w_f2 * f2, in [0, program.max_reward]
    out.stage (*B, T) int         # reported stage: running max over T of out.raw_stage
    out.raw_stage (*B, T) int     # stage of the milestones now (with hysteresis, see stages.py;
                                  #   goes back when an object is dropped)
    out.components {name: (*B, T)}  # f1, f2, and per-stage progress "progress/<stage>"

Scales (documented, see `multi_stage_reward`): f1 = c + p_c in [0, n_stages] where c is the
current stage (capped at n_stages - 1) and p_c its geometric progress; f2 in (0, 1]. The maximum
w_f1 * n_stages + w_f2 is reached exactly when every goal atom holds (raw stage == n_stages),
i.e. at task success (up to LIBERO's contact test, which the state does not carry).

The time axis is the last batch axis; t = 0 is the reference state of each trajectory (start
heights for "lifted", start joint values for "started moving").
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tgrpo_lib.reward import stages as S
from tgrpo_lib.reward.config import RewardConfig

# Cap of the in-stage progress until the milestone is met, so f1 only reaches an integer
# (a completed stage) through the milestone test, never through geometry alone.
PROGRESS_CAP = 0.95


@dataclass
class RewardOutput:
    """Rewards of a batch of steps; all arrays share the batch shape (*B, T)."""

    reward: np.ndarray  # (*B, T) float64
    stage: np.ndarray  # (*B, T) int64, monotone non-decreasing along T
    raw_stage: np.ndarray  # (*B, T) int64
    components: dict[str, np.ndarray] = field(default_factory=dict)  # each (*B, T)

    def to_frame(self) -> pd.DataFrame:
        """Long table (one row per step) for plotting: index columns b0.., t + every component."""
        shape = self.reward.shape
        idx = np.indices(shape).reshape(len(shape), -1)
        cols = {f"b{i}": idx[i] for i in range(len(shape) - 1)}
        cols["t"] = idx[-1]
        cols.update(reward=self.reward.ravel(), stage=self.stage.ravel(), raw_stage=self.raw_stage.ravel())
        cols.update({k: np.broadcast_to(v, shape).ravel() for k, v in self.components.items()})
        return pd.DataFrame(cols)


def running_max_stage(raw_stage: np.ndarray) -> np.ndarray:
    """Reported stage: a stage once reached stays reached (monotone along the last axis)."""
    return np.maximum.accumulate(raw_stage, axis=-1)  # (*B, T)


def raw_stage_index(milestones: np.ndarray, chain: np.ndarray) -> np.ndarray:
    """Instantaneous stage = 1 + the highest stage whose milestone (and chain) holds, else 0.

    milestones, chain: (*B, T, K) bool -> (*B, T) int.
    """
    ok = milestones & chain  # (*B, T, K)
    k = np.arange(1, ok.shape[-1] + 1)
    return np.max(np.where(ok, k, 0), axis=-1)


def multi_stage_reward(stage, raw_stage, progress, key_dist, w_f1=1.0, w_f2=1.0, key_pose_scale=0.1):
    """Eq. 1: R_t = w_f1 * f1(P_object, stage) + w_f2 * f2(P_pose^k, eef).

    stage, raw_stage: (*B, T) int; progress: (*B, T, K) in [0, 1]; key_dist: (*B, T, K) metres
    from the eef to each stage's key pose. Returns (reward, f1, f2), each (*B, T).
    f1 = c + p_c with c = min(stage, K - 1); p_c is capped below 1 unless raw_stage > c (the
    last milestone holds now). f2 = exp(-key_dist[c] / key_pose_scale), 1 when every stage holds.
    """
    n = progress.shape[-1]
    c = np.minimum(stage, n - 1)[..., None]  # (*B, T, 1)
    p_c = np.take_along_axis(progress, c, axis=-1)[..., 0]  # (*B, T)
    done = raw_stage >= n  # every goal atom holds now
    f1 = c[..., 0] + np.where(done, 1.0, np.minimum(p_c, PROGRESS_CAP))
    f2 = np.where(done, 1.0, np.exp(-np.take_along_axis(key_dist, c, axis=-1)[..., 0] / key_pose_scale))
    return w_f1 * f1 + w_f2 * f2, f1, f2


def batch_shape(state: dict) -> tuple[int, ...]:
    eef = np.asarray(state.get("eef_pos", np.zeros(0)))
    if eef.ndim < 2 or eef.shape[-1] != 3:
        raise ValueError(f"state['eef_pos'] has shape {eef.shape}; expected (*B, T, 3) with a time "
                         f"axis: for one step pass {{k: v[None] for k, v in state.items()}}")
    return eef.shape[:-1]


def reference_state(state: dict) -> dict:
    """The t = 0 state of each trajectory, kept with a length-1 time axis so it broadcasts."""
    bshape = batch_shape(state)
    t_axis = len(bshape) - 1
    ref = {}
    for k, v in state.items():
        v = np.asarray(v)
        if v.ndim >= len(bshape) and v.shape[: len(bshape)] == bshape:
            ref[k] = np.take(v, [0], axis=t_axis)
    return ref


class RewardProgram:
    """Common interface of offline and LLM reward programs.

    `source_hash` names the program that produced a run's rewards (LLM: sha256 of its source;
    offline: of its compiled stages, key poses and weights); `provenance()` is what a run records.
    """

    source: str = "?"
    n_stages: int = 0
    stage_names: tuple[str, ...] = ()
    source_hash: str = ""

    def provenance(self) -> dict:
        """Flat, JSON-ready fields for a run's summary (metrics.json)."""
        return {"reward_source": self.source, "reward_source_hash": self.source_hash,
                "reward_n_stages": int(self.n_stages)}

    @property
    def max_reward(self) -> float:
        raise NotImplementedError

    def __call__(self, state: dict, step: np.ndarray | None = None) -> RewardOutput:
        raise NotImplementedError

    def describe(self) -> pd.DataFrame:
        """One row per stage (for notebooks)."""
        return pd.DataFrame({"stage": range(self.n_stages), "name": list(self.stage_names)})


class StageRewardProgram(RewardProgram):
    """Offline multi-stage reward compiled from the BDDL goal (see `stages.py`)."""

    source = "offline"

    def __init__(self, compiled: S.CompiledTask, cfg: RewardConfig | None = None,
                 key_poses: list[dict] | None = None):
        self.compiled = compiled
        self.cfg = cfg or RewardConfig()
        self.stages = compiled.stages
        self.n_stages = len(self.stages)
        self.stage_names = tuple(s.name for s in self.stages)
        poses = {}
        for kp in key_poses or []:
            xyz = np.asarray(kp["xyz"], dtype=np.float64)
            if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
                raise ValueError(f"key pose {kp!r}: 'xyz' must be 3 finite numbers")
            poses[kp["label"]] = xyz
        self.key_poses = poses
        # Which stages shape toward an expert pose and which toward the state-derived fallback.
        self.key_pose_source = {s.name: ("expert" if s.key_label in poses else "fallback") for s in self.stages}
        identity = {"stages": [[s.name, s.kind, list(s.atom), s.key_label, s.push] for s in self.stages],
                    "required": list(compiled.required), "key_poses": {k: v.tolist() for k, v in sorted(poses.items())},
                    "weights": [self.cfg.w_f1, self.cfg.w_f2, self.cfg.key_pose_scale, self.cfg.progress_scale]}
        self.source_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def max_reward(self) -> float:
        return self.cfg.w_f1 * self.n_stages + self.cfg.w_f2

    def _chain(self, state) -> list[np.ndarray]:
        """chain[k]: every earlier atom that must still hold for stage k to count does hold."""
        atoms, req = self.compiled.atoms, self.compiled.required
        holds = [S.atom_holds(state, a) for a in atoms]
        out = []
        for st in self.stages:
            # A prerequisite (implied opening) gates the stages after it except the final placement,
            # whose geometry already implies it.
            gate = [holds[i] for i in range(st.atom_index) if req[i] or st.kind != "place"]
            out.append(np.logical_and.reduce(gate) if gate else np.ones_like(holds[0]))
        return out

    def __call__(self, state: dict, step: np.ndarray | None = None) -> RewardOutput:
        bshape = batch_shape(state)
        ref = reference_state(state)
        eef = np.asarray(state["eef_pos"], dtype=np.float64)
        ms = np.stack([np.broadcast_to(S.milestone(s, state, ref), bshape) for s in self.stages], -1)  # (*B,T,K)
        chain = np.stack([np.broadcast_to(c, bshape) for c in self._chain(state)], -1)  # (*B,T,K)
        prog = np.stack([np.broadcast_to(S.progress(s, state, ref, self.cfg.progress_scale), bshape)
                         for s in self.stages], -1)  # (*B,T,K)
        keys = np.stack([np.broadcast_to(self.key_poses[s.key_label] if s.key_label in self.key_poses
                                         else S.fallback_key_pose(s, state, ref), bshape + (3,))
                         for s in self.stages], -2)  # (*B,T,K,3)
        key_dist = np.linalg.norm(keys - eef[..., None, :], axis=-1)  # (*B,T,K)
        raw = raw_stage_index(ms, chain)
        stage = running_max_stage(raw)
        reward, f1, f2 = multi_stage_reward(stage, raw, prog, key_dist, self.cfg.w_f1, self.cfg.w_f2,
                                            self.cfg.key_pose_scale)
        comps = {"f1": f1, "f2": f2}
        for k, s in enumerate(self.stages):
            comps[f"progress/{s.name}"] = prog[..., k]
            comps[f"milestone/{s.name}"] = ms[..., k] & chain[..., k]
        return RewardOutput(reward, stage.astype(np.int64), raw.astype(np.int64), comps)

    def describe(self) -> pd.DataFrame:
        rows = []
        for k, s in enumerate(self.stages):
            rows.append(dict(stage=k, name=s.name, kind=s.kind, atom=" ".join(s.atom),
                             required=self.compiled.required[s.atom_index], key_label=s.key_label,
                             key_pose=self.key_pose_source[s.name]))
        return pd.DataFrame(rows)


def compile_program(goal, instruction: str = "", cfg: RewardConfig | None = None,
                    key_poses: list[dict] | None = None, initially_true=()) -> StageRewardProgram:
    """Offline RewardProgram for a goal (see `stages.compile_stages`)."""
    return StageRewardProgram(S.compile_stages(goal, instruction, initially_true), cfg, key_poses)
