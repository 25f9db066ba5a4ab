"""Faults injected for real, each ending in one line that names what happened and the fix
(docs/reliability.md lists them): a simulator worker that stops answering (SIGSTOP), a full disk
while appending metrics, Ctrl-C in a standalone evaluation, and a reward program that formats
the state with ``%r``. The runs are child processes under the commands' own ``cli.run_guarded``,
in their own process group, so a Ctrl-C reaches them as a terminal sends it."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tgrpo_lib
from tgrpo_lib.infra import metrics, runs
from tgrpo_lib.reward.sandbox import SandboxError, run_program
from tgrpo_lib.envs.worker import process_alive, worker_pids

ROOT = Path(tgrpo_lib.PROJECT_ROOT)


def gone_within(pids, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(process_alive(p) for p in pids)


class Child:
    """``python -c code args`` in its own process group, stdout read line by line."""

    def __init__(self, code: str, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                                     env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.workers: set[int] = set()

    def wait_for(self, prefix: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"exited before {prefix!r}: {self.proc.stderr.read()[-3000:]}")
            self.workers |= worker_pids(self.proc.pid)
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"no {prefix!r} within {timeout} s")

    def finish(self, timeout: float = 600) -> tuple[int, list[str]]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, [line for line in err.splitlines() if line.strip()]


# ------------------------------------------------------------------------------ a worker that stops answering
TRAIN = """
import sys
from tgrpo_lib.infra.cli import run_guarded
from tgrpo_lib.training.train import config_for, train

cfg = config_for(iterations=3, eval_interval=0, final_eval_episodes=1, group_size=2, epochs=1, video_episodes=0,
                 env={"max_steps": 8}, policy={"use_wrist": False}, run_name="hang", skip_groups="none", seed=0)
run_guarded("train", lambda: train(cfg, root=sys.argv[1], progress=False,
                                   on_iteration=lambda it, m: print(f"iter {it}", flush=True)))
print("complete", flush=True)
"""


@pytest.mark.sim
@pytest.mark.slow
def test_a_stopped_worker_ends_the_run_in_bounded_time_and_the_same_command_resumes(tmp_path):
    limit = 5
    child = Child(TRAIN, str(tmp_path), env={"TGRPO_WORKER_TIMEOUT_S": str(limit)})
    child.wait_for("iter 0")
    victim = max(worker_pids(child.proc.pid))
    os.kill(victim, signal.SIGSTOP)
    t0 = time.monotonic()
    code, err = child.finish()
    took = time.monotonic() - t0
    run_dir = tmp_path / "train" / "hang"
    assert code == 1 and limit <= took < limit + 30, (code, took, err[-3:])
    assert err[-1].startswith("train: error: environment worker 1 (pid ")
    assert (f"(pid {victim}, env 1) sent no reply within {limit} s (it was stopped; killed; TGRPO_WORKER_TIMEOUT_S "
            "sets the limit) during iteration 1 (init state 1 of the standard set); rerun the same command to resume "
            f"{run_dir} from iter_000000.pt") in err[-1]
    assert gone_within(child.workers, 10)  # the stopped one was killed, the other closed: no orphan
    # the same command, without the setting (it is not part of the run's identity), finishes the run
    again = Child(TRAIN, str(tmp_path), env={"TGRPO_WORKER_TIMEOUT_S": ""})
    assert again.wait_for("iter ") == "iter 1"
    code, err = again.finish()
    assert code == 0 and runs.is_complete(run_dir), err[-3:]
    assert runs.read_metrics(run_dir)["step"].tolist() == [-1, 0, 1, 2, 3]


def test_the_reply_timeout_is_an_operational_setting_checked_in_one_line(monkeypatch):
    from tgrpo_lib.envs.group import DEFAULT_REPLY_TIMEOUT_S, worker_reply_timeout

    monkeypatch.delenv("TGRPO_WORKER_TIMEOUT_S", raising=False)
    assert worker_reply_timeout() == DEFAULT_REPLY_TIMEOUT_S
    monkeypatch.setenv("TGRPO_WORKER_TIMEOUT_S", "7.5")
    assert worker_reply_timeout() == 7.5 and worker_reply_timeout(2) == 2.0  # the engine argument wins
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("TGRPO_WORKER_TIMEOUT_S", bad)
        with pytest.raises(ValueError, match=f"TGRPO_WORKER_TIMEOUT_S='{bad}': give the seconds"):
            worker_reply_timeout()


# ------------------------------------------------------------------------------ a full disk
def test_a_full_disk_while_appending_metrics_leaves_the_file_whole_and_names_the_fix(tmp_path, monkeypatch):
    logger = metrics.MetricsLogger(tmp_path)
    logger.log({"charts/x": 1.0}, step=0)
    runs.save_checkpoint(tmp_path, 0, {"iteration": 0})
    before = (tmp_path / "metrics.jsonl").read_bytes()
    real_write = os.write

    def fills_up(fd, data):  # half the line fits, then the disk is full
        if len(data) > 20:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(metrics.os, "write", fills_up)
    with pytest.raises(runs.RunError) as err:
        logger.log({"charts/x": 2.0}, step=1)
    monkeypatch.undo()
    msg = str(err.value)
    assert msg.startswith(f"could not append to {tmp_path / 'metrics.jsonl'} (No space left on device; ")
    assert msg.endswith("MiB free there): free disk space, then rerun the same command to resume from iter_000000.pt")
    assert (tmp_path / "metrics.jsonl").read_bytes() == before  # no half line for the resume to drop
    assert runs.check_metrics(tmp_path) is None
    logger.log({"charts/x": 2.0}, step=1)  # space again: the run goes on
    assert runs.read_metrics(tmp_path)["charts/x"].tolist() == [1.0, 2.0]


FULL_DISK = """
import os, sys
from pathlib import Path
from tgrpo_lib.infra.cli import run_guarded
from tgrpo_lib.infra.metrics import MetricsLogger

