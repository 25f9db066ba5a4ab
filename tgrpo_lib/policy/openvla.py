"""OpenVLA without its remote code: loads an OpenVLA checkpoint directory (its 4.40-era config.json,
sharded safetensors, tokenizer.json, preprocessor_config.json, dataset_statistics.json) into the native
model of ``openvla_model.py`` with no ``trust_remote_code`` and no timm, and checks it against golden
outputs of OpenVLA's own code.

    model = load_openvla("/models/openvla-7b-finetuned-libero-goal", torch.bfloat16, "cuda")
    processor = OpenVLAProcessor.from_dir("/models/openvla-7b-finetuned-libero-goal")
    python -m tgrpo_lib.policy.openvla verify --model DIR --golden golden.npz [--device cuda]
    python -m tgrpo_lib.policy.openvla golden --model DIR --out golden.npz     # OpenVLA's own code; needs timm

Loading builds every parameter on the meta device, then fills each one from the safetensors shards on
the target device and in the target dtype, tensor by tensor: a 7B model is never held twice, and not at
all in host memory when the target is a GPU. The checkpoint's key layout -> the native one:
``openvla_keys.py``. The policy layer uses all of this through ``PolicyConfig(kind="hf_vla")``
(``hf_vla.py``); ``PolicyConfig(remote_code=True)`` loads OpenVLA's own code instead (``openvla_remote.py``).

``verify`` runs the golden file's inputs end to end (instruction -> prompt ids + 29871, image -> pixel
values, teacher-forced logits at the 7 action positions, KV-cached greedy decoding over the full
vocabulary as ``predict_action`` does, de-tokenised and un-normalised actions) in float32 and ends with
one JSON line; exit 0 only within ``LOGIT_TOLERANCE``, identical prompt ids and greedy tokens, and
actions within ``ACTION_TOLERANCE``. The tolerances are the shared fixture's (``fixtures/openvla-tiny``
README): 1e-4 is ~9x the spread between SDPA and eager attention and below every planted bug's effect.
``golden`` writes such a file for any checkpoint with OpenVLA's own code (``openvla_remote.make_golden``), so
the native model can be checked on the very weights a run will use (two processes: each holds the model once).
torch and transformers load inside the functions, so a command refuses bad input before they do (~4 s).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tgrpo_lib.infra.cli import checked

from .action_tokens import ActionStats, ActionTokenizer
from .openvla_keys import DINO, is_unused, native_tensors, tower_sizes
from .openvla_remote import make_golden, missing_remote_requirements
from .preprocess import norm_stats_from_dir, resolve_unnorm_key

LOGIT_TOLERANCE = 1e-4
ACTION_TOLERANCE = 1e-12
EMPTY_TOKEN_ID = 29871  # Llama-2's "▁", which predict_action appends after "Out:"
ACTION_STEPS = 7
RANDOM_WEIGHTS = "random_weights.json"
"""Stands in for the weights in a directory written by ``policy.testing.build_openvla_dir``: ``{"seed", "towers"}``
(tower sizes, as ``openvla_keys.tower_sizes`` reads them off real weights). The loader then draws every parameter
on the device: OpenVLA-7B's shapes, memory and speed with no download (``benchmarks/gpu_smoke.py --random-weights``)."""
GOLDEN_KEYS = ("images", "instructions", "input_ids", "input_ids_len", "given_actions", "logits_teacher_forced",
               "greedy_tokens", "actions", "unnorm_key")


def read_config(model_dir: Path) -> dict:
    """config.json of an OpenVLA checkpoint; refused (naming the fix) where the native model can't run it."""
    raw = json.loads((model_dir / "config.json").read_text())
    if raw.get("model_type") != "openvla":
        raise ValueError(f"{model_dir} holds a {raw.get('model_type')!r} model, not OpenVLA: the native loader "
                         "reads OpenVLA checkpoints (config.json model_type 'openvla').")
    problems = []
    if raw.get("arch_specifier") != "no-align+fused-gelu-mlp":
        problems.append(f"arch_specifier {raw.get('arch_specifier')!r} (native: 'no-align+fused-gelu-mlp')")
    if not raw.get("use_fused_vision_backbone", False):
        problems.append("a single vision tower (native: the fused DINOv2 + SigLIP backbone)")
    if any(raw.get("timm_override_act_layers") or []):
        problems.append(f"timm_override_act_layers {raw['timm_override_act_layers']}")
    if problems:
        raise ValueError(f"{model_dir}: the native OpenVLA covers OpenVLA-7B's layout; this checkpoint has "
                         f"{'; '.join(problems)}: load it with PolicyConfig(remote_code=True).")
    return raw


