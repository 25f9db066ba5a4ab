"""Fault injection on a short training run: kill a simulator worker, start the run twice, send
SIGTERM, Ctrl-C twice, stop a worker with SIGSTOP, fill the disk under metrics.jsonl, cut the last
checkpoint and the metrics file, then resume to the end and check the result against an
uninterrupted run of the same config. Then Ctrl-C in a standalone evaluation, and a reward
program that formats the state (docs/reliability.md: what each does and the line it ends with).

    .venv/bin/python benchmarks/fault_injection.py                  # ~8 min on 2 cores
    .venv/bin/python benchmarks/fault_injection.py --iterations 12 --keep

Each run is a child process (``--child``: one tiny training run under the commands' own
``cli.run_guarded``) in its own process group, so a Ctrl-C is sent as a terminal sends it, to the
child and its simulator workers together. Everything lands in a scratch outputs folder (deleted
at the end unless ``--keep``). Printed per fault: the child's exit code, the one line it ended
with, seconds from the fault to its exit, and whether any worker process outlived it; at the end
whether the resumed run's LoRA weights and per-iteration metrics equal the uninterrupted run's.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tgrpo_lib, for this script and (PYTHONPATH) its children
from tgrpo_lib.envs.worker import process_alive, worker_pids  # noqa: E402  (after the path is set)

RUN = "faulty"


def tiny_config(name: str, iterations: int):
    from tgrpo_lib.infra.config import config_for

    # the tests' tiny run: 8-step episodes, groups of 2, one evaluation episode per set
    return config_for(iterations=iterations, eval_interval=0, final_eval_episodes=1, group_size=2, epochs=1,
                      video_episodes=0, env={"max_steps": 8}, policy={"use_wrist": False}, run_name=name,
                      skip_groups="none", seed=0)


def child(name: str, iterations: int, root: str) -> None:
    """One training run, printing ``iter <k>`` after each iteration so the parent can time its faults."""
    from tgrpo_lib.infra.cli import run_guarded
    from tgrpo_lib.training.train import train

    print("started", flush=True)
    run_guarded("fault_injection child", lambda: train(tiny_config(name, iterations), root=root, progress=False,
                                                       on_iteration=lambda it, m: print(f"iter {it}", flush=True)))
    print("complete", flush=True)


EVAL_ENV = {"cameras": (), "max_steps": 40}
"""The standalone evaluation's env: no camera, 40-step episodes (a standing-still policy runs them all)."""


def eval_child(checkpoint: str) -> None:
    """A standalone evaluation of a standing-still policy, its greedy episodes cached beside
    ``checkpoint``: 2 states (cached), then 8, held still once 2 of these ended (Ctrl-C arrives then)."""
    import numpy as np

    from tgrpo_lib.infra.cli import run_guarded
    from tgrpo_lib.envs import EnvConfig, GroupEngine
    from tgrpo_lib.training.evaluation import evaluate_set

    second, steps = [], {}

    def policy(obs):
        if second:
            for env in obs["env"]:
                steps[env] = steps.get(env, 0) + 1
            if second == [True] and len(steps) == 2 and min(steps.values()) > EVAL_ENV["max_steps"]:
                print("iter second set: 2 episodes ended", flush=True)  # both envs began their 2nd episode
                second.append(True)
                while True:  # no further step until the Ctrl-C
                    time.sleep(1)
        return np.zeros((len(obs["proprio"]), 7))

    def work():
        with GroupEngine("libero_object", 0, 2, EnvConfig(**EVAL_ENV)) as engine:
            evaluate_set(policy, engine, "standard", 2, checkpoint=checkpoint, progress=False)
            print("iter first set cached", flush=True)
            second.append(True)
            evaluate_set(policy, engine, "standard", 8, checkpoint=checkpoint, progress=False)
    run_guarded("evaluation", work)


FORMATS_STATE = """
N_STAGES = 1

def reward(state, step):
    x = '%r' % (state,)
    return state["eef_pos"][..., 0] * 0.0 + 1.0, state["eef_pos"][..., 0] * 0
"""


