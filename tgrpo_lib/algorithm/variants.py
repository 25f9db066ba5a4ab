"""The one table of algorithm variants: name -> reward kind, advantage weights, objective.

Config validation (``TrainConfig.algo``), the trainer (which reward, which update) and the
result tables (row labels of Table I / II) all read this table; nothing else compares algo
strings.

    VARIANTS["step_only"].advantage_weights(0.3, 0.7)   # (1.0, 0.0): the configured pair is overridden
"""
from __future__ import annotations

from dataclasses import dataclass

REWARD_KINDS = ("dense", "sparse")
OBJECTIVES = ("clipped", "dpo", "tpo")


@dataclass(frozen=True)
class Variant:
    """One algorithm the trainer can run on the same online rollouts."""

    name: str
    """Value of ``TrainConfig.algo``."""
    label: str
    """Row label in the result tables."""
    reward: str
    """"dense": the multi-stage reward (Eq. 1) at every step; "sparse": 1 at the last step of a success."""
    weights: tuple[float, float] | None
    """(alpha1, alpha2) this variant always uses; None: the configured pair (Eq. 4)."""
    objective: str
    """"clipped": Eq. 5-7 (PPO-style clip + KL); "dpo" / "tpo": preference losses (preference.py)."""
    doc: str

    def advantage_weights(self, alpha1: float, alpha2: float) -> tuple[float, float]:
        """The (alpha1, alpha2) actually used, given the configured pair."""
        return self.weights if self.weights is not None else (alpha1, alpha2)

    @property
    def is_preference(self) -> bool:
        return self.objective in ("dpo", "tpo")


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("tgrpo", "TGRPO", "dense", None, "clipped", "Eq. 2-7 with the configured alpha1 / alpha2."),
    Variant("step_only", "TGRPO w/o trajectory-level adv.", "dense", (1.0, 0.0), "clipped",
            "Table II ablation: step-level advantage only (alpha1 = 1)."),
    Variant("traj_only", "TGRPO w/o step-level adv.", "dense", (0.0, 1.0), "clipped",
            "Table II ablation: trajectory-level advantage only (alpha2 = 1)."),
    Variant("grpo_sparse", "GRPO-sparse", "sparse", (0.0, 1.0), "clipped",
            "Binary success reward, trajectory-level advantage only: the recipe of recent GRPO-for-VLA "
            "work, a baseline the paper lacks."),
    Variant("dpo", "DPO", "dense", None, "dpo",
            "Table I baseline: DPO on the best vs the worst trajectory of each group (success, then return)."),
    Variant("tpo", "GRAPE-style", "dense", None, "tpo",
            "Table I baseline: GRAPE-style trajectory preference optimisation over every ordered pair of the group."),
)}
ALGOS = tuple(VARIANTS)

TABLE_I = ("dpo", "tpo", "grpo_sparse", "tgrpo")
"""Table I rows after SFT, in the paper's order."""
TABLE_II = ("step_only", "traj_only", "tgrpo")
"""Table II rows after SFT."""
SFT_LABEL = "SFT"


def get_variant(name: str) -> Variant:
    """The variant called ``name``, or a ValueError naming the choices."""
    if name not in VARIANTS:
        raise ValueError(f"algo={name!r}: pass one of {', '.join(ALGOS)}.")
    return VARIANTS[name]


def table_methods(names: tuple[str, ...]) -> dict[str, str | None]:
    """Row label -> algo for a result table, SFT (the starting policy, no algo) first."""
    return {SFT_LABEL: None, **{VARIANTS[n].label: n for n in names}}
