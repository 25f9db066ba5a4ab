"""OpenVLA's discrete action vocabulary, action (un)normalisation and gripper conventions.

OpenVLA turns each of the 7 action dims into one token: 256 uniform bins over [-1, 1] whose
ids are the *last* 256 ids of the 32000-token Llama vocabulary (ids 31744..31999, highest id
for the most negative value). We reproduce that scheme exactly so a policy trained here and
OpenVLA checkpoints speak the same tokens, and the tiny VLA's 256-way heads use the same bins
through ``bin_index`` = id - (vocab_size - n_bins), i.e. ascending id order: bin 0 is the most
*positive* value (+1) and bin 255 the most negative (-1), because OpenVLA counts ids down.

Gripper conventions:
- ``"libero"``: the policy's last dim is already LIBERO's command, -1 open / +1 close
  (our tiny VLA is trained on LIBERO demos directly, so nothing is flipped).
- ``"openvla"``: the policy predicts OpenVLA's normalised gripper g in [0, 1] (1 = open), which
  is executed as ``-sign(2 g - 1)`` so that -1 opens and +1 closes in LIBERO.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

N_ACTION_DIMS = 7
GRIPPER_CONVENTIONS = ("libero", "openvla")


class ActionTokenizer:
    """Maps continuous actions in [-1, 1] to OpenVLA token ids and back."""

    def __init__(self, vocab_size: int = 32000, n_bins: int = 256):
        if vocab_size <= n_bins:
            raise ValueError(
                f"vocab_size={vocab_size} must exceed n_bins={n_bins}: the action tokens are the "
                f"last {n_bins} ids of the vocabulary; pass the tokenizer's vocab_size (32000 for OpenVLA)."
            )
        self.vocab_size = int(vocab_size)
        self.n_bins = int(n_bins)
        self.bins = np.linspace(-1.0, 1.0, n_bins)  # (n_bins,) bin edges
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0  # (n_bins - 1,)

    @property
    def first_action_id(self) -> int:
        """Smallest token id that can encode an action (vocab_size - n_bins)."""
        return self.vocab_size - self.n_bins

    @property
    def action_token_ids(self) -> np.ndarray:
        """All ids of the action vocabulary, ordered by bin_index (ascending id)."""
        return np.arange(self.first_action_id, self.vocab_size)  # (n_bins,)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(..., 7) float in [-1, 1] -> (..., 7) int64 token ids (values outside are clipped)."""
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        # digitize returns 1..n_bins for values in [-1, 1], so ids lie in [V - n_bins, V - 1].
        return (self.vocab_size - np.digitize(a, self.bins)).astype(np.int64)

    def decode(self, token_ids: np.ndarray) -> np.ndarray:
        """(..., 7) token ids -> (..., 7) float bin centers (OpenVLA's decoding, incl. its clip)."""
        idx = self.vocab_size - np.asarray(token_ids, dtype=np.int64) - 1
        return self.bin_centers[np.clip(idx, 0, self.bin_centers.shape[0] - 1)]

    def ids_to_bin_index(self, token_ids: np.ndarray) -> np.ndarray:
        """Token ids -> 0..n_bins-1 index of the action vocabulary (ascending id order)."""
        ids = np.asarray(token_ids, dtype=np.int64)
        if ids.size and (ids.min() < self.first_action_id or ids.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [{self.first_action_id}, {self.vocab_size - 1}] (the action "
                f"vocabulary); got range [{ids.min()}, {ids.max()}]. Pass tokens produced by act()/encode()."
            )
        return ids - self.first_action_id

    def bin_index_to_ids(self, bin_index: np.ndarray) -> np.ndarray:
        """0..n_bins-1 index -> token ids."""
        return np.asarray(bin_index, dtype=np.int64) + self.first_action_id

    def actions_to_bin_index(self, actions: np.ndarray) -> np.ndarray:
        """(..., 7) actions -> (..., 7) bin index in 0..n_bins-1 (targets for 256-way heads)."""
        return self.ids_to_bin_index(self.encode(actions))

    def bin_index_to_actions(self, bin_index: np.ndarray) -> np.ndarray:
        return self.decode(self.bin_index_to_ids(bin_index))


@dataclass(frozen=True)
class ActionStats:
    """Per-dim q01/q99 of the training actions, used to map [-1, 1] back to env units."""

    q01: tuple[float, ...] = (-1.0,) * N_ACTION_DIMS  # 1st percentile per action dim
    q99: tuple[float, ...] = (1.0,) * N_ACTION_DIMS  # 99th percentile per action dim
    # which dims are normalised; OpenVLA leaves the gripper (dim 6) untouched
    mask: tuple[bool, ...] = (True,) * 6 + (False,)

    @classmethod
    def identity(cls) -> "ActionStats":
        """Stats under which (un)normalisation is a no-op: LIBERO actions already lie in [-1, 1]."""
        return cls()

    @classmethod
    def from_actions(cls, actions: np.ndarray) -> "ActionStats":
        """q01/q99 of an (N, 7) array of demo actions."""
        a = np.asarray(actions, dtype=np.float64).reshape(-1, N_ACTION_DIMS)
        if a.shape[0] == 0:
            raise ValueError("ActionStats.from_actions needs at least one (7,) action; got an empty array.")
        return cls(q01=tuple(np.quantile(a, 0.01, axis=0).tolist()),
                   q99=tuple(np.quantile(a, 0.99, axis=0).tolist()))

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        """[-1, 1] policy output -> env action: 0.5 (a + 1) (q99 - q01) + q01 on masked dims."""
        a = np.asarray(normalized, dtype=np.float64)
        q01, q99, mask = np.asarray(self.q01), np.asarray(self.q99), np.asarray(self.mask)
        return np.where(mask, 0.5 * (a + 1.0) * (q99 - q01) + q01, a)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Inverse of unnormalize, clipped to [-1, 1] (targets for SFT)."""
        a = np.asarray(actions, dtype=np.float64)
        q01, q99, mask = np.asarray(self.q01), np.asarray(self.q99), np.asarray(self.mask)
        span = np.where(q99 - q01 > 1e-8, q99 - q01, 1.0)  # constant dims map to -1, not NaN
        return np.where(mask, np.clip(2.0 * (a - q01) / span - 1.0, -1.0, 1.0), a)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> "ActionStats":
        d = json.loads(Path(path).read_text())
        return cls(q01=tuple(d["q01"]), q99=tuple(d["q99"]), mask=tuple(bool(m) for m in d["mask"]))


def gripper_to_env(gripper: np.ndarray, convention: str = "libero") -> np.ndarray:
    """Policy gripper value(s) -> LIBERO command (-1 open, +1 close)."""
    g = np.asarray(gripper, dtype=np.float64)
    if convention == "libero":
        return g
    if convention == "openvla":
        # OpenVLA: g in [0, 1] with 1 = open; 2g-1 -> [-1, 1], sign binarises, -1 flips to LIBERO.
        # sign(0) = 0 would be "no command"; treat the exact midpoint as open like OpenVLA's eval.
        s = np.sign(2.0 * g - 1.0)
        return -np.where(s == 0, 1.0, s)
    raise ValueError(f"gripper_convention must be one of {GRIPPER_CONVENTIONS}; got {convention!r}.")


def to_env_actions(normalized: np.ndarray, stats: ActionStats | None = None,
                   gripper_convention: str = "libero") -> np.ndarray:
    """(..., 7) decoded policy actions in [-1, 1] -> (..., 7) env actions for LIBERO."""
    a = (stats or ActionStats.identity()).unnormalize(normalized)
    a = a.copy()
    a[..., 6] = gripper_to_env(a[..., 6], gripper_convention)
    return a
