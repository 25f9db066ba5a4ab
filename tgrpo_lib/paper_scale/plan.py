"""Memory plan of a TGRPO update at paper scale, without a GPU or weights.

    python -m tgrpo_lib plan --preset openvla-7b                  # OpenVLA-7B, N = 4, 300 steps
    python -m tgrpo_lib plan --model /models/openvla-7b-finetuned-libero-goal --group-size 8
    python -m tgrpo_lib plan --preset tiny --check                # estimate vs measured, tiny Llava on CPU

The policy's architecture is built on the meta device (``policy.architecture``: shapes, no
weights), its parameters and LoRA parameters counted from the module, and the activations of
one log-prob pass estimated from its transformer stacks: per layer, the tensors autograd keeps
for the backward pass (bytes per token: norms, LoRA inputs in float32 - peft keeps adapters in
float32 and copies their bf16 inputs -, attention q/k/v/output, MLP intermediates), or only the
layer's input when the layer is checkpointed, plus the transients of the backward pass (one
recomputed layer, the gradient of the kept logits). A group of N x max_steps steps is never one
pass: the update runs ``updates.pass_steps`` steps of all N trajectories per forward/backward, so
the peak is the weights, LoRA parameters + gradients + AdamW moments, and one pass.

``--check`` measures the same pass on the tiny random Llava on CPU (bytes of tensors alive
during forward + backward, tracked per storage) and prints the estimate / measured ratio.
The last line printed is JSON with ``peak_gb``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import weakref
from dataclasses import dataclass, field, replace

from tgrpo_lib.envs.registry import MAX_STEPS
from tgrpo_lib.infra.checks import check_number
from tgrpo_lib.infra.cli import checked
from tgrpo_lib.infra.config import TrainConfig, override
from tgrpo_lib.paper_scale.presets import openvla_config
from tgrpo_lib.policy.config import DEFAULT_HF_MICRO_BATCH, PolicyConfig

# Deferred below (inside the functions that build or measure a model): policy.architecture,
# policy.hf_vla, policy.testing and make_policy import torch / transformers (~3-5 s), and the command
# checks its arguments first, so bad input is refused before they load.

GB = 1024 ** 3
LORA_BYTES = 4  # peft keeps adapter weights in float32 beside a bf16 base (autocast_adapter_dtype)
GPU_GB = 80.0
PRESETS = ("openvla-7b", "tiny")


ARCHITECTURE_ONLY = "(architecture only)"
"""The model path of a plan's config when no checkpoint directory is given (the plan reads no weights)."""


def openvla_goal_config() -> TrainConfig:
    """The openvla preset's TrainConfig on libero_goal (300 steps): the plan's default."""
    return openvla_config(ARCHITECTURE_ONLY, "libero_goal")


