"""Makefile: ``make lab`` passes --allow-root to JupyterLab exactly when run as root (uid 0), which
JupyterLab otherwise refuses. Dry runs (``make -n``): nothing is built or started."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tgrpo_lib

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
    assert lab_command(tmp_path, 0) == [jupyter, "lab", "--allow-root", "notebooks/"]
    assert lab_command(tmp_path, 1000) == [jupyter, "lab", "notebooks/"]
