"""Paper-scale policy: OpenVLA-7B (or any HF vision-to-text model that uses OpenVLA's action
tokens) loaded from a local directory, fine-tuned with LoRA via peft.

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
  ``python -m tgrpo_lib.plan`` prints what that costs for OpenVLA-7B.
- Evaluation preprocessing (``policy/preprocess.py``): frames go through OpenVLA's JPEG round
  trip, Lanczos resize and center crop when ``jpeg_quality`` / ``image_resize`` / ``center_crop``
  are set, in ``act`` and ``log_prob`` alike. Action statistics come from the checkpoint's
  ``dataset_statistics.json`` (else its config's ``norm_stats``); a suite name as ``unnorm_key``
  picks ``{suite}`` or ``{suite}_no_noops``.
- OpenVLA's remote code decodes with a KV cache only at batch size 1: ``act`` decodes its rows
  one at a time for ``model_type == "openvla"`` (the engines call it with one env per worker on
  a machine with >= N cores anyway).
"""
from __future__ import annotations

import contextlib
import inspect
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .action_tokens import ActionStats
from .base import (Policy, PolicyOutput, as_instruction_list, batch_size_of, gather_log_prob, read_meta,
                   sample_bins, seeded)
from .config import DEFAULT_HF_MICRO_BATCH, PolicyConfig
from .preprocess import norm_stats_from_dir, preprocess_frame, resolve_unnorm_key

OPENVLA_EMPTY_TOKEN_ID = 29871
"""Sequences per teacher-forced pass when PolicyConfig.micro_batch is None (OpenVLA-7B, bf16,
checkpointed layers: see ``python -m tgrpo_lib.plan --preset openvla-7b``)."""
DEFAULT_HF_LORA_TARGETS = ("all-linear",)
ADAPTER_DIR = "adapter"
MERGED_BASE_DIR = "base"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


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


def _load_model(path: Path, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModelForImageTextToText

    model_config = AutoConfig.from_pretrained(path, trust_remote_code=True, local_files_only=True)
    auto_map = getattr(model_config, "auto_map", None) or {}
    remote = next((auto_map[k] for k in ("AutoModelForVision2Seq", "AutoModelForImageTextToText") if k in auto_map),
                  None)
    if remote is not None:  # OpenVLA ships its own modeling code (trust_remote_code)
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        cls = get_class_from_dynamic_module(remote, str(path), local_files_only=True)
        return cls.from_pretrained(path, dtype=dtype, trust_remote_code=True, local_files_only=True)
    return AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, local_files_only=True)


class HFVLAPolicy(Policy):
    def __init__(self, config: PolicyConfig, action_stats: ActionStats | None = None, *,
                 _base_path: Path | None = None):
        from transformers import AutoProcessor

        path = check_model_dir(_base_path or config.model_path)
        self.device = torch.device(config.device)
        self.dtype = _resolve_dtype(config)
        with seeded(config.seed):  # weights missing from a checkpoint are initialised reproducibly
            base = _load_model(path, self.dtype).to(self.device)
        self.processor = AutoProcessor.from_pretrained(path, trust_remote_code=True, local_files_only=True)
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
        self.decode_rows = 1 if self.is_openvla else None  # OpenVLA's cached generation asserts batch size 1
        self.image_token = getattr(self.processor, "image_token", None)
        forward_args = inspect.signature(base.forward).parameters
        # transformers >= 5.x renamed the KV-cache argument/output `past_key_values` -> `cache`;
        # OpenVLA's remote code (written for 4.40) still uses the old name.
        self.cache_name = "cache" if "cache" in forward_args else "past_key_values"
        # Only the last positions' logits are read; (b, T, 32064) logits are ~0.5 GB at b = 16, T = 280.
        self.keep_logits_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in forward_args), None)
        self.base_modified = False  # True once an SFT adapter has been merged into the base weights
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
            self.model = self._add_adapter(self.model.merge_and_unload())
            self.base_modified = True
        self.model.eval()
        self.mode = mode

    def _adapter_trained(self) -> bool:
        return any(("lora_B" in n) and bool(p.detach().abs().sum() > 0) for n, p in self.model.named_parameters())

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def all_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Adapter + config; the base weights are referenced by model_path, or copied when an SFT
        adapter was merged into them (then ``path/base`` holds the merged model)."""
        path = self._save_common(path, extra=dict(base_modified=self.base_modified))
        self.model.save_pretrained(path / ADAPTER_DIR)
        if self.base_modified:  # the base weights without the LoRA wrappers' extra names
            base = self.model.get_base_model()
            state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if "lora_" not in k}
            base.save_pretrained(path / MERGED_BASE_DIR, state_dict=state)
            self.processor.save_pretrained(path / MERGED_BASE_DIR)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "HFVLAPolicy":
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        path = Path(path)
        adapter = path / ADAPTER_DIR / "adapter_model.safetensors"
        if not adapter.is_file():
            raise FileNotFoundError(f"{adapter} not found: pass the directory written by policy.save(path).")
        config = PolicyConfig.from_json(path / "policy_config.json")
        meta = read_meta(path)
        base_path = path / MERGED_BASE_DIR if meta.get("base_modified") else None
        policy = cls(config, ActionStats.from_json(path / "action_stats.json"), _base_path=base_path)
        result = set_peft_model_state_dict(policy.model, load_file(str(adapter), device=str(policy.device)))
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"adapter at {adapter} does not fit the model: unexpected keys "
                             f"{result.unexpected_keys[:3]}...; was it saved with another lora config?")
        policy.base_modified = bool(meta.get("base_modified"))
        policy.mode = meta["mode"]
        return policy