run_dir = Path(sys.argv[1])
logger = MetricsLogger(run_dir)
(run_dir / "metrics.jsonl").unlink(missing_ok=True)
(run_dir / "metrics.jsonl").symlink_to("/dev/full")  # every write there fails with ENOSPC
run_guarded("train", lambda: logger.log({"charts/x": 1.0}, step=0))
"""


def test_a_full_disk_ends_the_command_in_one_line(tmp_path):
    code, err = Child(FULL_DISK, str(tmp_path)).finish()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"train: error: could not append to {tmp_path / 'metrics.jsonl'} (No space left on device")
    assert err[0].endswith("free disk space, then rerun the same command to start the run again")


def test_any_other_write_to_a_full_disk_is_one_line_too(capsys):
    from tgrpo_lib.infra.cli import run_guarded

    def write():
        with open("/dev/full", "w") as f:
            f.write("x")
    with pytest.raises(SystemExit) as exit_:
        run_guarded("prog", write)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("prog: error: No space left on device while writing ") and err.count("\n") == 1
    assert "free disk space, then rerun the same command" in err


# ------------------------------------------------------------------------------ Ctrl-C in a standalone evaluation
def test_an_evaluation_cut_short_caches_the_episodes_that_ended(tmp_path, monkeypatch):
    """evaluate_set on a scripted simulator: Ctrl-C after 3 of 6 episodes ended keeps those 3 in the
    checkpoint's episode cache and the rerun simulates only the other 3; when the first episode's
    video was wanted its frames are gone, so the rerun simulates it again for the video."""
    from types import SimpleNamespace

    from tgrpo_lib.envs import EnvConfig
    from tgrpo_lib.training import evaluation

    states = np.arange(6.0)[:, None].repeat(3, 1)
    simulated, interrupt_after = [], [3]

    def run_episodes(engine, fn, init_states, record=(), progress=True, desc="", on_episode=None):
        out = []
        for i, s in enumerate(init_states):
            if interrupt_after and len(out) == interrupt_after[0]:
                raise KeyboardInterrupt("interrupted by SIGINT")
            simulated.append(int(s[0]))
            out.append({"episode": i, "success": int(s[0]) % 2 == 0, "length": 10 + int(s[0])})
            if i in set(record):
                out[-1]["frames"] = np.zeros((2, 8, 8, 3), np.uint8)
            on_episode(out[-1])
        return out

    def write_video(path, frames):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"mp4")
        return path
    monkeypatch.setattr(evaluation, "run_episodes", run_episodes)
    monkeypatch.setattr(evaluation, "init_states_for", lambda suite, task, which, n=None: states[:n])
    monkeypatch.setattr(evaluation, "write_video", write_video)
    engine = SimpleNamespace(task=SimpleNamespace(suite="libero_object", task_id=0, instruction="x"), cfg=EnvConfig())
    ckpt = tmp_path / "sft" / "checkpoints" / "policy"
    ckpt.mkdir(parents=True)
    (ckpt / "weights.bin").write_bytes(b"\x00\x01")

    def evaluate(video_path=None):
        return evaluation.evaluate_set(lambda obs: np.zeros((len(obs["proprio"]), 7)), engine, "standard", 6,
                                       checkpoint=ckpt, video_path=video_path, progress=False)
    with pytest.raises(KeyboardInterrupt):
        evaluate()
    assert simulated == [0, 1, 2]
    interrupt_after.clear()
    res = evaluate()
    assert simulated == [0, 1, 2, 3, 4, 5] and res.cached == 3
    assert res.episodes["length"].tolist() == [10, 11, 12, 13, 14, 15]

    ckpt_b = tmp_path / "rl" / "checkpoints" / "policy"  # the same, with the first episode's video wanted
    ckpt_b.mkdir(parents=True)
    (ckpt_b / "weights.bin").write_bytes(b"\x02")
    ckpt, simulated[:], interrupt_after[:] = ckpt_b, [], [3]
    with pytest.raises(KeyboardInterrupt):
        evaluate(tmp_path / "videos" / "standard.mp4")
    interrupt_after.clear()
    res = evaluate(tmp_path / "videos" / "standard.mp4")
    assert simulated == [0, 1, 2, 0, 3, 4, 5] and res.cached == 2 and res.video == str(tmp_path / "videos" / "standard.mp4")


EVALUATION = """
import sys
import time
import numpy as np
from tgrpo_lib.infra.cli import run_guarded
from tgrpo_lib.envs import EnvConfig, GroupEngine
from tgrpo_lib.training.evaluation import evaluate_set

