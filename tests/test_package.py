"""tgrpo_lib/__init__.py: where outputs land (``outputs_path``), following TGRPO_OUTPUTS; the default
root, outputs/, exists in a clean clone."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tgrpo_lib


def test_outputs_path_resolves_relative_paths_under_the_outputs_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tgrpo_lib, "OUTPUTS_DIR", tmp_path / "outputs")
    assert tgrpo_lib.outputs_path() == tmp_path / "outputs"
    assert tgrpo_lib.outputs_path("notebooks/02_training_run") == tmp_path / "outputs" / "notebooks" / "02_training_run"
    assert tgrpo_lib.outputs_path("notebooks/x", root=str(tmp_path / "shared")) == tmp_path / "shared" / "notebooks" / "x"
    assert tgrpo_lib.outputs_path(root=None) == tgrpo_lib.outputs_path(root="") == tmp_path / "outputs"
    assert tgrpo_lib.outputs_path(str(tmp_path / "elsewhere"), root=tmp_path / "shared") == tmp_path / "elsewhere"


def test_outputs_path_follows_the_environment_variable(tmp_path):
    """A fresh interpreter (a notebook kernel) with TGRPO_OUTPUTS set writes there, wherever its cwd."""
    env = {**os.environ, "TGRPO_OUTPUTS": str(tmp_path / "out"), "PYTHONPATH": str(tgrpo_lib.PROJECT_ROOT)}
    code = "import tgrpo_lib; print(tgrpo_lib.outputs_path('notebooks/01_reward_generation'))"
    printed = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert Path(printed) == tmp_path / "out" / "notebooks" / "01_reward_generation"


def test_outputs_folder_is_committed():
    """.gitignore keeps outputs/README.md (what lands where) and outputs/.gitkeep: both must be tracked."""
    root = tgrpo_lib.PROJECT_ROOT
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "outputs"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
    assert {"outputs/README.md", "outputs/.gitkeep"} <= set(tracked)
