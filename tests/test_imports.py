"""The package's own imports: which layer may import which, and at the top of each module, where a
reader sees what it depends on.

Layers are the package's folders (``algorithm``, ``training``, ``analysis``, ``infra``,
``workflows``, ``paper_scale``, ``envs``, ``policy``, ``reward``, ``expert``), the package root
(``tgrpo_lib/__init__``: paths and process defaults) and the command shims beside it
(``tgrpo_lib/main.py`` ... and ``__main__``). ``MAY_IMPORT`` is the architecture: every import of
every module, at its top or deferred into a function, follows one of its arrows.

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


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE_DIR.rglob("*.py"))
COMMANDS = ("main", "sft", "plan", "parity", "diagnose", "reproduce")
"""The old spellings ``python -m tgrpo_lib.<command>``: shims at the package root."""


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


# ------------------------------------------------------------------ which layer may import which
MAY_IMPORT = {
    "root": set(),
    "commands": {"workflows", "training", "paper_scale"},
    "infra": {"algorithm", "envs", "policy", "reward"},  # config checks each layer's own config and the variants table
    "algorithm": {"infra"},
    "envs": {"infra"},
    "policy": {"infra"},
    "expert": {"infra", "envs"},
    "reward": {"infra", "envs", "expert"},
    "training": {"algorithm", "infra", "envs", "policy", "reward"},
    "analysis": {"algorithm", "infra"},  # run directories only: never the simulator, a policy or the training loop
    "paper_scale": {"training", "infra", "envs", "policy"},
    "workflows": {"training", "analysis", "algorithm", "infra", "envs", "policy", "reward", "expert"},
}
"""Layer -> the other layers its modules may import (each may import itself and the package root)."""
SHARED = {"tgrpo_lib.analysis.stats"}
"""Pure modules any layer may import (intervals and tests of success rates, STYLE 12): they import no
tgrpo_lib module themselves."""
NEVER = {
    "analysis": {"envs", "policy", "training"},
    "algorithm": {"training", "workflows", "analysis"},
    "infra": {"training", "workflows", "analysis"},
    **{low: {"training", "workflows", "analysis", "paper_scale"} for low in ("envs", "policy", "reward", "expert")},
}
"""Arrows the architecture rules out, whatever ``MAY_IMPORT`` says (checked against it below)."""


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    return parts[1] if parts[1] in MAY_IMPORT else "commands"


def imported_modules(path: Path, module: str, known) -> list[tuple[int, str]]:
    """(line, tgrpo_lib module) for every import of the package in ``path``, at the top or in a
    function: ``from tgrpo_lib.x import y`` names ``tgrpo_lib.x.y`` where that is a module, else ``tgrpo_lib.x``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tgrpo_lib"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] == "tgrpo_lib":
                out += [(node.lineno, f"{source}.{a.name}" if f"{source}.{a.name}" in known else source) for a in node.names]
    return out


def forbidden_imports(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """``path:line: importer -> imported (layer -> layer)`` for every import ``MAY_IMPORT`` does not allow."""
    paths = {module_name(p, package_dir): p for p in package_dir.rglob("*.py")}
    bad = []
    for module, path in sorted(paths.items()):
        src = layer_of(module)
        for line, target in imported_modules(path, module, paths):
            dst = layer_of(target)
            if dst in (src, "root") or target in SHARED or dst in MAY_IMPORT[src]:
                continue
            bad.append(f"{path.relative_to(package_dir.parent)}:{line}: {module} -> {target} ({src} -> {dst})")
    return bad


def test_every_import_follows_the_layers():
    bad = forbidden_imports()
    assert not bad, ("imports across layers that MAY_IMPORT does not allow (move the code to the layer it "
                     "belongs to, or the shared piece below both):\n" + "\n".join(bad))


def test_the_layer_table_never_allows_a_forbidden_arrow():
    assert set(MAY_IMPORT) >= set(NEVER)
    allowed = {(src, dst) for src, dsts in MAY_IMPORT.items() for dst in dsts}
    assert not {(src, dst) for src, dsts in NEVER.items() for dst in dsts} & allowed
    assert "commands" not in {dst for dsts in MAY_IMPORT.values() for dst in dsts}  # nothing imports a shim


def test_shared_modules_import_nothing_of_the_package():
    for module in SHARED:
        path = PACKAGE_DIR.parent / (module.replace(".", "/") + ".py")
        assert imported_modules(path, module, set(MODULES)) == [], module


def test_the_layer_check_catches_a_forbidden_import(tmp_path):
    package = tmp_path / "tgrpo_lib"
    for folder, text in (("analysis", "from tgrpo_lib.training.evaluation import evaluate\n"
                                      "from tgrpo_lib.analysis.stats import wilson_interval\n"
                                      "from tgrpo_lib.infra import runs\n\n\n"
                                      "def late():\n"
                                      "    from ..envs import get_task  # deferred: still an arrow\n"
                                      "    return get_task\n"),
                         ("envs", "import tgrpo_lib\nfrom tgrpo_lib.workflows import main\n"),
                         ("training", "from tgrpo_lib.analysis import stats\nfrom tgrpo_lib.policy import load_policy\n"),
                         ("infra", "from tgrpo_lib import main\n")):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
        (package / folder / "m.py").write_text(text)
    (package / "__init__.py").write_text("")
    (package / "analysis" / "stats.py").write_text("import math\n")  # shared: any layer may use it
    (package / "main.py").write_text("from tgrpo_lib.workflows.main import main\n")
    (package / "workflows").mkdir()
    (package / "workflows" / "main.py").write_text("from tgrpo_lib.training import m\n")
    assert [b.split(": ", 1)[1] for b in forbidden_imports(package)] == [
        "tgrpo_lib.analysis.m -> tgrpo_lib.training.evaluation (analysis -> training)",
        "tgrpo_lib.analysis.m -> tgrpo_lib.envs (analysis -> envs)",
        "tgrpo_lib.envs.m -> tgrpo_lib.workflows.main (envs -> workflows)",
        "tgrpo_lib.infra.m -> tgrpo_lib.main (infra -> commands)"]


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


HOMES = ("tgrpo_lib.workflows.main", "tgrpo_lib.training.sft", "tgrpo_lib.paper_scale.plan",
         "tgrpo_lib.paper_scale.parity", "tgrpo_lib.workflows.diagnose", "tgrpo_lib.workflows.reproduce",
         "tgrpo_lib.expert.__main__", "tgrpo_lib.reward.__main__")


@pytest.mark.parametrize("command", ["tgrpo_lib.__main__", *HOMES, *(f"tgrpo_lib.{c}" for c in COMMANDS)])
def test_commands_check_arguments_before_torch_loads(command):
    """Importing a command's module (its home, its old-spelling shim, the dispatcher) loads no torch,
    so bad arguments are refused before it (~3-5 s)."""
    code = f"import sys, {command}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