def weight_files(model_dir: Path) -> list[Path]:
    """The checkpoint's safetensors files (sharded with an index, or one ``model.safetensors``)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return [model_dir / f for f in dict.fromkeys(json.loads(index.read_text())["weight_map"].values())]
    if (model_dir / "model.safetensors").is_file():
        return [model_dir / "model.safetensors"]
    raise FileNotFoundError(f"{model_dir} has no model.safetensors(.index.json): the native loader reads "
                            "safetensors; download the checkpoint's *.safetensors files.")


def load_openvla(model_dir: str | Path, dtype=None, device="cpu", attention: str | None = None):
    """The native OpenVLA of a checkpoint directory, in ``dtype`` (default float32) on ``device``, eval mode."""
    import torch
    from accelerate import init_empty_weights
    from safetensors import safe_open

    from .openvla_model import ATTENTION, OpenVLANative, native_config  # deferred: torch + transformers (~4 s)

    model_dir, device, dtype = Path(model_dir).expanduser(), torch.device(device), dtype or torch.float32
    raw, random = read_config(model_dir), model_dir / RANDOM_WEIGHTS
    files = [] if random.is_file() else weight_files(model_dir)
    shapes = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            shapes.update({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    spec = json.loads(random.read_text()) if random.is_file() else {"towers": tower_sizes(shapes)}
    config = native_config(raw, spec["towers"], attention or ATTENTION)
    with init_empty_weights(include_buffers=False):  # parameters on meta; the small buffers (RoPE, ids) computed
        model = OpenVLANative(config)
    if not files:
        _draw_parameters(model, spec["seed"], dtype, device)
        return model.to(device).eval()
    params, filled = dict(model.named_parameters()), set()
    where = f"cuda:{device.index or 0}" if device.type == "cuda" else device.type
    for file in files:
        with safe_open(str(file), framework="pt", device=where) as f:
            for key in f.keys():
                if is_unused(key, config.tower_depths):
                    continue
                for name, tensor in native_tensors(key, f.get_tensor(key)):
                    if name not in params or params[name].shape != tensor.shape:
                        got = tuple(params[name].shape) if name in params else "no such parameter"
                        raise ValueError(f"{file.name}: {key} -> {name} {tuple(tensor.shape)} does not fit the "
                                         f"model that config.json describes ({got}): a mismatched config.json?")
                    _set_parameter(model, name, tensor.to(dtype))
                    filled.add(name)
    unused = {DINO + "embeddings.mask_token"}  # DINOv2's masked-image pretraining token: no checkpoint has it
    for name in unused - filled:
        _set_parameter(model, name, torch.zeros(params[name].shape, dtype=dtype, device=device))
    missing = sorted(set(params) - filled - unused)
    if missing:
        raise ValueError(f"{model_dir}: the checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}: an "
                         "incomplete download? Every shard named in model.safetensors.index.json must be there.")
    return model.to(device).eval()  # moves only the buffers: every parameter is in place already


def _draw_parameters(model, seed: int, dtype, device) -> None:
    """Random weights straight on ``device``: N(0, 0.02) matrices and embeddings, unit norm scales and layer
    scales, zero biases; sane activations through 32 layers, no meaning."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    for name, p in list(model.named_parameters()):
        t = torch.empty(p.shape, dtype=dtype, device=device)
        if name.endswith("bias"):
            t.zero_()
        elif t.ndim == 1:
            t.fill_(1.0)
        else:
            t.normal_(0.0, 0.02, generator=generator)
        _set_parameter(model, name, t)


def _set_parameter(model, name: str, tensor) -> None:
    from torch import nn

    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, nn.Parameter(tensor, requires_grad=False))