second, steps = [], {}

def policy(obs):  # stands still: every episode runs its 40 steps
    if second:
        for env in obs["env"]:
            steps[env] = steps.get(env, 0) + 1
        if second == [True] and len(steps) == 2 and min(steps.values()) > 40:  # both envs began a 2nd episode
            print("second set: 2 episodes ended", flush=True)
            second.append(True)
            while True:  # no further step until the Ctrl-C
                time.sleep(1)
    return np.zeros((len(obs["proprio"]), 7))

def work():
    with GroupEngine("libero_object", 0, 2, EnvConfig(cameras=(), max_steps=40)) as engine:
        evaluate_set(policy, engine, "standard", 2, checkpoint=sys.argv[1], progress=False)
        print("first set cached", flush=True)
        second.append(True)
        evaluate_set(policy, engine, "standard", 8, checkpoint=sys.argv[1], progress=False)
run_guarded("evaluation", work)
"""


@pytest.mark.sim
@pytest.mark.slow
def test_ctrl_c_in_a_standalone_evaluation_exits_130_with_no_orphan_and_keeps_the_cache(tmp_path):
    from tgrpo_lib.envs import EnvConfig, GroupEngine, init_states_for
    from tgrpo_lib.training.evaluation import evaluate_set, state_key

    ckpt = tmp_path / "sft" / "checkpoints" / "policy"
    ckpt.mkdir(parents=True)
    (ckpt / "weights.bin").write_bytes(b"\x00\x01")  # a checkpoint directory: its episodes are cached beside it
    child = Child(EVALUATION, str(ckpt))
    child.wait_for("first set cached")
    (cache,) = (tmp_path / "sft" / "checkpoints" / "evals").glob("standard_*.json")
    first = json.loads(cache.read_text())["episodes"]
    child.wait_for("second set: 2 episodes ended")
    os.killpg(child.proc.pid, signal.SIGINT)  # as a terminal sends Ctrl-C: to the child and its workers
    code, err = child.finish()
    assert len(first) == 2 and len(child.workers) == 2
    assert code == 130 and err[-1] == "evaluation: interrupted by SIGINT", err[-3:]
    assert gone_within(child.workers, 10)
    kept = json.loads(cache.read_text())["episodes"]
    assert first.items() <= kept.items()  # the cached episodes are kept ...
    keys = [state_key(s) for s in init_states_for("libero_object", 0, "standard", 8)]
    assert sorted(kept) == sorted(keys[:4])  # ... and so are the 2 that ended in the interrupted set
    assert all(e == {"success": False, "length": 40} for e in kept.values())
    calls = []

    def still(obs):
        calls.append(len(obs["env"]))
        return np.zeros((len(obs["proprio"]), 7))
    with GroupEngine("libero_object", 0, 2, EnvConfig(cameras=(), max_steps=40)) as engine:
        res = evaluate_set(still, engine, "standard", 8, checkpoint=ckpt, progress=False)
    assert res.cached == 4 and sum(calls) == 4 * 40  # the rerun simulates only the other 4
    assert res.episodes["state_key"].tolist() == keys and not res.episodes["success"].any()


# ------------------------------------------------------------------------------ a reward program that formats the state
FORMATS_STATE = """
N_STAGES = 1

def reward(state, step):
    x = '%r' % (state,)
    return state["eef_pos"][..., 0] * 0.0 + len(x) * 0.0 + 1.0, state["eef_pos"][..., 0] * 0
"""


def test_a_reward_program_that_formats_the_state_runs():
    """numpy's C code imports its array printer through the program's builtins: it is served
    numpy's own modules (before, the program failed with "Unable to configure default ndarray.__repr__")."""
    state = {"eef_pos": np.arange(18.0).reshape(2, 3, 3)}
    reward, stage, n_stages = run_program(FORMATS_STATE, state)
    assert np.array_equal(reward, np.ones((2, 3))) and np.array_equal(stage, np.zeros((2, 3))) and n_stages == 1


def test_a_reward_program_is_served_numpy_and_nothing_else_by_import():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sandbox_worker", ROOT / "tgrpo_lib" / "reward" / "_sandbox_worker.py")
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    import_ = worker.numpy_only_import(("abs", "min"))
    assert import_("numpy._core.arrayprint", fromlist=["x"]).__name__ == "numpy._core.arrayprint"
    for name, level in (("os", 0), ("numpyx", 0), ("arrayprint", 1)):
        with pytest.raises(ImportError, match=r"a reward program may not import modules \(asked for '.*'\): it may "
                                              r"use only np.<whitelisted function> and the builtins abs, min"):
            import_(name, level=level)
    with pytest.raises(SandboxError, match="name `__import__` is forbidden"):  # the program itself cannot reach it
        run_program("N_STAGES = 1\ndef reward(state, step):\n    m = __import__('os')\n    return 0, 0\n",
                    {"eef_pos": np.zeros((1, 2, 3))})
