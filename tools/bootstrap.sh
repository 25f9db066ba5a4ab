#!/usr/bin/env bash
# Creates or updates .venv from the lock (requirements/lock.txt, exact versions with hashes), after
# making sure the system libraries for headless rendering (and chromium, for the browser tests)
# exist. `make run` / `make env` call it plainly; `make test` with --test, which adds the `test`
# extra (requirements/lock-test.txt).
#
# The installer is uv (itself installed by pip from requirements/uv.txt, hashed): the 223 locked
# packages took it 25 s with an empty cache and 5 s with a warm one, pip 151 s (--require-hashes,
# same lock, same 2 loaded cores). uv reads no pip configuration: tools/torch_choice.py hands it
# the source of the locked CPU torch wheel.
#
# Quiet: one line per step. What apt, pip and uv print goes to $LOG (.venv/bootstrap.log) and is
# shown, with the log's name, only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1
mkdir -p "$VENV"
LOG="$VENV/bootstrap.log"
: >"$LOG"
START=$SECONDS

say() { echo "[bootstrap] $*"; }

# step "what it does" command...: one line (with its seconds); the command's output goes to $LOG,
# and only on failure are its last lines shown, with the log's name.
step() {
  local what=$1 t0=$SECONDS from
  shift
  printf '=== %s: %s\n' "$what" "$*" >>"$LOG"
  from=$(wc -l <"$LOG")
  printf '[bootstrap] %s ...' "$what"
  if "$@" >>"$LOG" 2>&1; then
    printf ' %d s\n' $((SECONDS - t0))
  else
    local rc=$?
    printf ' failed (exit %d); its output, all of it in %s:\n' "$rc" "$LOG"
    tail -n +$((from + 1)) "$LOG" | tail -n 25 | sed 's/^/    /'
    exit "$rc"
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"
}

# 0. An edit of pyproject.toml or constraints.txt without `make lock` is refused before anything
#    is installed.
step "requirements/lock*.txt match pyproject.toml" "$PYTHON" tools/lock.py --check

# 1. Headless rendering: Mesa's EGL (MUJOCO_GL=egl) and OSMesa (MUJOCO_GL=osmesa) fallback.
APT_PACKAGES="libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6"
missing=""
for lib in libEGL.so.1 libGL.so.1 libOSMesa.so; do
  if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then missing="$missing $lib"; fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086  # a list of package names
    step "headless-rendering libraries (apt:$missing)" apt_install $APT_PACKAGES
  else
    say "missing system libraries for headless rendering:$missing"
    say "install them first, then rerun:  sudo apt-get install -y $APT_PACKAGES"
    exit 1
  fi
fi

# 2. A browser for the notebooks' browser tests (tests/notebooks/test_browser.py, driven by
#    Playwright; its own browser download is not needed). Optional: without one they are skipped.
if [ "$WITH_TEST" = 1 ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    printf '=== chromium (apt)\n' >>"$LOG"
    t0=$SECONDS
    printf "[bootstrap] chromium for the notebooks' browser tests (apt) ..."
    if apt_install chromium >>"$LOG" 2>&1; then
      printf ' %d s\n' $((SECONDS - t0))
    else
      printf " failed: the browser tests will be skipped (apt's output in %s)\n" "$LOG"
    fi
  else
    say "no chromium: the browser tests will be skipped (sudo apt-get install -y chromium)"
  fi
fi

# 3. The virtual environment, from the lock.
if [ ! -x "$VENV/bin/python" ]; then
  step "virtual environment $VENV ($("$PYTHON" --version))" "$PYTHON" -m venv "$VENV"
fi
UV="$VENV/bin/uv"
uv_version=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/uv.txt)
if [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
  step "installer uv $uv_version (requirements/uv.txt)" \
    "$VENV/bin/python" -m pip install --require-hashes --no-deps -r requirements/uv.txt
fi
# torch: the lock holds its CPU wheel; tools/torch_choice.py says where uv finds it, or that this
# machine takes the CUDA build (TGRPO_TORCH=cpu|cuda|auto, TORCH_INDEX_URL).
read -r torch_build torch_args <<<"$("$VENV/bin/python" tools/torch_choice.py)"
locks="-r requirements/lock.txt"
n_packages=$(grep -c '^[A-Za-z0-9]' requirements/lock.txt)
if [ "$WITH_TEST" = 1 ]; then
  locks="$locks -r requirements/lock-test.txt"
  n_packages=$((n_packages + $(grep -c '^[A-Za-z0-9]' requirements/lock-test.txt)))
fi
if [ "$torch_build" = cuda ]; then
  # first, so that the lock's packages that need torch find it installed (it has no hash to check)
  torch_pin=$(sed -n 's/^torch==\([^ #]*\).*/\1/p' requirements/constraints.txt)
  # shellcheck disable=SC2086
  step "torch==$torch_pin, CUDA build (outside the lock)" \
    "$UV" pip install --python "$VENV/bin/python" "torch==$torch_pin" $torch_args
  "$PYTHON" tools/lock.py --without torch >"$VENV/lock-without-torch.txt"
  locks=${locks/requirements\/lock.txt/$VENV/lock-without-torch.txt}
  n_packages=$((n_packages - 1))
  torch_args="--no-deps"  # the lock is complete but for torch, which has no hash to check
fi
# shellcheck disable=SC2086  # $locks and $torch_args are lists of arguments
step "$n_packages locked packages (requirements/lock*.txt; torch: $torch_build${torch_args:+ $torch_args})" \
  "$UV" pip install --python "$VENV/bin/python" --require-hashes $locks $torch_args
step "tgrpo_lib, editable (no build isolation: the locked setuptools)" \
  "$UV" pip install --python "$VENV/bin/python" --no-deps --no-build-isolation -e .
step "Jupyter kernel python3" \
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tgrpo)"
touch "$VENV/.installed"
[ "$WITH_TEST" = 1 ] && touch "$VENV/.installed-test"
say "environment ready: $VENV ($((SECONDS - START)) s; the installers' output: $LOG)"
