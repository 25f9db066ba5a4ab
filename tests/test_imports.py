"""The package's own imports: at the top of each module, where a reader sees what it depends on.

An import of a tgrpo_lib module inside a function stays only where it buys start-up time (a
command refuses bad arguments before torch loads; ``tgrpo_lib.policy`` stays torch-free for
configs) or reaches an optional dependency, and a ``# deferred: <why>`` comment says so, on its
line or in the comment block directly above its group of imports. And every module imports as
the first tgrpo_lib module of an interpreter, so no import cycle hides behind an import order.
"""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tgrpo_lib

PACKAGE_DIR = Path(tgrpo_lib.__file__).resolve().parent
DEFERRED = re.compile(r"#\s*deferred:\s*\S")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE_DIR.rglob("*.py"))


def is_ours(node: ast.AST) -> bool:
    """An import of a tgrpo_lib module: relative, or absolute under tgrpo_lib."""
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or node.module == "tgrpo_lib" or (node.module or "").startswith("tgrpo_lib.")
    if isinstance(node, ast.Import):
        return any(a.name == "tgrpo_lib" or a.name.startswith("tgrpo_lib.") for a in node.names)
    return False


def function_imports(tree: ast.AST):
    """(import node, the statement list it sits in) for every tgrpo_lib import inside a function."""
    def visit(node, in_function):
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for stmt in block:
                if in_function and is_ours(stmt):
                    yield stmt, block
                yield from visit(stmt, in_function or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)))
        for case in getattr(node, "cases", ()):  # match statements
            yield from visit(case, in_function)
    yield from visit(tree, False)


def is_explained(node: ast.stmt, block: list, lines: list[str]) -> bool:
    """A ``# deferred:`` comment on the import's own lines, or in the comments directly above the
    contiguous group of imports it belongs to (blank lines and the group's other imports skipped)."""
    if any(DEFERRED.search(lines[i - 1]) for i in range(node.lineno, node.end_lineno + 1)):
        return True
    group_lines = {i for s in block if isinstance(s, (ast.Import, ast.ImportFrom))
                   for i in range(s.lineno, s.end_lineno + 1)}
    i = node.lineno - 1
    while i >= 1:
        text = lines[i - 1].strip()
        if text.startswith("#"):
            if DEFERRED.search(text):
                return True
        elif text and i not in group_lines:
            return False
        i -= 1
    return False


def unexplained_deferrals(path: Path, root: Path = PACKAGE_DIR.parent) -> list[str]:
    text = path.read_text()
    lines = text.splitlines()
    return [f"{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
            for node, block in function_imports(ast.parse(text)) if not is_explained(node, block, lines)]


def test_every_deferred_import_of_the_package_says_why():
    bad = [line for path in sorted(PACKAGE_DIR.rglob("*.py")) for line in unexplained_deferrals(path)]
    assert not bad, ("imports of tgrpo_lib modules inside functions without a `# deferred: <why>` comment "
                     "(move them to the top of the module, or say why they must wait):\n" + "\n".join(bad))


def test_the_deferral_check_catches_an_unexplained_import(tmp_path):
    path = tmp_path / "tgrpo_lib" / "m.py"
    path.parent.mkdir()
    path.write_text(
        "import os\n\n\n"
        "def explained_above():\n"
        "    import json\n\n"
        "    # deferred: torch loads only after the arguments proved valid\n"
        "    from tgrpo_lib import train\n"
        "    from tgrpo_lib.workflows.sweeps import run_sweep\n"
        "    return train, run_sweep, json\n\n\n"
        "def explained_on_the_line():\n"
        "    from . import sweeps  # deferred: torch\n"
        "    return sweeps\n\n\n"
        "def unexplained():\n"
        "    '''# deferred: a docstring is no comment'''\n"
        "    from tgrpo_lib.envs import get_task\n"
        "    x = 1  # deferred: not about the import below\n"
        "    import tgrpo_lib.analysis.stats\n"
        "    if x:\n"
        "        from .plots import advantage_panels\n"
        "    import numpy  # not ours: never flagged\n"
        "    return get_task, advantage_panels, numpy\n")
    bad = unexplained_deferrals(path, root=tmp_path)
    assert [b.split(":")[1] for b in bad] == ["20", "22", "24"], bad


# ------------------------------------------------------------------ no import cycle at top level
IMPORT_EACH = r"""
import importlib, json, sys, traceback
out = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "tgrpo_lib" or m.startswith("tgrpo_lib.")]:
        del sys.modules[loaded]  # as if `name` were the first tgrpo_lib module this interpreter imports
    try:
        importlib.import_module(name)
        out[name] = ["ok", ""]
    except ModuleNotFoundError as exc:
        ours = (exc.name or "").split(".")[0] == "tgrpo_lib"
        out[name] = ["error" if ours else "missing", traceback.format_exc() if ours else exc.name]
    except BaseException:
        out[name] = ["error", traceback.format_exc()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def imported_first():
    """Every module imported in one fresh interpreter, each as its first tgrpo_lib import (the
    tgrpo_lib entries of sys.modules dropped before each; third-party modules stay loaded, which
    only saves time: a cycle can only run through tgrpo_lib's own modules)."""
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH, *MODULES], capture_output=True, text=True,
                          timeout=600, cwd=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_first_without_a_cycle(module, imported_first):
    status, detail = imported_first[module]
    if status == "missing":
        pytest.skip(f"{module} needs {detail}, which this install lacks")
    assert status == "ok", f"import {module} (the first tgrpo_lib import) failed:\n{detail}"


@pytest.mark.parametrize("command", ["tgrpo_lib.workflows.main", "tgrpo_lib.paper_scale.plan", "tgrpo_lib.training.sft", "tgrpo_lib.workflows.diagnose",
                                     "tgrpo_lib.expert.__main__", "tgrpo_lib.reward.__main__", "tgrpo_lib.workflows.reproduce"])
def test_commands_check_arguments_before_torch_loads(command):
    """Importing a command's module loads no torch, so bad arguments are refused before it (~3-5 s)."""
    code = f"import sys, {command}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
