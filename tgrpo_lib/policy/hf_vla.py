"""Paper-scale policy: OpenVLA-7B (or any HF vision-to-text model that uses OpenVLA's action
tokens) loaded from a local directory, fine-tuned with LoRA via peft.

- Loading: an OpenVLA checkpoint (config.json ``model_type`` "openvla") loads into the native
  OpenVLA on transformers' own classes (``policy/openvla.py``, no ``trust_remote_code``, no timm);
  ``PolicyConfig(remote_code=True)`` runs the checkpoint's own code instead (``openvla_remote.py``).
  Any other model loads through transformers' ``AutoModelForImageTextToText`` (e.g. Llava).

- Prompt (OpenVLA): ``In: What action should the robot take to {instruction.lower()}?\\nOut:``;
  the same text at rollout and when log-probs are recomputed. OpenVLA checkpoints also append
  the Llama "empty" token 29871 after "Out:" (as its ``predict_action`` does).
- Actions: 7 tokens decoded autoregressively; sampling and scoring are restricted to the 256
  action ids (the rest of the vocabulary is masked), so no stray text token is ever taken.
- LoRA: rank / alpha / dropout / targets from PolicyConfig. The paper (TGRPO, Sec. IV-A) uses
  OpenVLA + LoRA with AdamW at a fixed lr of 1e-5; OpenVLA's own fine-tuning script uses
  rank 32, lora_alpha = min(rank, 16), dropout 0, target_modules "all-linear" — pass
  ``PolicyConfig(kind="hf_vla", lora_rank=32, lora_alpha=16, lora_targets=("all-linear",))``.
- Reference policy: the same model with the adapter disabled (``disable_adapter()``).
- Modes: both "sft" and "rl" train the LoRA adapter only (a full 7B fine-tune is out of scope).
  Switching from a trained "sft" adapter to "rl" merges it into the base weights and starts a
  fresh adapter, so the reference of RL is the SFT policy.
- Only the agentview image is used (OpenVLA is single-image); ``use_wrist`` is ignored.
- Log-probs are computed in float32 from (possibly bf16) logits. ``act`` scores tokens with the
  KV-cached decoding pass, ``log_prob`` with one teacher-forced pass: equal up to float
  round-off (~1e-5 in fp32; ~1e-3 on the tiny Llava in bf16). The update therefore never uses act's
  numbers as pi_old: it recomputes them with ``log_prob`` itself (``updates.clipped_update``).
- Memory (paper scale): ``log_prob`` runs at most ``micro_batch`` sequences per forward (the
  update cuts its forward/backward chunks to the same number), HF transformer layers are
  recomputed in the backward pass (``gradient_checkpointing``), and only the last 8 positions'
  logits are computed where the model's forward supports ``logits_to_keep``.
  ``python -m tgrpo_lib plan`` prints what that costs for OpenVLA-7B.
- Evaluation preprocessing (``policy/preprocess.py``): frames go through OpenVLA's JPEG round
  trip, Lanczos resize and center crop when ``jpeg_quality`` / ``image_resize`` / ``center_crop``
  are set, in ``act`` and ``log_prob`` alike. Action statistics come from the checkpoint's
  ``dataset_statistics.json`` (else its config's ``norm_stats``); a suite name as ``unnorm_key``
  picks ``{suite}`` or ``{suite}_no_noops``.
- ``act`` decodes the rows that share an instruction (a group's N environments) in one batched,
  KV-cached pass; OpenVLA's remote code caches only at batch size 1, so with ``remote_code`` the
  rows go one at a time.
- Checkpoints: ``save`` writes the adapter and, once an SFT adapter was merged into the base (SFT ->
  RL), that merged adapter too; ``load`` rebuilds the base from ``model_path`` by merging it again
  (the same computation, so the same weights) after checking ``model_path`` holds the same files.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .action_tokens import ActionStats
from .base import (Policy, PolicyOutput, as_instruction_list, batch_size_of, gather_log_prob, read_meta,
                   sample_bins, seeded)
from .config import DEFAULT_HF_MICRO_BATCH, PolicyConfig
from .openvla import OpenVLAProcessor, load_openvla
from .openvla_remote import load_remote_model, load_remote_processor
from .preprocess import norm_stats_from_dir, preprocess_frame, resolve_unnorm_key

OPENVLA_EMPTY_TOKEN_ID = 29871
"""Sequences per teacher-forced pass when PolicyConfig.micro_batch is None (OpenVLA-7B, bf16,
checkpointed layers: see ``python -m tgrpo_lib plan --preset openvla-7b``)."""
DEFAULT_HF_LORA_TARGETS = ("all-linear",)
ADAPTER_DIR = "adapter"
ADAPTER_FILE = "adapter_model.safetensors"
MERGED_ADAPTERS_DIR = "merged_adapters"
"""Adapters folded into the base weights (SFT -> RL), in order: replayed on model_path to rebuild the base."""
MERGED_BASE_DIR = "base"
"""Older checkpoints kept a full copy of a merged base here; still read."""
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "random_weights.json")
"""What counts as weights in a model directory (``random_weights.json``: see ``openvla.RANDOM_WEIGHTS``)."""


def openvla_prompt(instruction: str) -> str:
    return f"In: What action should the robot take to {instruction.lower()}?\nOut:"


def check_model_dir(model_path: str | Path) -> Path:
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"hf_vla model_path {str(path)!r} is not a directory: pass "
                                "PolicyConfig(model_path=...) pointing at a local model directory "
                                "(config.json + weights + tokenizer), e.g. a downloaded openvla/openvla-7b.")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: pass the directory that holds the HF model "
                                "(the one with config.json, *.safetensors and the tokenizer files).")
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        raise FileNotFoundError(f"{path} has a config.json but no weights (*.safetensors / *.bin): finish the "
                                "download (e.g. `huggingface-cli download openvla/openvla-7b --local-dir ...`).")
    return path


def _resolve_dtype(config: PolicyConfig) -> torch.dtype:
    if config.dtype == "float32":
        return torch.float32
    if config.dtype == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if torch.device(config.device).type == "cuda" else torch.float32


def _load_model(path: Path, dtype: torch.dtype, device: torch.device, remote_code: bool):
    """(model on ``device``, processor) of a model directory (see the module docstring)."""
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type == "openvla" and not remote_code:
        return load_openvla(path, dtype, device), OpenVLAProcessor.from_dir(path)
    if model_type == "openvla":
        return load_remote_model(path, dtype, device), load_remote_processor(path)
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    auto_map = getattr(AutoConfig.from_pretrained(path, trust_remote_code=remote_code, local_files_only=True),
                       "auto_map", None) or {}
    remote = next((auto_map[k] for k in ("AutoModelForVision2Seq", "AutoModelForImageTextToText") if k in auto_map),
                  None)
    if remote is not None and remote_code:
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        cls = get_class_from_dynamic_module(remote, str(path), local_files_only=True)
        model = cls.from_pretrained(path, dtype=dtype, trust_remote_code=True, local_files_only=True)
    elif remote is not None:
        raise ValueError(f"{path} ships its own modeling code ({remote}): run it with PolicyConfig(remote_code=True) "
                         "if you trust it.")
    else:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, local_files_only=True)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=remote_code, local_files_only=True)
    return model.to(device), processor


def base_fingerprint(path: Path) -> str:
    """sha256 of a model directory's config.json and its weight files' names and sizes: a saved policy
    whose base is rebuilt from model_path checks it is the same checkpoint (cheap; no weight is read)."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(f for p in WEIGHT_PATTERNS for f in path.glob(p)):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


