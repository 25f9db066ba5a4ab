#!/usr/bin/env bash
# Creates .venv (if missing or stale) with the pinned torch (a CPU build on a CPU machine), after
# making sure the system libraries for headless rendering (and chromium, for the browser tests)
# exist. Called by `make run` / `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# 1. Headless rendering: Mesa's EGL (MUJOCO_GL=egl) and OSMesa (MUJOCO_GL=osmesa) fallback.
APT_PACKAGES="libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6"
missing=""
for lib in libEGL.so.1 libGL.so.1 libOSMesa.so; do
  if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then missing="$missing $lib"; fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[bootstrap] installing headless-rendering libraries:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  else
    echo "[bootstrap] missing system libraries for headless rendering:$missing"
    echo "[bootstrap] install them first, then rerun:  sudo apt-get install -y $APT_PACKAGES"
    exit 1
  fi
fi

# 2. A browser for the notebooks' browser tests (tests/notebooks/test_browser.py, driven by
#    Playwright; its own browser download is not needed). Optional: without one they are skipped.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[bootstrap] installing chromium for the notebooks' browser tests"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
      || echo "[bootstrap] chromium could not be installed: the browser tests will be skipped"
  else
    echo "[bootstrap] no chromium: the browser tests will be skipped (sudo apt-get install -y chromium)"
  fi
fi

# 3. The virtual environment. torch comes first and stays pinned through the constraints file,
#    so no later requirement can swap it for a multi-GB CUDA build; tools/torch_choice.py picks
#    its index (a CPU build on a CPU machine; TGRPO_TORCH=cpu|cuda|auto, TORCH_INDEX_URL).
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
torch_index=$("$VENV/bin/python" tools/torch_choice.py)
# shellcheck disable=SC2086  # torch_index is empty or "--index-url URL"
"$VENV/bin/python" -m pip install -q $torch_index -c requirements/constraints.txt torch
"$VENV/bin/python" -m pip install -q -c requirements/constraints.txt -e .
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tgrpo)" >/dev/null
touch "$VENV/.installed"
echo "[bootstrap] environment ready: $VENV"
