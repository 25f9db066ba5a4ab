"""Sandbox for LLM-written reward programs: static whitelist check + isolated execution.

LLM code never runs unchecked:

1. `check_program(code)` parses it with `ast` and accepts only a whitelist: module-level constant
   assignments and one `def reward(state, step):`; inside it arithmetic, comparisons, boolean
   ops, if/else (statement and expression), assignments, return, tuple/list/dict literals,
   subscripts, `for` over `range(<int literal <= MAX_LOOP>)` or a literal tuple/list, calls only
   to whitelisted builtins and `np.<name>` functions, attribute access only as `np.<name>`
   (or `np.linalg.norm`), no name starting with "_", no import/while/lambda/class/with/try/
   global/del/yield. Violations raise `SandboxError` listing `line N: construct` for each.
2. `run_program(code, state, step)` executes the checked code in a fresh `python -I` worker
   process (`_sandbox_worker.py`) with an address-space limit (RLIMIT_AS), a CPU-time limit and a
   wall-clock timeout; the worker re-checks the code, gives it a namespace holding only the
   whitelisted numpy functions and builtins (plus an `__import__` that serves numpy's own modules
   only, which numpy's C code needs to format arrays: `'%r' % (state,)` runs; the program itself
   cannot name it), and returns arrays via `np.save` (no pickle from the
   untrusted side). Outputs must be of a real numeric dtype (bool/int/float: no strings, complex or
   objects), finite, of the batch shape, stages integer in [0, N_STAGES]. N_STAGES is the value the
   program itself set when it ran, returned by the worker: the one source of truth.

The parent never crashes on a source: anything `ast` cannot take (deep nesting, a lone surrogate,
a null byte, a source over MAX_SOURCE_CHARS) is one `SandboxError`, and its message is one line
naming at most MAX_SHOWN problems.
"""
from __future__ import annotations

import ast
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

ENTRY = "reward"
MAX_SOURCE_CHARS = 30_000  # a reward program is 2-8 kB; parsing a 4 MB literal costs the parent seconds
MAX_DEPTH = 80  # AST nesting; real programs stay under 20, recursive parent-side helpers stop near 1000
MAX_SHOWN = 5  # problems named in a SandboxError's message (all are kept in `problems`)
MAX_LOOP = 64  # a reward has a handful of stages; a large loop bound is a bug or an attack
ALLOWED_BUILTINS = ("abs", "min", "max", "float", "int", "bool", "len", "range", "round")
NP_FUNCS = (
    "abs", "absolute", "sqrt", "square", "exp", "log", "tanh", "sign", "floor", "ceil", "round",
    "clip", "minimum", "maximum", "where", "sum", "mean", "min", "max", "any", "all", "argmax",
    "argmin", "logical_and", "logical_or", "logical_not", "zeros_like", "ones_like", "full_like",
    "stack", "concatenate", "asarray", "array", "float64", "int64", "isfinite", "hypot", "arctan2",
    "sin", "cos", "dot", "cumsum", "maximum", "take_along_axis", "expand_dims", "broadcast_to",
    "pi", "inf", "newaxis", "shape", "ndim", "take", "select", "interp", "ones", "zeros", "full",
    "arange", "linspace",
)
NP_SUBMODULES = {"linalg": ("norm",)}
FORBIDDEN_NAMES = {"open", "exec", "eval", "getattr", "setattr", "delattr", "compile", "globals",
                   "locals", "vars", "__import__", "input", "breakpoint", "dir", "type", "object",
                   "super", "help", "memoryview", "classmethod", "staticmethod", "property"}

_ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.AugAssign,
    ast.Expr, ast.If, ast.For, ast.Pass, ast.Name, ast.Load, ast.Store, ast.Constant, ast.BinOp,
    ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.keyword, ast.Attribute,
    ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Dict,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult,
    ast.USub, ast.UAdd, ast.Not, ast.Invert, ast.And, ast.Or, ast.BitAnd, ast.BitOr, ast.BitXor,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
)


