# Two commands on a fresh machine:  `make run`  and  `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The environment comes from the lock (exact versions with hashes): `make lock` remakes it from pyproject.toml.
LOCK_INPUTS := pyproject.toml requirements/constraints.txt requirements/lock.txt requirements/uv.txt \
               tools/bootstrap.sh tools/torch_choice.py tools/lock.py
LOCK_ARGS ?=
PYTEST_ARGS ?=
# make run's flags, e.g. RUN_ARGS="--set alpha1=0.5 env.max_steps=100" (python -m tgrpo_lib run --help)
RUN_ARGS ?=
# JupyterLab refuses to run as root (containers, CI machines) unless told --allow-root: only then.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
# Kernels' sockets encrypted with CurveZMQ keys jupyter_client provisions (instead of plain TCP, which
# makes every kernel warn "running over TCP without encryption"); papermill: reproduce.kernel_config().
LAB_KERNEL_ARGS ?= --KernelManager.transport_encryption=auto
# TensorBoard over every run's event files (written beside metrics.jsonl); TB_HOST=0.0.0.0 to serve beyond this machine.
TB_LOGDIR ?= $(or $(TGRPO_OUTPUTS),outputs)
TB_HOST ?= 127.0.0.1
TB_PORT ?= 6006

.PHONY: run test test-quick bench env lock clean-env lab tb

$(STAMP): $(LOCK_INPUTS)
	bash tools/bootstrap.sh

$(TEST_STAMP): $(LOCK_INPUTS) requirements/lock-test.txt
	bash tools/bootstrap.sh --test

env: $(STAMP)  ## create / update the virtual environment only

lock:  ## requirements/lock*.txt, uv.txt and environment.yml from pyproject.toml (LOCK_ARGS=--upgrade: newest versions)
	@test -x $(VENV)/bin/uv || { python3 -m venv $(VENV) && $(PY) -m pip install --require-hashes --no-deps \
	  -r requirements/uv.txt >$(VENV)/lock.log 2>&1; } || { echo "could not install uv: see $(VENV)/lock.log"; exit 1; }
	$(PY) tools/lock.py $(LOCK_ARGS)

run: $(STAMP)  ## the main job on the embedded default (see README)
	$(PY) -m tgrpo_lib run $(RUN_ARGS)

test: $(TEST_STAMP)  ## the whole test suite (CI runs this), with the `test` extra
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: $(TEST_STAMP)  ## tests that need no simulator and no browser
	$(PY) -m pytest -m "not sim and not browser" $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks (numbers printed, nothing asserted)
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/policy_speed.py

lab: $(STAMP)  ## JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab $(LAB_ARGS) $(LAB_KERNEL_ARGS) notebooks/

tb: $(STAMP)  ## TensorBoard on every run under outputs/ ($$TGRPO_OUTPUTS)
	$(VENV)/bin/tensorboard --logdir $(TB_LOGDIR) --host $(TB_HOST) --port $(TB_PORT)

clean-env:
	rm -rf $(VENV)
