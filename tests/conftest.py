"""Shared pytest set-up: headless defaults before anything imports torch or libero."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tgrpo_lib  # noqa: E402,F401  (sets LIBERO_CONFIG_PATH etc.)
