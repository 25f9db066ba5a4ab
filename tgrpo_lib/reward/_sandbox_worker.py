"""Sandbox worker (run as `python -I _sandbox_worker.py`): read a pickled job on stdin from the
trusted parent, execute the checked reward program under resource limits, write an .npz on stdout.
Errors go to stderr as one JSON line {"problems": [...]}; exit status 1."""
import ast
import importlib.util
import io
import json
import math
import pickle
import resource
import sys
import types
from pathlib import Path

import numpy as np


def fail(problems):
    sys.stderr.write(json.dumps({"problems": [str(p)[:300] for p in problems[:50]]}) + "\n")
    sys.stderr.flush()
    sys.exit(1)


def describe(e: BaseException) -> str:
    """str(e) without trusting it: formatting an exception (numpy reprs, odd objects) may itself fail."""
    try:
        text = str(e)
    except BaseException:  # noqa: BLE001
        text = ""
    return " ".join(text.split())[:200] or "(no message)"


def numpy_only_import(builtin_names):
    """The ``__import__`` of the program's namespace. The program cannot name it (the checker
    refuses names starting with "_"), but numpy's C code imports its Python helpers through the
    running frame's builtins: ``'%r' % (state,)`` formats arrays with numpy._core.arrayprint, and
    with no ``__import__`` there that fails as "Unable to configure default ndarray.__repr__".
    Only numpy's own modules are served; any other import is refused saying what a program may use."""
    def import_(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name == "numpy" or name.startswith("numpy.")):
            return __import__(name, globals, locals, fromlist, level)
        raise ImportError(f"a reward program may not import modules (asked for {name!r}): it may use only "
                          f"np.<whitelisted function> and the builtins {', '.join(builtin_names)}")
    return import_


REAL_KINDS = "biuf"  # bool, signed, unsigned, float: what a reward or a stage may be


def main():
    job = pickle.loads(sys.stdin.buffer.read())
    mem = job["memory_mb"] * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_s"], job["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    # Load the checker by path: importing the package would pull pandas & co. into the worker.
    spec = importlib.util.spec_from_file_location("_reward_sandbox", Path(__file__).with_name("sandbox.py"))
    sb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sb)
    ALLOWED_BUILTINS, NP_FUNCS, NP_SUBMODULES = sb.ALLOWED_BUILTINS, sb.NP_FUNCS, sb.NP_SUBMODULES
    SandboxError, check_program = sb.SandboxError, sb.check_program

    code = job["code"]
    try:
        check_program(code)  # again: the worker trusts nothing
    except SandboxError as e:
        fail(e.problems)
    np_ns = types.SimpleNamespace(**{n: getattr(np, n) for n in NP_FUNCS})
    for sub, names in NP_SUBMODULES.items():
        setattr(np_ns, sub, types.SimpleNamespace(**{n: getattr(getattr(np, sub), n) for n in names}))
    builtins = {n: __builtins__[n] if isinstance(__builtins__, dict) else getattr(__builtins__, n)
                for n in ALLOWED_BUILTINS}
    builtins["__import__"] = numpy_only_import(ALLOWED_BUILTINS)  # numpy's C code imports its helpers through the caller's builtins
    g = {"__builtins__": builtins, "np": np_ns, "math": types.SimpleNamespace(pi=math.pi, e=math.e)}
    state = {k: np.array(v, copy=True) for k, v in job["state"].items()}
    shape = tuple(job["shape"])
    try:
        exec(compile(ast.parse(code), "<reward_program>", "exec"), g)
        n_stages = g.get("N_STAGES")
        if type(n_stages) is not int or not 1 <= n_stages <= 64:
            got = "it is not set" if "N_STAGES" not in g else f"the program set {type(n_stages).__name__} {str(n_stages)[:40]}"
            fail([f"N_STAGES must be a module-level int in 1..64 ({got})"])
        out = g["reward"](state, np.array(job["step"], copy=True))
    except MemoryError:
        fail(["runtime: memory limit exceeded (MemoryError)"])
    except RecursionError:
        fail(["runtime: recursion limit exceeded"])
    except Exception as e:  # noqa: BLE001 - any failure of untrusted code is reported, not raised
        tb = e.__traceback__
        line = "?"
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<reward_program>":
                line = tb.tb_lineno
            tb = tb.tb_next
        fail([f"line {line}: runtime {type(e).__name__}: {describe(e)}"])
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(["runtime: reward() must return a tuple (reward, stage)"])
    arrays = []
    for name, value in (("reward", out[0]), ("stage", out[1])):
        try:
            a = np.asarray(value)
        except BaseException as e:  # noqa: BLE001 - ragged lists and the like
            fail([f"output: {name} is not an array ({type(e).__name__}: {describe(e)})"])
        if a.dtype.kind not in REAL_KINDS:
            fail([f"output: {name} has dtype {a.dtype.name} (kind {a.dtype.kind!r}); return real numbers "
                  "(bool, int or float arrays), not strings, complex numbers or objects"])
        arrays.append(a.astype(np.float64))
    r, s = arrays
    problems = []
    for name, a in (("reward", r), ("stage", s)):
        if a.shape != shape:
            problems.append(f"output: {name} has shape {a.shape}, expected the batch shape {shape}")
        elif not np.all(np.isfinite(a)):
            problems.append(f"output: {name} has {int(np.sum(~np.isfinite(a)))} non-finite values (NaN/inf)")
    if not problems and (np.any(s != np.round(s)) or s.min() < 0 or s.max() > n_stages):
        problems.append(f"output: stage must hold integers in [0, N_STAGES={n_stages}]")
    if problems:
        fail(problems)
    buf = io.BytesIO()
    np.savez(buf, reward=r, stage=s.astype(np.int64), n_stages=np.int64(n_stages))
    sys.stdout.buffer.write(buf.getvalue())


if __name__ == "__main__":
    main()