@dataclass(frozen=True)
class Knobs:
    """What the plan reads of a run, each value derived from its TrainConfig (the policy an hf_vla
    one): group size, step budget, minibatching, epochs, LoRA rank, dtype, micro-batch and
    checkpointing. Change them with ``changed`` (``config.override`` keys)."""

    cfg: TrainConfig = field(default_factory=openvla_goal_config)
    keep_logits: bool = True  # only the last 8 positions' logits are computed (False: all, OpenVLA's remote code)

    def changed(self, changes: dict) -> Knobs:
        """These knobs with config fields changed, e.g. ``changed({"policy.micro_batch": 8})``."""
        return replace(self, cfg=override(self.cfg, changes))

    @property
    def group_size(self) -> int:
        return self.cfg.group_size

    @property
    def max_steps(self) -> int:
        return self.cfg.env.max_steps or MAX_STEPS[self.cfg.suite]

    @property
    def micro_batch(self) -> int:
        return self.cfg.policy.micro_batch or DEFAULT_HF_MICRO_BATCH

    @property
    def minibatch_steps(self) -> int:
        return self.cfg.minibatch_steps

    @property
    def minibatches(self) -> int:
        return self.cfg.minibatches

    @property
    def epochs(self) -> int:
        return self.cfg.epochs

    @property
    def lora_rank(self) -> int:
        return self.cfg.policy.lora_rank

    @property
    def dtype_bytes(self) -> int:
        p = self.cfg.policy
        return 2 if p.dtype == "bfloat16" or (p.dtype == "auto" and p.device.startswith("cuda")) else 4

    @property
    def checkpointing(self) -> bool:
        return self.cfg.policy.gradient_checkpointing

    @property
    def pass_steps(self) -> int:  # updates.pass_steps
        return max(1, min(self.minibatch_steps, self.micro_batch // self.group_size))

    @property
    def rows(self) -> int:
        return self.pass_steps * self.group_size


def knobs_for(cfg: TrainConfig, max_steps: int | None = None) -> Knobs:
    """The plan's knobs of a TrainConfig (its policy must be an hf_vla one); ``max_steps``
    replaces the step budget."""
    return Knobs(cfg if max_steps is None else override(cfg, {"env.max_steps": max_steps}))


# ------------------------------------------------------------------------------ the estimate
def layer_bytes(st, s: int, rank: int) -> float:
    """Bytes per token one layer of stack ``st`` keeps for backward (no checkpointing); s = activation bytes."""
    d, f = st.width, st.ffn
    cast = s != LORA_BYTES  # LoRA inputs are copied to float32 per adapter, else shared with the layer

    def lora_inputs(width, n):
        return LORA_BYTES * width * (n if cast else 1)
    norm = 4 * d + 4 if st.norm == "rms" else s * d + 8  # RMSNorm keeps its float32 upcast; LayerNorm input + stats
    attn = norm + lora_inputs(d, 1 if st.fused_qkv else 3) + s * (d + 2 * st.kv_width) + s * d + 4 * st.heads + 4 * d
    mlp = norm + (lora_inputs(d, 2) + 3 * s * f if st.mlp == "swiglu" else lora_inputs(d, 1) + s * f) + 4 * f
    return attn + mlp + 4 * rank * st.lora_linears  # + the rank-wide LoRA middles


def layer_transient(st, s: int) -> float:
    """Bytes per token of activation gradients alive while one layer is back-propagated."""
    return s * (3 * st.width + 2 * st.ffn) + 4 * (st.width + st.ffn)


def pass_activations(arch, k: Knobs) -> dict:
    """Bytes of one forward/backward pass of ``k.rows`` sequences: kept activations, transient peak."""
    s, r, b = k.dtype_bytes, k.lora_rank, k.rows
    kept, transient, per_stack = 0.0, 0.0, {}
    for st in arch.stacks:
        full = layer_bytes(st, s, r) * st.tokens * b
        ckpt = k.checkpointing and st.checkpointed
        stack = st.layers * (s * st.width * st.tokens * b if ckpt else full)
        per_stack[st.name] = stack
        kept += stack
        transient = max(transient, (full if ckpt else 0.0) + layer_transient(st, s) * st.tokens * b)
    dims = arch.projector.dims
    proj = b * arch.projector.tokens * (sum(LORA_BYTES * x for x in dims[:-1]) + sum(s * x for x in dims[1:-1])
                                        + 4 * r * (len(dims) - 1))
    lm = arch.stacks[-1]
    final_norm = b * lm.tokens * (4 * lm.width + 4)
    kept += proj + final_norm
    keep = 8 if k.keep_logits and arch.keeps_logits else arch.lm_tokens
    from tgrpo_lib.policy.architecture import ACTION_TOKENS  # deferred: torch, after the arguments are checked

    logits = s * b * arch.vocab * (keep + ACTION_TOKENS)  # the kept logits' gradient, zero-filled then sliced
    inputs = b * 6 * 224 * 224 * s
    return {"kept": kept, "transient": max(transient, logits), "inputs": inputs, "per_stack": per_stack,
            "projector": proj, "final_norm": final_norm, "logits": logits}


def plan(arch, k: Knobs) -> dict:
    """The whole update's memory (bytes) and pass counts for a group of N x max_steps steps."""
    params, lora = arch.parameters, arch.lora_parameters(k.lora_rank)
    act = pass_activations(arch, k)
    weights = params * k.dtype_bytes + lora * LORA_BYTES
    lora_state = lora * (LORA_BYTES + 8)  # gradients + AdamW's two moments
    peak = weights + lora_state + act["kept"] + act["transient"] + act["inputs"]
    lm = arch.stacks[-1]
    kv_cache = 2 * lm.layers * lm.tokens * lm.kv_width * k.dtype_bytes * k.group_size  # act(), N rows at most
    passes_per_epoch = k.minibatches * math.ceil(math.ceil(k.max_steps / k.minibatches) / k.pass_steps)
    return {"params": params, "lora_params": lora, "weights": weights, "lora_state": lora_state, **act,
            "peak": peak, "act_peak": weights + kv_cache, "kv_cache": kv_cache,
            "passes_no_grad": 2 * passes_per_epoch, "passes_backward": k.epochs * passes_per_epoch,
            "sequences": k.group_size * k.max_steps}


# ------------------------------------------------------------------------------ a measured pass
class LiveTensors:
    """Bytes of tensor storage alive, and their peak, for storages created inside the block
    (forward and backward alike: the dispatch mode sees the autograd engine's ops too)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._add(out, (args, kwargs))
                return out
        self.mode, self.live, self.peak, self._sizes = _Mode(), 0, 0, {}

    def _add(self, out, inputs) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        def ptrs(tree):
            return {t.untyped_storage().data_ptr() for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)}
        given = ptrs(inputs)  # views and in-place results share an input's storage: nothing new was allocated
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or key in self._sizes or key in given:
                continue
            self._sizes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)

    def _free(self, key) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


TINY_IMAGE_SIZE = 128
"""The check's tiny Llava sees 128 px images: 256 patches, like OpenVLA, so the layers' activations,
not the 32064-wide logits, dominate the pass as they do at 7B."""


def measure_tiny(k: Knobs, directory=None) -> dict:
    """One update pass (log_prob of ``k.rows`` sequences, backward, gradients already allocated as
    from the second pass of a minibatch on) of the tiny Llava on CPU: measured peak of new tensor
    bytes beside the estimate of the same pass."""
    import tempfile

    import numpy as np
    import torch

    # deferred: torch / transformers, after the arguments are checked
    from tgrpo_lib.policy import make_policy
    from tgrpo_lib.policy.architecture import from_model_dir
    from tgrpo_lib.policy.testing import build_tiny_llava, synthetic_obs

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = directory or build_tiny_llava(tmp, image_size=TINY_IMAGE_SIZE)
        dtype = {2: "bfloat16", 4: "float32"}[k.dtype_bytes]
        policy = make_policy(PolicyConfig(kind="hf_vla", model_path=str(path), lora_rank=k.lora_rank,
                                          lora_alpha=k.lora_rank, dtype=dtype, micro_batch=k.rows,
                                          gradient_checkpointing=k.checkpointing))
        policy.set_mode("rl")
        arch = from_model_dir(path, text_tokens=_prompt_tokens(policy), checkpointing=k.checkpointing)
        obs = synthetic_obs(batch=k.rows, size=64, wrist=False, seed=1)
        tokens = np.random.default_rng(0).integers(31744, 32000, (k.rows, 7))
        instruction = "put the bowl on the plate"
        policy.log_prob(obs, instruction, tokens).sum().backward()  # warm-up; allocates the LoRA gradients
        with LiveTensors() as live:
            policy.log_prob(obs, instruction, tokens).sum().backward()
    est = pass_activations(arch, replace(k, keep_logits=policy.keep_logits_arg is not None))
    estimate = est["kept"] + est["transient"]  # pixel values: the tiny model's own size, not 2 x 224 px towers
    return {"estimate": estimate, "measured": live.peak, "ratio": estimate / live.peak, "rows": k.rows}


def _prompt_tokens(policy) -> int:
    """Text tokens of the tiny model's prompt (its tokenizer), for the estimate of the same pass."""
    from tgrpo_lib.policy.hf_vla import openvla_prompt  # deferred: transformers, after the arguments are checked

    return len(policy.processor.tokenizer(openvla_prompt("put the bowl on the plate"))["input_ids"])


# ------------------------------------------------------------------------------ the command
def build_architecture(preset: str | None, model: str | None, checkpointing: bool):
    # deferred: torch, after the arguments are checked
    from tgrpo_lib.policy.architecture import from_model_dir, openvla_7b
    from tgrpo_lib.policy.testing import build_tiny_llava

    if model:
        return from_model_dir(model, checkpointing=checkpointing)
    if preset == "openvla-7b":
        return openvla_7b(checkpointing=checkpointing)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        arch = from_model_dir(build_tiny_llava(tmp, image_size=TINY_IMAGE_SIZE), checkpointing=checkpointing)
    arch.name = "tiny random Llava (tests)"
    return arch


def largest_micro_batch(arch, k: Knobs, gpu_gb: float) -> int:
    """The most sequences per pass (a multiple of N, at most minibatch_steps x N) whose plan fits
    ``gpu_gb``; 0: none."""
    best = 0
    for steps in range(1, k.minibatch_steps + 1):
        if plan(arch, k.changed({"policy.micro_batch": steps * k.group_size}))["peak"] / GB >= gpu_gb:
            break
        best = steps * k.group_size
    return best


def _gb(x: float) -> str:
    return f"{x / GB:8.2f} GB"


def report(arch, k: Knobs, gpu_gb: float = GPU_GB, out=sys.stdout) -> dict:
    p = plan(arch, k)
    naive = plan(arch, k.changed({"policy.micro_batch": k.minibatch_steps * k.group_size,
                                  "policy.gradient_checkpointing": False}))
    w = lambda line="": print(line, file=out)  # noqa: E731
    w(f"memory plan: {arch.name}, group N = {k.group_size} x {k.max_steps} steps, "
      f"{'bf16' if k.dtype_bytes == 2 else 'fp32'}, LoRA rank {k.lora_rank} (all-linear)")
    w(f"  parameters          {p['params'] / 1e9:8.3f} B   -> {_gb(p['weights'] - p['lora_params'] * LORA_BYTES)}")
    w(f"  LoRA parameters     {p['lora_params'] / 1e6:8.1f} M   -> {_gb(p['lora_params'] * LORA_BYTES)} (float32)")
    w(f"  LoRA grads + AdamW                 {_gb(p['lora_state'])}")
    w(f"  one pass: {k.pass_steps} steps x {k.group_size} trajectories = {k.rows} sequences of "
      f"{arch.lm_tokens} LM tokens ({'layers checkpointed' if k.checkpointing else 'no checkpointing'})")
    for name, b in p["per_stack"].items():
        st = next(s for s in arch.stacks if s.name == name)
        how = "inputs only (checkpointed)" if k.checkpointing and st.checkpointed else "all activations"
        w(f"    {name:28s} {st.layers:2d} layers x {st.tokens:3d} tokens {_gb(b)}  {how}")
    w(f"    projector + final norm               {_gb(p['projector'] + p['final_norm'])}")
    w(f"    backward transient (one layer / logits) {_gb(p['transient'])}")
    w(f"  activations of one pass            {_gb(p['kept'] + p['transient'] + p['inputs'])}")
    w(f"  update peak                        {_gb(p['peak'])}   (acting: {_gb(p['act_peak'])}, KV cache "
      f"{_gb(p['kv_cache'])})")
    w(f"  passes per iteration: {p['passes_no_grad']} without gradients (pi_old, pi_ref) + {p['passes_backward']} "
      f"forward/backward over {p['sequences']} sequences")
    w(f"  without micro-batching or checkpointing ({k.minibatch_steps * k.group_size} sequences per backward): "
      f"{_gb(naive['peak'])}")
    largest = largest_micro_batch(arch, k, gpu_gb)
    w(f"  largest micro_batch under {gpu_gb:g} GB: {largest or 'none'}" + (f" (PolicyConfig(micro_batch={largest}))"
                                                                          if largest else ""))
    for note in arch.notes:
        w(f"  note: {note}")
    fits = p["peak"] / GB < gpu_gb
    w(f"  {'fits' if fits else 'does NOT fit'} in {gpu_gb:g} GB "
      f"(plus ~1 GB CUDA context and allocator cache, not counted)")
    return {"preset": arch.name, "peak_gb": round(p["peak"] / GB, 2), "gpu_gb": gpu_gb, "fits": fits,
            "params": p["params"], "lora_params": p["lora_params"], "micro_batch": k.micro_batch,
            "pass_sequences": k.rows, "checkpointing": k.checkpointing,
            "naive_peak_gb": round(naive["peak"] / GB, 1), "group_size": k.group_size, "max_steps": k.max_steps}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tgrpo_lib plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="openvla-7b")
    parser.add_argument("--model", help="local HF model directory (config.json is read, no weights)")
    parser.add_argument("--suite", default="libero_goal", help="sets the step budget (goal: 300)")
    parser.add_argument("--group-size", type=int, help="N (default: the openvla preset's, 4)")
    parser.add_argument("--max-steps", type=int, help="steps per trajectory (default: the suite's)")
    parser.add_argument("--micro-batch", type=int, help="sequences per pass (default: the preset's, 16)")
    parser.add_argument("--lora-rank", type=int, help="default: the preset's, 32")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"))
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--gpu-gb", type=float, default=GPU_GB)
    parser.add_argument("--check", action="store_true", help="also measure one pass of the tiny Llava on CPU")
    args = parser.parse_args(argv)

    def knobs() -> Knobs:
        from pathlib import Path

        if args.model and not (Path(args.model).expanduser() / "config.json").is_file():
            raise FileNotFoundError(f"--model {args.model}: no config.json there; pass a local HF model directory.")
        check_number("--gpu-gb", args.gpu_gb, 0.0, low_open=True)
        if args.max_steps is not None:
            check_number("--max-steps", args.max_steps, 1, integer=True)
        for name in ("group_size", "micro_batch", "lora_rank"):
            if getattr(args, name) is not None:
                check_number(f"--{name.replace('_', '-')}", getattr(args, name), 1, integer=True)
        cfg = openvla_config(args.model or ARCHITECTURE_ONLY, args.suite)
        changes = {"group_size": args.group_size, "policy.micro_batch": args.micro_batch,
                   "policy.lora_rank": args.lora_rank, "policy.dtype": args.dtype,
                   "policy.gradient_checkpointing": False if args.no_checkpointing else None}
        cfg = override(cfg, {k: v for k, v in changes.items() if v is not None})
        return knobs_for(cfg, args.max_steps)
    k = checked(parser, knobs)
    arch = build_architecture(args.preset, args.model, k.checkpointing)
    result = report(arch, k, args.gpu_gb)
    if args.check:
        tiny = k.changed({"group_size": 2, "policy.micro_batch": 8})  # this plan's rank, dtype, checkpointing
        m = measure_tiny(tiny)
        print(f"check on the tiny Llava (CPU, {tiny.rows} sequences, one pass): estimate "
              f"{m['estimate'] / 2**20:.2f} MiB, measured {m['measured'] / 2**20:.2f} MiB, ratio {m['ratio']:.2f}")
        result["tiny_ratio"] = round(m["ratio"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
