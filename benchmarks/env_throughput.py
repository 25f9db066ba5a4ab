"""LIBERO environment throughput: physics only, rendered (standard vs fast), group engine, resets,
and the CPU of LiberoEnv's trimmed step against robosuite's own step, alternating on one env.

    .venv/bin/python benchmarks/env_throughput.py                       # libero_object task 0, 128 px
    .venv/bin/python benchmarks/env_throughput.py --suite libero_10 --task 0 --steps 40 --json
    .venv/bin/python benchmarks/env_throughput.py --compare-images docs/render_quality.png

``--compare-images`` instead renders the same 21 frames (init state 0, 20 random actions) of
task 0 of each suite in both modes, prints the mean absolute pixel difference (MAD, in /255)
and checks the simulator states match; it writes a standard | fast | |diff| x4 picture.

Single-env numbers run with one llvmpipe render thread (``--render-threads``), i.e. per core;
the group engine spreads N environments over the machine's cores (one render thread each), so
``group/single`` is the speed-up from using every core. One env and the group alternate for
``--rounds`` rounds, so machine load hits both alike, and the ratio reported is the median of the
rounds' ratios. Software rendering is noisy on a shared machine: the load average is printed
with the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="libero_object", help="suite name or alias (spatial|object|goal|long)")
    p.add_argument("--task", type=int, default=0, help="task id inside the suite (0-9)")
    p.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    p.add_argument("--size", type=int, default=128, help="camera height = width (pixels)")
    p.add_argument("--group-n", type=int, default=4, help="environments in the group engine")
    p.add_argument("--resets", type=int, default=3, help="timed resets per reset measurement")
    p.add_argument("--render-threads", type=int, default=1,
                   help="llvmpipe threads (LP_NUM_THREADS) of this process and the engine's workers")
    p.add_argument("--rounds", type=int, default=3, help="alternating one-env / group rounds per render quality")
    p.add_argument("--skip-group", action="store_true", help="skip the group-engine measurements")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--compare-images", metavar="PNG", help="compare standard vs fast frames on the 4 suites instead")
    return p.parse_args()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> dict:
    args = _parse()
    os.environ["LP_NUM_THREADS"] = str(args.render_threads)  # before any GL context exists
    import tgrpo_lib  # noqa: F401  (headless GL + LIBERO config before libero is imported)

    import numpy as np

    from tgrpo_lib.envs.config import EnvConfig
    from tgrpo_lib.envs.core import LiberoEnv
    from tgrpo_lib.envs.group import GroupEngine
    from tgrpo_lib.envs.registry import canonical_suite, get_task

    if args.compare_images:
        return compare_images(args)
    suite = canonical_suite(args.suite)
    task = get_task(suite, args.task)
    from libero.libero import benchmark

    init_states = benchmark.get_benchmark_dict()[suite]().get_task_init_states(args.task)
    actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, 7))  # (T, 7)
    load_before = os.getloadavg()
    res: dict = {"suite": suite, "task": args.task, "size": args.size, "steps": args.steps,
                 "cores": os.cpu_count(), "render_threads": args.render_threads}

    def single(cfg: EnvConfig) -> tuple[float, float]:
        t0 = time.perf_counter()
        env = LiberoEnv(task, cfg)
        build = time.perf_counter() - t0
        env.reset(init_states[0])
        env.step(actions[0])  # first frame allocates buffers: keep it out of the timing
        t0, c0 = time.perf_counter(), time.process_time()
        for a in actions:
            env.step(a)
        sps = len(actions) / (time.perf_counter() - t0)
        cpu_ms[cfg.render_quality if cfg.cameras else "norender"] = 1e3 * (time.process_time() - c0) / len(actions)
        env.close()
        return sps, build

    def reset_time(cfg: EnvConfig) -> float:
        env = LiberoEnv(task, cfg)
        env.reset(init_states[0])
        t0 = time.perf_counter()
        for k in range(args.resets):
            env.reset(init_states[(k + 1) % len(init_states)])
        dt = (time.perf_counter() - t0) / args.resets
        env.close()
        return dt

    def single_and_group(cfg: EnvConfig) -> None:
        """One env in this process and the group engine (lock-step ``step``), round by round."""
        t0 = time.perf_counter()
        env = LiberoEnv(task, cfg)
        out: dict = {"build_s": time.perf_counter() - t0, "single": [], "group": [], "cpu": [], "group_cpu": []}
        env.reset(init_states[0])
        env.step(actions[0])  # first frame allocates buffers: keep it out of the timing
        eng = None if args.skip_group else GroupEngine(suite, args.task, args.group_n, cfg)
        try:
            if eng is not None:
                eng.reset(init_states[0])
                eng.step(np.repeat(actions[:1], args.group_n, 0))
            for _ in range(args.rounds):
                env.reset(init_states[0])
                t0, c0 = time.perf_counter(), time.process_time()
                for a in actions:
                    env.step(a)
                out["single"].append(len(actions) / (time.perf_counter() - t0))
                out["cpu"].append(1e3 * (time.process_time() - c0) / len(actions))
                if eng is None:
                    continue
                eng.reset(init_states[0])
                pids = eng.worker_pids
                t0, c0, w0 = time.perf_counter(), time.process_time(), sum(_cpu_s(p) for p in pids)
                for a in actions:
                    eng.step(np.repeat(a[None], args.group_n, 0))
                n = args.group_n * len(actions)
                out["group"].append(n / (time.perf_counter() - t0))
                cpu = time.process_time() - c0 + sum(_cpu_s(p) for p in pids) - w0  # parent + workers
                out["group_cpu"].append(1e3 * cpu / n)
        finally:
            env.close()
            if eng is not None:
                eng.close()
        quality = cfg.render_quality
        res[f"{quality}_sps"], res[f"{quality}_build_s"] = float(np.median(out["single"])), out["build_s"]
        cpu_ms[quality] = float(np.median(out["cpu"]))
        if eng is not None:
            res[f"group_{quality}_sps"] = float(np.median(out["group"]))
            res[f"group_over_single_{quality}"] = float(np.median(np.divide(out["group"], out["single"])))
            res[f"group_over_single_{quality}_rounds"] = [round(g / s, 3) for g, s in zip(out["group"], out["single"])]
            cpu_ms[f"group_{quality}"] = float(np.median(out["group_cpu"]))

    def step_trims(cfg: EnvConfig, rounds: int = 4) -> dict:
        """CPU ms per step of LiberoEnv's trimmed step (unused robosuite observables off, the
        repeated mj_forward per substep dropped) vs robosuite's own, alternating on one env."""
        env = LiberoEnv(task, cfg)
        out: dict[str, list] = {"trimmed": [], "robosuite": []}

        def run() -> float:
            env.reset(init_states[0])
            c0 = time.process_time()
            for a in actions:
                env.step(a)
            return 1e3 * (time.process_time() - c0) / len(actions)
        try:
            for _ in range(rounds):
                out["trimmed"].append(run())
                with env.robosuite_step():  # every observable sampled, mj_forward twice per substep
                    out["robosuite"].append(run())
        finally:
            env.close()
        return {k: float(np.median(v)) for k, v in out.items()}

    cpu_ms: dict[str, float] = {}  # CPU per env step: load-independent, unlike steps/s
    size = args.size
    for label, cfg in (("norender", EnvConfig(camera_size=args.size, cameras=())), ("fast", EnvConfig(camera_size=args.size))):
        trims = step_trims(cfg)
        res[f"step_trims_{label}_cpu_ms"] = trims
    res["norender_sps"], _ = single(EnvConfig(camera_size=size, cameras=()))
    for quality in ("standard", "fast"):
        single_and_group(EnvConfig(camera_size=size, render_quality=quality))
    for quality in ("standard", "fast"):
        for hard in (True, False):
            key = f"reset_{'hard' if hard else 'reuse'}_{quality}_s"
            res[key] = reset_time(EnvConfig(camera_size=size, render_quality=quality, hard_reset=hard))
    res["fast_over_standard"] = res["fast_sps"] / res["standard_sps"]
    res.update({f"cpu_ms_per_step_{k}": v for k, v in cpu_ms.items()})
    res["loadavg_before"] = [round(x, 2) for x in load_before]
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    print(f"\n{suite} task {args.task}, {size} px, {args.steps} steps, {res['cores']} cores, "
          f"load average before {res['loadavg_before']} after {res['loadavg_after']}")
    for label in ("norender", "fast"):
        t = res[f"step_trims_{label}_cpu_ms"]
        print(f"step CPU ms, {label:8s}: trimmed {t['trimmed']:.2f} vs robosuite's own {t['robosuite']:.2f} "
              f"(x{t['robosuite'] / t['trimmed']:.2f}; median of 4 alternating rounds)")
    rows = [
        ("no render (physics limit)", res["norender_sps"], ""),
        ("standard, 1 env", res["standard_sps"], f"build {res['standard_build_s']:.1f} s"),
        ("fast, 1 env", res["fast_sps"], f"build {res['fast_build_s']:.1f} s; x{res['fast_over_standard']:.2f} standard"),
    ]
    if not args.skip_group:
        rows += [
            (f"{q}, group N={args.group_n}", res[f"group_{q}_sps"],
             f"x{res[f'group_over_single_{q}']:.2f} one env (median of rounds "
             f"{', '.join(f'{x:.2f}' for x in res[f'group_over_single_{q}_rounds'])})")
            for q in ("standard", "fast")
        ]
    print(f"{'':28s} {'steps/s':>8s}")
    for name, sps, note in rows:
        print(f"{name:28s} {sps:8.1f}  {note}")
    print("CPU ms per env step (all threads; a shared machine inflates wall time, not these): "
          + ", ".join(f"{k} {v:.1f}" for k, v in cpu_ms.items()))
    for quality in ("standard", "fast"):
        print(f"reset ({quality}): hard {res[f'reset_hard_{quality}_s']:.2f} s, reused model {res[f'reset_reuse_{quality}_s']:.2f} s")
    if args.json:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}))
    return res


