"""TGRPO workbook: online RL fine-tuning of vision-language-action policies in LIBERO.

Importing the package sets process-wide defaults that must be in place before torch,
mujoco or libero are imported (each can still be overridden from the shell):

- ``MUJOCO_GL=egl``: headless software rendering (Mesa llvmpipe); ``osmesa`` also works.
- ``LIBERO_CONFIG_PATH``: an explicit, visible config directory inside the project's cache,
  so LIBERO never prompts and never writes to the home directory.
- ``OMP_WAIT_POLICY=PASSIVE``: torch threads otherwise spin and slow down 30-100x while a
  simulator process runs beside them on a 2-core machine.
- ``HF_HUB_OFFLINE=1``: the embedded default never reaches for a model hub.
"""
from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"
CONFIG_SCHEMA = 2
"""Written as ``schema`` into every config.json and policy_config.json; a run or checkpoint
written under another schema is refused (rerun it under a new name) instead of guessing what
its missing fields meant."""

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("TGRPO_CACHE", PROJECT_ROOT / ".cache"))
OUTPUTS_DIR = Path(os.environ.get("TGRPO_OUTPUTS", PROJECT_ROOT / "outputs"))

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("LIBERO_CONFIG_PATH", str(CACHE_DIR / "libero_config"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def outputs_path(path: str | Path | None = None, root: str | Path | None = None) -> Path:
    """Where outputs land: ``path`` under the outputs root when relative, as given when absolute;
    the root itself without ``path``. The root is ``root`` when given (a notebook's
    ``outputs_root``: shared storage on a cluster), else ``OUTPUTS_DIR``, which follows
    ``TGRPO_OUTPUTS``. Every notebook resolves its ``output_dir`` here, never against the checkout
    or its working directory (notebooks/)."""
    base = Path(root) if root else OUTPUTS_DIR
    return base / path if path is not None else base
