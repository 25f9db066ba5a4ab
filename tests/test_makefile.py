"""Makefile: ``make lab`` passes --allow-root to JupyterLab exactly when run as root (uid 0), which
JupyterLab otherwise refuses; ``make tb`` serves TensorBoard on the outputs root. Dry runs
(``make -n``): nothing is built; the TensorBoard test then starts the very command make printed."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import tgrpo_lib
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.metrics import MetricsLogger

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def lab_command(tmp_path: Path, uid: int) -> list[str]:
    """The command ``make lab`` would run when ``id -u`` says ``uid`` (a stand-in ``id`` first on PATH)."""
    bin_dir = tmp_path / f"bin{uid}"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "id").chmod(0o755)
    venv = tmp_path / "venv"
    venv.mkdir(exist_ok=True)
    out = subprocess.run(["make", "-n", "-s", "lab", f"VENV={venv}"], cwd=tgrpo_lib.PROJECT_ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    return next(line for line in out.stdout.splitlines() if "jupyter lab" in line).split()


def test_lab_allows_root_only_as_root(tmp_path):
    jupyter = f"{tmp_path}/venv/bin/jupyter"
    encrypted = "--KernelManager.transport_encryption=auto"
    assert lab_command(tmp_path, 0) == [jupyter, "lab", "--allow-root", encrypted, "notebooks/"]
    assert lab_command(tmp_path, 1000) == [jupyter, "lab", encrypted, "notebooks/"]


def make_line(target: str, program: str, *args: str, env: dict | None = None) -> list[str]:
    """The ``program`` line ``make <target>`` would run (dry run, the test's own venv)."""
    out = subprocess.run(["make", "-n", "-s", target, f"VENV={sys.prefix}", *args], cwd=tgrpo_lib.PROJECT_ROOT,
                         check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return next(line for line in out.stdout.splitlines() if f"bin/{program}" in line).split()


def test_tb_serves_outputs_and_follows_tgrpo_outputs(tmp_path):
    tb = f"{sys.prefix}/bin/tensorboard"
    env = {k: v for k, v in os.environ.items() if k != "TGRPO_OUTPUTS"}
    out = subprocess.run(["make", "-n", "-s", "tb", f"VENV={sys.prefix}"], cwd=tgrpo_lib.PROJECT_ROOT, check=True,
                         capture_output=True, text=True, env=env).stdout
    assert f"{tb} --logdir outputs --host 127.0.0.1 --port 6006" in out.splitlines()
    assert make_line("tb", "tensorboard", "TB_PORT=7007", "TB_HOST=0.0.0.0", env={"TGRPO_OUTPUTS": str(tmp_path)}) == \
        [tb, "--logdir", str(tmp_path), "--host", "0.0.0.0", "--port", "7007"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tb_shows_a_resumed_run_as_metrics_jsonl_keeps_it(tmp_path):
    """The command ``make tb`` runs, serving a run resumed from step 1: TensorBoard's HTTP API
    returns the steps and values of metrics.jsonl, not the two steps the resume dropped."""
    run_dir = tmp_path / "train" / "r1"
    run_dir.mkdir(parents=True)
    logger = MetricsLogger(run_dir)
    for step in range(4):
        logger.log({"losses/policy": float(step)}, step=step)
    MetricsLogger(run_dir, resume_from_step=1).log({"losses/policy": 20.0}, step=2)
    port = free_port()
    cmd = make_line("tb", "tensorboard", f"TB_PORT={port}", env={"TGRPO_OUTPUTS": str(tmp_path)})
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=train/r1&tag=losses/policy"
    try:
        deadline, points = time.monotonic() + 60, None
        while time.monotonic() < deadline and not points:
            time.sleep(0.5)
            try:
                points = json.loads(urllib.request.urlopen(url, timeout=5).read())
            except (OSError, ValueError):
                pass  # not up yet, or the run not loaded yet
    finally:
        server.terminate()
        server.wait(10)
    assert [(step, value) for _, step, value in points] == [(0, 0.0), (1, 1.0), (2, 20.0)]
    assert list(runs.read_metrics(run_dir)["losses/policy"]) == [0.0, 1.0, 20.0]


def dry_run(tmp_path: Path, target: str) -> list[str]:
    """What ``make <target>`` would run in a checkout with no environment yet."""
    out = subprocess.run(["make", "-n", "-s", target, f"VENV={tmp_path / 'venv'}"], cwd=tgrpo_lib.PROJECT_ROOT,
                         check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def test_make_test_installs_the_test_extra_and_make_run_does_not(tmp_path):
    test_lines, run_lines = dry_run(tmp_path, "test"), dry_run(tmp_path, "run")
    assert "bash tools/bootstrap.sh --test" in test_lines
    assert any("-m pytest" in line for line in test_lines)
    assert "bash tools/bootstrap.sh" in run_lines and "bash tools/bootstrap.sh --test" not in run_lines


def test_make_lock_regenerates_the_lock_with_the_venvs_uv(tmp_path):
    lines = dry_run(tmp_path, "lock")
    assert lines[-1].split() == [f"{tmp_path / 'venv'}/bin/python", "tools/lock.py"]
    assert "requirements/uv.txt" in " ".join(lines)  # uv itself comes hashed, from its own lock


def test_make_run_passes_run_args():
    python = f"{sys.prefix}/bin/python"
    assert make_line("run", "python") == [python, "-m", "tgrpo_lib", "run"]
    assert make_line("run", "python", "RUN_ARGS=--set alpha1=0.5") == [python, "-m", "tgrpo_lib", "run", "--set", "alpha1=0.5"]