class HFVLAPolicy(Policy):
    def __init__(self, config: PolicyConfig, action_stats: ActionStats | None = None, *,
                 _base_path: Path | None = None):
        path = check_model_dir(_base_path or config.model_path)
        self.device = torch.device(config.device)
        self.dtype = _resolve_dtype(config)
        with seeded(config.seed):  # weights missing from a checkpoint are initialised reproducibly
            base, self.processor = _load_model(path, self.dtype, self.device, config.remote_code)
        n_out = base.get_output_embeddings().weight.shape[0]
        if n_out < config.vocab_size:
            raise ValueError(
                f"model at {path} has only {n_out} output tokens but OpenVLA's action tokens are the last "
                f"{config.n_bins} ids below vocab_size={config.vocab_size}: pass a model with OpenVLA's action "
                "vocabulary (e.g. openvla/openvla-7b) or set PolicyConfig(vocab_size=...) to its tokenizer's size.")
        super().__init__(config, action_stats or self._stats_from_model(path, base.config, config.unnorm_key))
        self.action_ids = torch.as_tensor(self.tokenizer.action_token_ids, device=self.device)  # (256,)
        self.is_openvla = getattr(base.config, "model_type", "") == "openvla"
        self.append_empty_token = self.is_openvla
        # OpenVLA's own cached forward asserts batch size 1; the native one decodes all rows in one pass
        self.decode_rows = 1 if self.is_openvla and config.remote_code else None
        self.image_token = getattr(self.processor, "image_token", None)
        forward_args = inspect.signature(base.forward).parameters
        # transformers >= 5.x renamed the KV-cache argument/output `past_key_values` -> `cache`;
        # OpenVLA's remote code (written for 4.40) still uses the old name.
        self.cache_name = "cache" if "cache" in forward_args else "past_key_values"
        # Only the last positions' logits are read; (b, T, 32064) logits are ~0.5 GB at b = 16, T = 280.
        self.keep_logits_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in forward_args), None)
        self.base_modified = False  # True once an SFT adapter has been merged into the base weights
        self.merged_adapters: list[dict] = []  # those adapters' weights (CPU), to rebuild the base on reload
        self.base_copy = _base_path  # an older checkpoint's merged base (MERGED_BASE_DIR), carried on by save
        base.requires_grad_(False)
        self.checkpointed = self._enable_checkpointing(base) if config.gradient_checkpointing else []
        self.model = self._add_adapter(base)
        self.model.eval()

    @property
    def micro_batch(self) -> int:
        return self.config.micro_batch or DEFAULT_HF_MICRO_BATCH

    @staticmethod
    def _stats_from_model(path: Path, model_config, unnorm_key: str | None) -> ActionStats:
        norm_stats = norm_stats_from_dir(path, getattr(model_config, "norm_stats", None))
        if not norm_stats:
            if unnorm_key is not None:
                raise ValueError(f"unnorm_key={unnorm_key!r} but {path} has no action statistics (no "
                                 "dataset_statistics.json, no norm_stats in config.json): pass a LIBERO-finetuned "
                                 "OpenVLA checkpoint directory, or unnorm_key=None for unnormalised actions.")
            return ActionStats.identity()
        a = norm_stats[resolve_unnorm_key(norm_stats, unnorm_key)]["action"]
        mask = tuple(a.get("mask", [True] * 6 + [False]))
        return ActionStats(q01=tuple(a["q01"]), q99=tuple(a["q99"]), mask=mask)

    @staticmethod
    def _enable_checkpointing(base) -> list[torch.nn.Module]:
        """Non-reentrant activation checkpointing of the model's HF layers (reentrant checkpoints
        would pass no gradient to LoRA weights inside a layer whose input needs none); returns the
        modules whose training flag switches it on."""
        if not getattr(base, "supports_gradient_checkpointing", False):
            return []
        enable = getattr(base, "activation_checkpointing_enable", None) or base.gradient_checkpointing_enable
        enable({"use_reentrant": False})
        return [m for m in base.modules() if getattr(m, "gradient_checkpointing", False) is True]

    @contextlib.contextmanager
    def _teacher_forcing(self):
        """HF recomputes a checkpointed layer only in training mode: flag exactly those layers, not
        their submodules (which stay in eval mode, so no dropout ever switches on). Every
        teacher-forced pass (pi_theta, pi_old, pi_ref) runs inside this, so all three are one function."""
        before = [m.training for m in self.checkpointed]
        for m in self.checkpointed:
            m.training = True
        try:
            yield
        finally:
            for m, flag in zip(self.checkpointed, before):
                m.training = flag

    def _add_adapter(self, base):
        from peft import LoraConfig, get_peft_model

        targets = list(self.config.lora_targets or DEFAULT_HF_LORA_TARGETS)
        lora = LoraConfig(r=self.config.lora_rank, lora_alpha=self.config.lora_alpha,
                          lora_dropout=self.config.lora_dropout,
                          target_modules=targets[0] if targets == ["all-linear"] else targets)
        with seeded(self.config.seed + 1):
            return get_peft_model(base, lora)

    # -- inputs -----------------------------------------------------------------------------------
    def _prompt_inputs(self, obs_batch: Mapping, instruction: str, rows: np.ndarray) -> dict:
        from PIL import Image

        prompt = openvla_prompt(instruction)
        if self.image_token and self.image_token not in prompt:
            prompt = self.image_token + prompt  # Llava-style processors need the placeholder in the text
        c = self.config
        images = [Image.fromarray(preprocess_frame(np.asarray(obs_batch["agentview"][i], dtype=np.uint8),
                                                   c.jpeg_quality, c.image_resize, c.center_crop)) for i in rows]
        enc = self.processor(text=[prompt] * len(rows), images=images, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if self.append_empty_token and int(ids[0, -1]) != OPENVLA_EMPTY_TOKEN_ID:
            ids = torch.cat([ids, torch.full_like(ids[:, :1], OPENVLA_EMPTY_TOKEN_ID)], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = {k: v.to(self.device) for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        out = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in out.items()}
        return dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **out)

    def _groups(self, obs_batch: Mapping, instruction, max_rows: int | None = None) -> list[tuple[str, np.ndarray]]:
        """Rows grouped by instruction (each group shares one prompt length, so no padding is needed),
        groups cut into pieces of at most ``max_rows``."""
        if "agentview" not in obs_batch:
            raise ValueError("hf_vla needs obs_batch['agentview'] (B,H,W,3) uint8 images.")
        instructions = as_instruction_list(instruction, batch_size_of(obs_batch))
        out = []
        for s in dict.fromkeys(instructions):
            rows = np.array([i for i, x in enumerate(instructions) if x == s])
            step = max_rows or len(rows)
            out += [(s, rows[k:k + step]) for k in range(0, len(rows), step)]
        return out

    def _action_logits(self, obs_batch: Mapping, instruction, bins: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits over the 256 action ids for each of the 7 positions: (B, 7, 256)."""
        pieces = []
        keep = {self.keep_logits_arg: 8} if self.keep_logits_arg else {}
        with self._teacher_forcing():
            for text, rows in self._groups(obs_batch, instruction, self.micro_batch):
                inputs = self._prompt_inputs(obs_batch, text, rows)
                action_ids = self.action_ids[bins[rows]]  # (b, 7)
                inputs["input_ids"] = torch.cat([inputs["input_ids"], action_ids], dim=1)
                inputs["attention_mask"] = F.pad(inputs["attention_mask"], (0, 7), value=1)
                logits = self.model(**inputs, use_cache=False, **keep).logits  # (b, T or 8, V)
                # The logit at position T-8+k predicts action token k. Llava-style models expand the
                # image into input_ids, OpenVLA inserts patches internally: either way the tail aligns.
                pieces.append((rows, logits[:, -8:-1].index_select(-1, self.action_ids).float()))  # (b, 7, 256)
        if len(pieces) == 1:
            return pieces[0][1]
        out = torch.zeros(bins.shape[0], 7, self.config.n_bins, device=self.device)
        for rows, piece in pieces:
            out[torch.as_tensor(rows, device=self.device)] = piece
        return out

    # -- interface --------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs_batch: Mapping, instruction: str | Sequence[str], greedy: bool = False,
            temperature: float = 1.0) -> PolicyOutput:
        B = batch_size_of(obs_batch)
        bins = torch.zeros(B, 7, dtype=torch.long, device=self.device)
        logits_all = torch.zeros(B, 7, self.config.n_bins, device=self.device)
        keep = {self.keep_logits_arg: 1} if self.keep_logits_arg else {}
        for text, rows in self._groups(obs_batch, instruction, self.decode_rows):
            inputs = self._prompt_inputs(obs_batch, text, rows)
            mask = inputs["attention_mask"]
            out = self.model(**inputs, use_cache=True, **keep)
            r = torch.as_tensor(rows, device=self.device)
            for k in range(7):
                logits = out.logits[:, -1].index_select(-1, self.action_ids).float()  # (b, 256)
                choice = sample_bins(logits, greedy, temperature, self.generator).to(self.device)  # (b,)
                bins[r, k], logits_all[r, k] = choice, logits
                if k == 6:
                    break
                mask = F.pad(mask, (0, 1), value=1)
                out = self.model(input_ids=self.action_ids[choice][:, None], attention_mask=mask,
                                 use_cache=True, **{self.cache_name: getattr(out, self.cache_name)})
        lp = gather_log_prob(logits_all, bins)
        sampled_at_t1 = greedy or temperature <= 0 or temperature == 1.0
        slp = lp if sampled_at_t1 else gather_log_prob(logits_all, bins, temperature)
        return self._output(bins, lp, slp)

    def log_prob(self, obs_batch: Mapping, instruction: str | Sequence[str], tokens) -> torch.Tensor:
        bins = self.bins_from_tokens(tokens, self.device)
        return gather_log_prob(self._action_logits(obs_batch, instruction, bins), bins)  # (B,)

    def ref_log_prob(self, obs_batch: Mapping, instruction: str | Sequence[str], tokens) -> torch.Tensor:
        with torch.no_grad(), self.model.disable_adapter():
            return self.log_prob(obs_batch, instruction, tokens)

    def sft_loss(self, obs_batch: Mapping, instruction: str | Sequence[str], target_actions) -> torch.Tensor:
        """Cross-entropy of the 7 target action tokens, restricted to the action vocabulary."""
        target = self.target_bins(target_actions, self.device)  # (B, 7)
        logits = self._action_logits(obs_batch, instruction, target)  # (B, 7, 256)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    # -- modes / parameters -----------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        self._check_mode(mode)
        if mode == "rl" and self.mode == "sft" and self._adapter_trained():
            self._merge_adapter()
        self.model.eval()
        self.mode = mode

    def _merge_adapter(self) -> None:
        """Fold the adapter into the base weights and start a fresh one; its weights are kept so that
        ``save`` can record how to rebuild this base from model_path."""
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.model)
        self.merged_adapters.append({k: v.detach().to("cpu", copy=True) for k, v in state.items()})
        self.model = self._add_adapter(self.model.merge_and_unload())
        self.base_modified = True

    def _adapter_trained(self) -> bool:
        return any(("lora_B" in n) and bool(p.detach().abs().sum() > 0) for n, p in self.model.named_parameters())

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def all_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Adapter + config, and the adapters merged into the base so far (``merged_adapters/<i>/``):
        the base weights themselves are model_path's, fingerprinted (``base_fingerprint``)."""
        from safetensors.torch import save_file

        fingerprint = base_fingerprint(check_model_dir(self.config.model_path))
        path = self._save_common(path, extra=dict(base_modified=self.base_modified, base_fingerprint=fingerprint,
                                                  merged_adapters=len(self.merged_adapters)))
        self.model.save_pretrained(path / ADAPTER_DIR)
        if self.base_copy is not None and self.base_copy.resolve() != (path / MERGED_BASE_DIR).resolve():
            shutil.copytree(self.base_copy, path / MERGED_BASE_DIR, dirs_exist_ok=True)
        for i, state in enumerate(self.merged_adapters):
            (path / MERGED_ADAPTERS_DIR / str(i)).mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in state.items()},
                      str(path / MERGED_ADAPTERS_DIR / str(i) / ADAPTER_FILE))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "HFVLAPolicy":
        path = Path(path)
        adapter = path / ADAPTER_DIR / ADAPTER_FILE
        if not adapter.is_file():
            raise FileNotFoundError(f"{adapter} not found: pass the directory written by policy.save(path).")
        config = PolicyConfig.from_json(path / "policy_config.json")
        meta = read_meta(path)
        old_copy = meta.get("base_modified") and (path / MERGED_BASE_DIR).is_dir()  # before merged_adapters
        if meta.get("base_fingerprint", "") not in ("", base_fingerprint(check_model_dir(config.model_path))):
            raise ValueError(f"the policy at {path} was trained on a base model whose config.json or weight files "
                             f"differ from those at model_path {config.model_path} now: point model_path in "
                             f"{path / 'policy_config.json'} at the checkpoint it was trained from.")
        policy = cls(config, ActionStats.from_json(path / "action_stats.json"),
                     _base_path=path / MERGED_BASE_DIR if old_copy else None)
        for i in range(meta.get("merged_adapters", 0)):
            _load_adapter(policy.model, path / MERGED_ADAPTERS_DIR / str(i) / ADAPTER_FILE)
            policy._merge_adapter()
        _load_adapter(policy.model, adapter)
        policy.base_modified = bool(meta.get("base_modified"))
        policy.mode = meta["mode"]
        return policy


def _load_adapter(model, file: Path) -> None:
    """LoRA weights saved by ``save`` into the (same-config) adapter of ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    device = next(model.parameters()).device
    result = set_peft_model_state_dict(model, load_file(str(file), device=str(device)))
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"adapter at {file} does not fit the model: unexpected keys {result.unexpected_keys[:3]}...; "
                         "was it saved with another lora config?")