def compare_images(args: argparse.Namespace) -> dict:
    """Standard vs fast on task ``--task`` of each suite: MAD table + side-by-side picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from libero.libero import benchmark

    from tgrpo_lib.envs.config import EnvConfig
    from tgrpo_lib.envs.core import make_env
    from tgrpo_lib.envs.registry import SUITES

    actions = np.random.default_rng(0).uniform(-1, 1, (20, 7))  # (T, 7)
    table, shown = {}, []
    for suite in SUITES:
        init_state = benchmark.get_benchmark_dict()[suite]().get_task_init_states(args.task)[0]
        frames, states = {}, {}
        for quality in ("standard", "fast"):
            env = make_env(suite, args.task, EnvConfig(camera_size=args.size, render_quality=quality))
            seq = [env.reset(init_state)["agentview"]]
            seq += [env.step(a)[0]["agentview"] for a in actions]
            frames[quality], states[quality] = np.stack(seq).astype(np.float64), env.get_sim_state()  # (T+1, H, W, 3)
            env.close()
        mad = np.abs(frames["standard"] - frames["fast"]).mean(axis=(1, 2, 3))  # (T+1,)
        table[suite] = {"mad_mean": float(mad.mean()), "mad_max": float(mad.max()),
                        "state_equal": bool(np.array_equal(states["standard"], states["fast"]))}
        k = len(mad) // 2
        shown.append((suite, frames["standard"][k], frames["fast"][k], mad[k]))
    print(f"\n{'suite (task ' + str(args.task) + ')':22s} {'MAD mean':>9s} {'MAD max':>8s}  state equal")
    for suite, row in table.items():
        print(f"{suite:22s} {row['mad_mean']:9.2f} {row['mad_max']:8.2f}  {row['state_equal']}")
    fig, axes = plt.subplots(len(shown), 3, figsize=(7.5, 2.6 * len(shown)))
    for row, (suite, std, fast, mad) in zip(axes, shown):
        diff = np.clip(np.abs(std - fast) * 4, 0, 255)
        for ax, img, title in zip(row, (std, fast, diff), ("standard", "fast", f"|diff| x4 (MAD {mad:.1f}/255)")):
            ax.imshow(img.astype(np.uint8), interpolation="nearest")
            ax.set_title(f"{suite}: {title}" if title == "standard" else title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.compare_images, dpi=110)
    print(f"wrote {args.compare_images}")
    if args.json:
        print(json.dumps(table))
    return table


if __name__ == "__main__":
    main()
    sys.exit(0)