# ------------------------------------------------------------------------------ processor
class OpenVLAProcessor:
    """OpenVLA's PrismaticProcessor without its remote code: the tokenizer (``tokenizer.json``) and, per
    tower, PIL resize -> center crop -> /255 -> normalise with the saved ``tvf_normalize_params`` (which
    OpenVLA's converter bf16-rounded for DINOv2; the ``means``/``stds`` beside them are *not* applied),
    the towers stacked on channels."""

    def __init__(self, tokenizer, towers: list[dict]):
        self.tokenizer, self.towers = tokenizer, towers

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> "OpenVLAProcessor":
        from transformers import PreTrainedTokenizerFast

        model_dir = Path(model_dir).expanduser()
        for name in ("tokenizer.json", "preprocessor_config.json"):
            if not (model_dir / name).is_file():
                raise FileNotFoundError(f"{model_dir} has no {name}: download the checkpoint's tokenizer and "
                                        "processor files too (tokenizer*.json, preprocessor_config.json).")
        pre = json.loads((model_dir / "preprocessor_config.json").read_text())
        if pre.get("tvf_do_letterbox") or pre.get("image_resize_strategy", "resize-naive") != "resize-naive":
            raise ValueError(f"{model_dir}: image_resize_strategy {pre.get('image_resize_strategy')!r} is not "
                             "OpenVLA-7B's 'resize-naive': load it with PolicyConfig(remote_code=True).")
        towers = [dict(size=tuple(r["size"]), resample=int(r["interpolation"]), crop=tuple(c["output_size"]),
                       mean=n["mean"], std=n["std"])
                  for r, c, n in zip(pre["tvf_resize_params"], pre["tvf_crop_params"], pre["tvf_normalize_params"])]
        # PreTrainedTokenizerFast reads tokenizer.json as is; AutoTokenizer would follow auto_map to remote code
        return cls(PreTrainedTokenizerFast.from_pretrained(model_dir, local_files_only=True), towers)

    def pixel_values(self, image):
        """One PIL image -> (3 x towers, H, W) float32, as OpenVLA's processor computes it."""
        import torch

        out, image = [], image.convert("RGB")
        for t in self.towers:
            img = image.resize(t["size"][::-1], t["resample"])  # PIL takes (W, H); 3 = bicubic
            (h, w), (ch, cw) = t["size"], t["crop"]
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            img = img.crop((left, top, left + cw, top + ch))
            x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255)  # (3, H, W)
            mean, std = torch.tensor(t["mean"])[:, None, None], torch.tensor(t["std"])[:, None, None]
            out.append((x - mean) / std)
        return torch.cat(out, dim=0)

    def __call__(self, text, images, return_tensors: str = "pt") -> dict:
        """``text`` (one prompt or equally long prompts) and PIL ``images`` -> input_ids, attention_mask,
        pixel_values, like OpenVLA's processor (BOS first, no EOS, 29871 not appended)."""
        import torch

        enc = self.tokenizer(text, return_tensors="pt")
        images = images if isinstance(images, (list, tuple)) else [images]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "pixel_values": torch.stack([self.pixel_values(im) for im in images])}


# ------------------------------------------------------------------------------ the golden check
def greedy_tokens(model, input_ids, pixel_values, steps: int = ACTION_STEPS):
    """(B, T) prompt ids (29871 appended) -> (B, steps) full-vocabulary argmax tokens, KV-cached, as
    OpenVLA's ``predict_action(do_sample=False)`` decodes (not restricted to the action ids)."""
    import torch

    tokens = []
    with torch.no_grad():
        out = model(input_ids, torch.ones_like(input_ids), pixel_values, use_cache=True, logits_to_keep=1)
        mask = torch.ones_like(input_ids)
        for _ in range(steps):
            tokens.append(out.logits[:, -1].argmax(-1))  # (B,)
            mask = torch.cat([mask, mask[:, :1]], dim=1)
            out = model(tokens[-1][:, None], mask, cache=out.cache, use_cache=True)
    return torch.stack(tokens, dim=1)


def compare_with_golden(model_dir: str | Path, golden_path: str | Path, device: str = "cpu") -> dict:
    """Every golden input end to end through the native model in float32 (module docstring): the errors."""
    import torch
    from PIL import Image

    g = dict(np.load(golden_path, allow_pickle=False))
    model_dir = Path(model_dir).expanduser()
    model, processor = load_openvla(model_dir, torch.float32, device), OpenVLAProcessor.from_dir(model_dir)
    raw = read_config(model_dir)
    tokenizer = ActionTokenizer(raw["text_config"]["vocab_size"] - raw.get("pad_to_multiple_of", 0),
                                raw.get("n_action_bins", 256))
    stats = norm_stats_from_dir(model_dir, raw.get("norm_stats"))
    a = stats[resolve_unnorm_key(stats, str(g["unnorm_key"]))]["action"]
    action_stats = ActionStats(q01=tuple(a["q01"]), q99=tuple(a["q99"]),
                               mask=tuple(a.get("mask", [True] * 6 + [False])))
    res = dict(max_abs_logit_err=0.0, tokens_equal=True, max_abs_action_err=0.0, input_ids_equal=True,
               max_abs_pixel_err=0.0)
    for i, instruction in enumerate(g["instructions"]):
        prompt = f"In: What action should the robot take to {str(instruction).lower()}?\nOut:"
        enc = processor(prompt, Image.fromarray(g["images"][i]))
        ids = torch.cat([enc["input_ids"], torch.tensor([[EMPTY_TOKEN_ID]])], dim=1)  # (1, T)
        res["input_ids_equal"] &= ids[0].tolist() == g["input_ids"][i, :g["input_ids_len"][i]].tolist()
        if "pixel_values" in g:
            res["max_abs_pixel_err"] = max(res["max_abs_pixel_err"],
                                           float(np.abs(enc["pixel_values"][0].numpy() - g["pixel_values"][i]).max()))
        ids, px = ids.to(device), enc["pixel_values"].to(device)
        forced = torch.cat([ids, torch.as_tensor(g["given_actions"][i:i + 1], device=device)], dim=1)
        with torch.no_grad():
            logits = model(forced, torch.ones_like(forced), px).logits[0, -8:-1].float().cpu().numpy()  # (7, V)
        res["max_abs_logit_err"] = max(res["max_abs_logit_err"],
                                       float(np.abs(logits - g["logits_teacher_forced"][i]).max()))
        tokens = greedy_tokens(model, ids, px)[0].cpu().numpy()
        res["tokens_equal"] &= bool(np.array_equal(tokens, g["greedy_tokens"][i]))
        actions = action_stats.unnormalize(tokenizer.decode(tokens))
        res["max_abs_action_err"] = max(res["max_abs_action_err"], float(np.abs(actions - g["actions"][i]).max()))
    return res