def one_line(text, limit: int = 200) -> str:
    """`text` as one printable line of at most `limit` characters."""
    text = " ".join(str(text).split())
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SandboxError(ValueError):
    """A reward program was rejected or failed; `problems` lists 'line N: reason' strings, the
    message names the first MAX_SHOWN of them on one line."""

    def __init__(self, problems: list[str]):
        self.problems = [one_line(p) for p in problems] or ["unknown problem"]
        shown = "; ".join(self.problems[:MAX_SHOWN])
        more = len(self.problems) - MAX_SHOWN
        super().__init__(f"reward program rejected: {shown}" + (f" (+{more} more)" if more > 0 else ""))


def _is_small_range(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(isinstance(e, ast.Constant) for e in node.elts) and len(node.elts) <= MAX_LOOP
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
        return False
    if node.keywords or not 1 <= len(node.args) <= 3:
        return False
    vals = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
    if not all(type(v) is int for v in vals):
        return False
    return len(range(*vals)) <= MAX_LOOP


def _np_attr_ok(node: ast.Attribute) -> bool:
    """`np.f` with f whitelisted, or `np.linalg.norm`."""
    if isinstance(node.value, ast.Name) and node.value.id == "np":
        return node.attr in NP_FUNCS or node.attr in NP_SUBMODULES
    v = node.value
    return (isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id == "np"
            and node.attr in NP_SUBMODULES.get(v.attr, ()))


def parse_program(code) -> ast.Module:
    """`ast.parse` that fails only with SandboxError: size cap, encoding, syntax, nesting depth."""
    if not isinstance(code, str):
        raise SandboxError([f"the program must be text, got {type(code).__name__}"])
    if len(code) > MAX_SOURCE_CHARS:
        raise SandboxError([f"the program has {len(code)} characters; at most {MAX_SOURCE_CHARS} are accepted"])
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as e:
        line = code.count("\n", 0, e.start) + 1
        raise SandboxError([f"line {line}: the source is not valid text (lone surrogate {code[e.start]!a})"]) from None
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise SandboxError([f"line {e.lineno}: syntax error: {e.msg}"]) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as e:  # null bytes, nesting too deep
        raise SandboxError([f"the source cannot be parsed ({type(e).__name__}: {one_line(e, 80) or 'too deeply nested'})"]) from None
    stack = [(tree, 0)]  # iterative: a recursive walk would itself overflow on the trees it must refuse
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SandboxError([f"line {getattr(node, 'lineno', '?')}: expressions nested deeper than {MAX_DEPTH} "
                                "levels are not allowed"])
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree


def check_program(code: str) -> ast.Module:
    """Static whitelist check; returns the parsed module or raises SandboxError with every problem."""
    tree = parse_program(code)
    try:
        problems = _whitelist_problems(tree)
    except (RecursionError, MemoryError) as e:  # belt and braces: depth is capped above
        raise SandboxError([f"the program is too complex to check ({type(e).__name__})"]) from None
    if problems:
        raise SandboxError(sorted(set(problems), key=_line_order))
    return tree


def _line_order(problem: str):
    head = problem.split(":")[0]
    return (int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 10**9, problem)


def _whitelist_problems(tree: ast.Module) -> list[str]:
    problems: list[str] = []

    def bad(node, why):
        problems.append(f"line {getattr(node, 'lineno', '?')}: {why}")

    entries = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(entries) != 1 or entries[0].name != ENTRY:
        bad(tree, f"the program must define exactly one function `def {ENTRY}(state, step):`")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            if [x.arg for x in a.args] != ["state", "step"] or a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
                bad(node, f"`{node.name}` must take exactly (state, step)")
            if node.decorator_list or node.returns:
                bad(node, "decorators/annotations are not allowed")
        elif isinstance(node, ast.Assign):
            if not all(isinstance(t, ast.Name) for t in node.targets):
                bad(node, "module level allows only `NAME = <literal>`")
            try:
                ast.literal_eval(node.value)
            except Exception:  # noqa: BLE001 - ValueError, TypeError ({[1]: 2}), ...: all mean "not a literal"
                bad(node, "module-level values must be literals (numbers, strings, tuples, lists, dicts)")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            pass  # docstring
        elif isinstance(node, _ALLOWED_NODES):  # other node types are named by the walk below
            bad(node, f"`{type(node).__name__}` is not allowed at module level")

    for node in ast.walk(tree):
        if isinstance(node, ast.alias):  # the names of an Import, itself already refused
            continue
        if not isinstance(node, _ALLOWED_NODES):
            bad(node, f"`{type(node).__name__}` is not allowed")
            continue
        if isinstance(node, ast.FunctionDef) and node is not (entries[0] if entries else None):
            bad(node, "nested function definitions are not allowed")
        if isinstance(node, ast.Name):
            if node.id.startswith("_") or node.id in FORBIDDEN_NAMES:
                bad(node, f"name `{node.id}` is forbidden")
        elif isinstance(node, ast.arg) and node.arg.startswith("_"):
            bad(node, f"argument `{node.arg}` is forbidden")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                bad(node, f"attribute `{node.attr}` is forbidden (no underscore names)")
            elif not (_np_attr_ok(node) or (isinstance(node.value, ast.Name) and node.value.id == "np"
                                              and node.attr in NP_SUBMODULES)):
                bad(node, f"attribute access `.{node.attr}` is not allowed (only whitelisted np.<function>)")
        elif isinstance(node, ast.Call):
            f = node.func
            ok = (isinstance(f, ast.Name) and f.id in ALLOWED_BUILTINS) or (isinstance(f, ast.Attribute) and _np_attr_ok(f)
                                                                          and f.attr not in NP_SUBMODULES)
            if not ok:
                bad(node, f"call of `{ast.unparse(f)}` is not allowed (only {', '.join(ALLOWED_BUILTINS)} and np.<whitelisted>)")
            if isinstance(f, ast.Name) and f.id == "range" and not _is_small_range(node):
                bad(node, f"range() needs integer literal bounds with at most {MAX_LOOP} items")
        elif isinstance(node, ast.For):
            if not _is_small_range(node.iter):
                bad(node, f"`for` may only loop over range(<literal <= {MAX_LOOP}>) or a literal tuple/list")
            if node.orelse:
                bad(node, "`for ... else` is not allowed")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (bytes, complex)):
            bad(node, "bytes/complex literals are not allowed")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 10_000:
            bad(node, "string literal too long")
    return problems