# ------------------------------------------------------------------------------ the parent
class Child:
    def __init__(self, name: str, iterations: int, root: Path, env: dict | None = None, mode: str = "--child"):
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, __file__, mode, name, "--iterations", str(iterations),
                                      "--root", str(root)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.workers: set[int] = set()

    def wait_for(self, prefix: str, timeout: float = 600) -> str:
        """Read the child's stdout up to a line starting with ``prefix``; returns that line."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.proc.stdout.readline()
            if not got:
                raise RuntimeError(f"child exited before printing {prefix!r}: {self.proc.stderr.read()[-2000:]}")
            self.workers |= worker_pids(self.proc.pid)
            if got.startswith(prefix):
                return got.strip()
        raise TimeoutError(prefix)

    def finish(self, t_fault: float | None = None, timeout: float = 900) -> dict:
        """Wait for the child and its workers: exit code, last stderr line, seconds from the fault
        to the child's exit and to the last worker's exit, and any worker still alive 10 s later."""
        io = {}
        reader = threading.Thread(target=lambda: io.update(zip(("out", "err"), self.proc.communicate(timeout=timeout))))
        reader.start()
        while self.proc.poll() is None:
            self.workers |= worker_pids(self.proc.pid)
            time.sleep(0.02)
        exited = time.perf_counter()
        deadline = exited + 10
        while any(process_alive(p) for p in self.workers) and time.perf_counter() < deadline:
            time.sleep(0.02)
        gone = time.perf_counter()
        reader.join()
        last = [line for line in io["err"].splitlines()
                if line.strip() and not line.startswith(("simplifying", "Loading"))]
        since = (lambda t: t - t_fault) if t_fault is not None else (lambda t: None)
        return {"exit": self.proc.returncode, "line": last[-1] if last else "", "lines": last,
                "seconds": since(exited), "workers_gone": since(gone),
                "orphans": sorted(p for p in self.workers if process_alive(p))}


def signal_a_worker(c: "Child", sig: int) -> tuple[str, int, float]:
    """Once the child's first iteration is logged, ``sig`` to one of its simulator workers:
    (the line waited for, the worker's pid, when the signal went)."""
    at = c.wait_for("iter ")
    victim = max(worker_pids(c.proc.pid))
    os.kill(victim, sig)
    return at, victim, time.perf_counter()


def report(label: str, r: dict) -> None:
    took = (f", {r['seconds']:.1f} s after the fault (its workers gone at {r['workers_gone']:.1f} s)"
            if r.get("seconds") is not None else "")
    print(f"{label}: exit {r['exit']}{took}, orphan workers: {len(r['orphans'])}\n    {r['line']}", flush=True)


def lora(run_dir: Path):
    from tgrpo_lib.infra import runs

    return runs.load_checkpoint(runs.latest_checkpoint(run_dir))["trainable"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=14, help="iterations of the training run (>= 12)")
    p.add_argument("--keep", action="store_true", help="keep the scratch outputs folder")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--eval-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--root", default=None, help=argparse.SUPPRESS)
    p.add_argument("--hang-limit", type=float, default=10, help="TGRPO_WORKER_TIMEOUT_S of the SIGSTOP fault (s)")
    a = p.parse_args()
    if a.child:
        return child(a.child, a.iterations, a.root)
    if a.eval_child:
        return eval_child(a.eval_child)
    if a.iterations < 12:
        p.error("--iterations must be >= 12 (the faults use up to ~10 of them)")
    import numpy as np
    import torch

    from tgrpo_lib.infra import runs

    root = Path(tempfile.mkdtemp(prefix="fault_injection_"))
    run_dir = root / "train" / RUN
    print(f"outputs: {root}; run: {a.iterations} iterations, groups of 2, 8-step episodes; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    # 1. a simulator worker killed with SIGKILL during a rollout
    c = Child(RUN, a.iterations, root)
    at, victim, t = signal_a_worker(c, signal.SIGKILL)
    report(f"1. SIGKILL to worker pid {victim} after {at}", c.finish(t))

    # 2. the same run started twice: the second is refused, naming the first
    c = Child(RUN, a.iterations, root)
    c.wait_for("iter ")
    report("2. a second process on the run", Child(RUN, a.iterations, root).finish())
    # 3. SIGTERM (a scheduler's stop) to the first one
    c.proc.send_signal(signal.SIGTERM)
    t = time.perf_counter()
    report("3. SIGTERM to the first one", c.finish(t))

    # 4. Ctrl-C twice (to the process group, as a terminal sends it): exits at once
    c = Child(RUN, a.iterations, root)
    at = c.wait_for("iter ")
    os.killpg(c.proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(c.proc.pid, signal.SIGINT)
    t = time.perf_counter()
    report(f"4. Ctrl-C twice after {at}", c.finish(t))

    # 5. a worker that stops answering (SIGSTOP: alive, silent) during a rollout
    c = Child(RUN, a.iterations, root, env={"TGRPO_WORKER_TIMEOUT_S": str(a.hang_limit)})
    at, victim, t = signal_a_worker(c, signal.SIGSTOP)
    report(f"5. SIGSTOP to worker pid {victim} after {at} (TGRPO_WORKER_TIMEOUT_S={a.hang_limit:g})", c.finish(t))

    # 6. the disk fills up under metrics.jsonl (every write there fails with ENOSPC)
    c = Child(RUN, a.iterations, root)
    at = c.wait_for("iter ")
    metrics, aside = run_dir / "metrics.jsonl", run_dir / "metrics.jsonl.aside"
    os.replace(metrics, aside)
    metrics.symlink_to("/dev/full")
    t = time.perf_counter()
    r = c.finish(t)
    metrics.unlink()
    os.replace(aside, metrics)  # space again
    report(f"6. full disk under metrics.jsonl after {at}", r)

    # 7. a crash cut the last checkpoint and the metrics line being written; resume to the end
    latest = runs.latest_checkpoint(run_dir)
    latest.write_bytes(latest.read_bytes()[:4096])
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99, "charts/retu')
    print(f"7. cut {latest.name} to 4096 bytes and the metrics file mid-line; resuming", flush=True)
    c = Child(RUN, a.iterations, root)
    r = c.finish()
    for line in r["lines"]:
        print(f"    {line}")
    print(f"   exit {r['exit']}, complete: {runs.is_complete(run_dir)}, workers seen: {len(c.workers)}, "
          f"orphan workers: {len(r['orphans'])}")

    # 8. what survived: the same result as a run never interrupted
    report_ref = Child("reference", a.iterations, root).finish()
    ref_dir = root / "train" / "reference"
    same_lora = all(torch.equal(x, y) for x, y in zip(lora(run_dir), lora(ref_dir)))
    cols = ["charts/return_mean", "losses/loss"]
    m, mr = (runs.read_metrics(d) for d in (run_dir, ref_dir))
    m, mr = (x[x.step >= 0].dropna(subset=cols) for x in (m, mr))
    steps_once = m.step.is_unique and m.step.tolist() == list(range(a.iterations))
    same_metrics = steps_once and (m[cols].to_numpy() == mr[cols].to_numpy()).all()
    summary = json.loads((run_dir / "metrics.json").read_text())
    print(f"8. resumed run vs uninterrupted run (exit {report_ref['exit']}): LoRA weights identical: {same_lora}; "
          f"per-iteration return and loss identical: {bool(same_metrics)} ({len(m)} iterations, each logged once: "
          f"{steps_once}); env steps {summary.get('env_steps')} vs "
          f"{json.loads((ref_dir / 'metrics.json').read_text()).get('env_steps')}; set aside: "
          f"{sorted(p.name for p in (run_dir / 'checkpoints').glob('*.corrupt'))}")

    # 9. Ctrl-C (to the process group, as a terminal sends it) in a standalone evaluation
    ckpt = root / "policy"
    ckpt.mkdir()
    (ckpt / "weights.bin").write_bytes(b"stand-in")  # the episode cache is keyed by the checkpoint's files
    c = Child(str(ckpt), a.iterations, root, mode="--eval-child")
    c.wait_for("iter first set cached")
    (cache,) = (root / "evals").glob("standard_*.json")
    cached = json.loads(cache.read_text())["episodes"]
    c.wait_for("iter second set: 2 episodes ended")
    os.killpg(c.proc.pid, signal.SIGINT)
    t = time.perf_counter()
    r = c.finish(t)
    now = json.loads(cache.read_text())["episodes"]
    kept = cached.items() <= now.items()
    report(f"9. Ctrl-C in a standalone evaluation (the {len(cached)} cached episodes kept: {kept}; "
           f"{len(now) - len(cached)} episodes of the interrupted set cached)", r)
    from tgrpo_lib.envs import EnvConfig, GroupEngine
    from tgrpo_lib.training.evaluation import evaluate_set

    with GroupEngine("libero_object", 0, 2, EnvConfig(**EVAL_ENV)) as engine:
        res = evaluate_set(lambda obs: np.zeros((len(obs["proprio"]), 7)), engine, "standard", 8,
                           checkpoint=str(ckpt), progress=False)
    print(f"    rerun: {res.cached} of 8 episodes read from the cache, {8 - res.cached} simulated", flush=True)

    # 10. a reward program that formats the state
    from tgrpo_lib.reward.sandbox import SandboxError, run_program

    state = {"eef_pos": np.zeros((2, 3, 3))}
    try:
        reward, _, _ = run_program(FORMATS_STATE, state)
        print(f"10. reward program with x = '%r' % (state,): runs, reward {reward.tolist()}")
    except SandboxError as exc:
        print(f"10. reward program with x = '%r' % (state,): refused\n    {exc}")
    if not a.keep:
        import shutil
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
