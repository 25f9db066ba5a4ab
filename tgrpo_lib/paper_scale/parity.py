"""Parity with OpenVLA's published LIBERO evaluation: a LIBERO-finetuned OpenVLA checkpoint on
the 50 standard init states of every task of a suite, under the published protocol (the
``openvla`` preset: 256 px renders of the meshes as shipped, JPEG round trip, Lanczos to 224,
0.9-area center crop, the suite's un-normalisation statistics from the checkpoint, greedy
decoding), printed beside the published success rates.

    python -m tgrpo_lib parity --model /models/openvla-7b-finetuned-libero-spatial --suite spatial
    python -m tgrpo_lib parity --model DIR --suite goal --tasks 0 1 --episodes 10     # a quicker look

Needs a CUDA GPU (OpenVLA-7B in bf16: ~16 GB) and the checkpoint directory; without either it
stops in one line saying what is missing. Results: ``outputs/parity/<suite>__<model dir name>/``
(``episodes.csv``, ``results.json`` with the versions of the simulator stack that produced them).

Known differences from the published script: actions are decoded over OpenVLA's 256 action
tokens only (the script takes the argmax over the whole vocabulary: a non-action argmax, rare for
a finetuned checkpoint, becomes a clipped action there); images go through Pillow and simplejpeg, not
TensorFlow (``policy/preprocess.py``: the same operations; the JPEG round trip decodes with TF's fast
integer IDCT and matches TF 2.21 bit for bit on the tested frames, the Lanczos resize up to float
rounding); and the simulator stack is whatever is installed (published: MuJoCo 2.3.x with robosuite
1.4.1; README "Paper scale"). The model is the native OpenVLA (``policy/openvla.py``, checked against
OpenVLA's own outputs); ``--remote-code`` runs the checkpoint's own code instead.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import tgrpo_lib
from tgrpo_lib.analysis.stats import format_rate, success_summary
from tgrpo_lib.envs.registry import canonical_suite
from tgrpo_lib.infra.checks import check_number
from tgrpo_lib.infra.cli import checked, run_guarded
from tgrpo_lib.policy import make_policy
from tgrpo_lib.policy.preprocess import norm_stats_from_dir, resolve_unnorm_key

PUBLISHED = {"libero_spatial": 84.7, "libero_object": 88.4, "libero_goal": 79.2, "libero_10": 53.7}
"""OpenVLA (Kim et al., 2024), LIBERO fine-tuned OpenVLA-7B, success %, 500 episodes per suite
(10 tasks x 50 standard init states, averaged over 3 seeds), MuJoCo 2.3.x + robosuite 1.4.1."""
PUBLISHED_STACK = {"mujoco": "2.3", "robosuite": "1.4.1"}


def requirements(model: str, suite: str, gpu: bool = True) -> list[str]:
    """What this machine lacks to run an OpenVLA checkpoint of ``suite`` (a CUDA GPU, the weights)."""
    from tgrpo_lib.policy.hf_vla import check_model_dir  # deferred: torch loads only once the arguments proved valid

    missing = []
    if gpu:
        import torch

        if not torch.cuda.is_available():
            missing.append("a CUDA GPU (none visible to torch)")
    try:
        check_model_dir(model)
    except FileNotFoundError:
        name = f"openvla/openvla-7b-finetuned-{suite.replace('_', '-')}"
        missing.append(f"a LIBERO-finetuned OpenVLA checkpoint at --model {model} (config.json, *.safetensors, "
                       f"tokenizer; e.g. `huggingface-cli download {name} --local-dir {model}`)")
    return missing


def unnorm_key_for(model: str, suite: str) -> str:
    """The statistics key the published script would use for ``suite``, from the checkpoint directory."""
    stats = norm_stats_from_dir(model)
    if not stats:
        name = f"openvla/openvla-7b-finetuned-{suite.replace('_', '-')}"
        raise ValueError(f"{model} has no action statistics (dataset_statistics.json or norm_stats): pass a "
                         f"LIBERO-finetuned OpenVLA checkpoint, e.g. {name}.")
    return resolve_unnorm_key(stats, suite)


def stack_note(versions: dict) -> str:
    """One line naming the simulator stack, and whether it is the published one."""
    mj, rs = versions.get("mujoco"), versions.get("robosuite")
    same = bool(mj and rs and mj.startswith(PUBLISHED_STACK["mujoco"]) and rs == PUBLISHED_STACK["robosuite"])
    which = "the published stack" if same else "published: MuJoCo 2.3.x + robosuite 1.4.1; README 'Paper scale'"
    return f"simulator: mujoco {mj}, robosuite {rs} ({which})"


def summarize(episodes, suite: str) -> dict:
    """Per-task and suite success (n, 95 % Wilson interval) beside the published suite rate."""
    tasks = {int(t): success_summary(g["success"].astype(bool)) for t, g in episodes.groupby("task_id")}
    return {"suite": suite, "tasks": tasks, "suite_summary": success_summary(episodes["success"].astype(bool)),
            "published": PUBLISHED[suite]}


def print_summary(res: dict, out=sys.stdout) -> None:
    for t, s in res["tasks"].items():
        print(f"  task {t}: {format_rate(s)}", file=out)
    s = res["suite_summary"]
    inside = 100 * s["ci_low"] <= res["published"] <= 100 * s["ci_high"]
    print(f"{res['suite']}: ours {format_rate(s)}  |  published (OpenVLA-7B) {res['published']:.1f} % "
          f"({'inside' if inside else 'outside'} our 95 % interval)", file=out)


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python -m tgrpo_lib parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="LIBERO-finetuned OpenVLA checkpoint directory")
    parser.add_argument("--suite", required=True, help="spatial | object | goal | long (or the libero_* name)")
    parser.add_argument("--tasks", type=int, nargs="*", help="task ids (default: all 10)")
    parser.add_argument("--episodes", type=int, default=50, help="standard init states per task (max 50)")
    parser.add_argument("--envs", type=int, default=4, help="environments stepping in parallel")
    parser.add_argument("--no-center-crop", action="store_true", help="for checkpoints trained without random crops")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--remote-code", action="store_true",
                        help="run OpenVLA's own modeling code (needs timm) instead of the native model")
    args = parser.parse_args(argv)

    def check():
        suite = canonical_suite(args.suite)
        check_number("--episodes", args.episodes, 1, 50, integer=True)
        check_number("--envs", args.envs, 1, integer=True)
        for t in args.tasks or ():
            check_number("task id", t, 0, 9, integer=True)
        return suite
    suite = checked(parser, check)
    missing = requirements(args.model, suite, gpu=args.device.startswith("cuda"))
    if missing:
        print(f"parity needs {' and '.join(missing)}.", file=sys.stderr)
        raise SystemExit(2)
    key = checked(parser, lambda: unnorm_key_for(args.model, suite))
    return run_guarded(parser.prog, lambda: run(args.model, suite, args.tasks or list(range(10)), args.episodes,
                                                args.envs, center_crop=not args.no_center_crop, device=args.device,
                                                unnorm_key=key, remote_code=args.remote_code))


def run(model: str, suite: str, tasks: list[int], episodes: int, envs: int, center_crop: bool = True,
        device: str = "cuda", unnorm_key: str | None = None, remote_code: bool = False) -> dict:
    """Evaluate and print/save the parity table (see the module docstring)."""
    # deferred: torch (runs, evaluation) and pandas (presets -> config) load only once the arguments
    # proved valid, so a bad flag is refused in a fraction of a second
    from tgrpo_lib.infra import provenance, runs
    from tgrpo_lib.paper_scale.presets import openvla_env, openvla_policy
    from tgrpo_lib.training.evaluation import evaluate

    policy_cfg = openvla_policy(model, suite, device=device, unnorm_key=unnorm_key or suite,
                                center_crop=0.9 if center_crop else None, remote_code=remote_code)
    env_cfg = openvla_env()
    versions = provenance.collect_versions()
    print(stack_note(versions["packages"]))
    policy = make_policy(policy_cfg)  # "sft" mode: the checkpoint itself (its fresh LoRA adapter is zero)
    table = evaluate(policy, suite, tasks, episodes, "standard", cfg=env_cfg, n_envs=envs)
    res = summarize(table, suite)
    print_summary(res)
    out = tgrpo_lib.OUTPUTS_DIR / "parity" / f"{suite}__{Path(model).expanduser().resolve().name}"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "episodes.csv", index=False)
    runs.write_json_atomic(out / "results.json", {**res, "model": str(model), "unnorm_key": unnorm_key,
                                                  "env": asdict(env_cfg), "policy": asdict(policy_cfg),
                                                  "versions": versions})
    print(f"saved {out}")
    return res


if __name__ == "__main__":
    main()