def within_tolerance(res: dict) -> bool:
    return bool(res["input_ids_equal"] and res["tokens_equal"] and res["max_abs_logit_err"] <= LOGIT_TOLERANCE
                and res["max_abs_action_err"] <= ACTION_TOLERANCE)


def _check_model(model: str) -> None:
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {model} has no config.json: pass an OpenVLA checkpoint directory "
                                "(config.json, *.safetensors, tokenizer.json, preprocessor_config.json).")
    read_config(path)
    weight_files(path)


def _check_golden(flag: str, golden: str, keys=GOLDEN_KEYS) -> None:
    """Bad input in one line naming the fix, before torch loads."""
    if not Path(golden).is_file():
        raise FileNotFoundError(f"{flag} {golden} is not a file: pass a golden.npz made by OpenVLA's own code "
                                "(`python -m tgrpo_lib.policy.openvla golden`, or the shared openvla-tiny fixture's).")
    try:
        found = set(np.load(golden, allow_pickle=False).files)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"{flag} {golden} is not a readable .npz ({type(exc).__name__}): pass a golden.npz.") from None
    if missing := [k for k in keys if k not in found]:
        raise ValueError(f"{flag} {golden} lacks {missing}: pass a golden.npz in the openvla-tiny fixture's format.")


def _check_golden_run(args) -> None:
    _check_model(args.model)
    if args.inputs:
        _check_golden("--inputs", args.inputs, ("images", "instructions", "given_actions"))
    if not Path(args.out).expanduser().resolve().parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: its folder does not exist; create it or pass another path.")
    if missing := missing_remote_requirements():
        raise ValueError(f"golden runs OpenVLA's own code, which needs {missing}: pip install timm==0.9.16 and the "
                         "torchvision built for your torch, in this or a separate environment.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgrpo_lib.policy.openvla", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the native model against a golden.npz of OpenVLA's own code")
    verify.add_argument("--model", required=True, help="OpenVLA checkpoint directory")
    verify.add_argument("--golden", required=True, help="golden.npz (the openvla-tiny fixture's format)")
    verify.add_argument("--device", default="cpu", help="cpu | cuda (float32 either way)")
    golden = sub.add_parser("golden", help="write a golden.npz with OpenVLA's own code (needs timm)")
    golden.add_argument("--model", required=True, help="OpenVLA checkpoint directory")
    golden.add_argument("--out", required=True, help="golden.npz to write")
    golden.add_argument("--unnorm-key", help="statistics key or suite (default: the only one)")
    golden.add_argument("--inputs", help="a golden.npz whose images, instructions and given actions to reuse")
    golden.add_argument("--device", default="cpu", help="cpu | cuda (float32 either way)")
    args = parser.parse_args(argv)
    if args.command == "golden":
        checked(golden, lambda: _check_golden_run(args))
        made = make_golden(args.model, args.out, args.unnorm_key,
                           dict(np.load(args.inputs)) if args.inputs else None, args.device)
        print(f"wrote {args.out}: {len(made['images'])} inputs, unnorm_key {made['unnorm_key']}")
        return 0
    checked(verify, lambda: (_check_model(args.model), _check_golden("--golden", args.golden)))
    res = compare_with_golden(args.model, args.golden, args.device)
    print(f"prompt ids {'identical' if res['input_ids_equal'] else 'DIFFER'}; pixel values within "
          f"{res['max_abs_pixel_err']:.1e}; tolerances: logits {LOGIT_TOLERANCE}, actions {ACTION_TOLERANCE}, "
          f"tokens exact")
    print(json.dumps({k: res[k] for k in ("max_abs_logit_err", "tokens_equal", "max_abs_action_err")}))
    return 0 if within_tolerance(res) else 1


__all__ = ["ACTION_TOLERANCE", "LOGIT_TOLERANCE", "OpenVLAProcessor", "compare_with_golden", "greedy_tokens",
           "load_openvla", "read_config", "weight_files", "within_tolerance"]

if __name__ == "__main__":
    raise SystemExit(main())