_WORKER = Path(__file__).with_name("_sandbox_worker.py")


def run_program(code: str, state: dict, step: np.ndarray | None = None, timeout_s: float = 20.0,
                memory_mb: int = 2048) -> tuple[np.ndarray, np.ndarray, int]:
    """Check, then execute `reward(state, step)` in an isolated worker process.

    state: flat dict of arrays with batch shape (*B, T) (see docs/INTERFACES.md).
    Returns (reward (*B,T) float64, stage (*B,T) int64, n_stages): n_stages is the N_STAGES the
    program set when it ran.
    """
    check_program(code)
    eef = np.asarray(state["eef_pos"])
    bshape = eef.shape[:-1]
    if step is None:
        step = np.broadcast_to(np.arange(bshape[-1]), bshape) if bshape else np.zeros(())
    payload = pickle.dumps({"code": code, "memory_mb": int(memory_mb), "cpu_s": int(timeout_s) + 1,
                            "state": {k: np.asarray(v) for k, v in state.items()},
                            "step": np.asarray(step), "shape": bshape})
    try:
        proc = subprocess.run([sys.executable, "-I", str(_WORKER)], input=payload, capture_output=True,
                              timeout=timeout_s, env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                                                      "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        raise SandboxError([f"runtime: no result within {timeout_s:.0f} s (endless or too slow program)"]) from None
    if proc.returncode != 0:
        lines = proc.stderr[-20_000:].decode("utf-8", errors="replace").strip().splitlines()
        try:
            problems = json.loads(lines[-1])["problems"]
            if not (isinstance(problems, list) and problems):
                raise ValueError
        except (IndexError, ValueError, KeyError, TypeError):
            status = -proc.returncode if proc.returncode < 0 else proc.returncode
            why = {9: "killed (CPU-time limit)", 24: "killed (CPU-time limit)"}.get(status, "") if proc.returncode < 0 else ""
            problems = [f"runtime: worker exited with status {proc.returncode}{' ' + why if why else ''}: "
                        f"{one_line((lines or ['(no message)'])[-1])}"]
        raise SandboxError(problems)
    try:
        with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as z:
            return z["reward"], z["stage"], int(z["n_stages"])
    except Exception as e:  # noqa: BLE001 - whatever the worker wrote, the parent reports one line
        raise SandboxError([f"runtime: unreadable worker output ({type(e).__name__})"]) from None
