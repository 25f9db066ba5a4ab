"""The notebooks as committed (no kernel, milliseconds): without outputs; imports, one `parameters`
cell of literals, calls and plots, and a last cell that writes metrics.json through the package
(``analysis.report.write_metrics``); no function longer than a plot helper; 03 and 04 share the
package's sweep study instead of repeating its code."""
import ast
import json

import pytest
from run_fixtures import NOTEBOOKS

NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
LONGEST_HELPER = 8
"""Lines a function defined in a notebook may span (a plot or widget callback, no more)."""


def code_cells(name: str) -> list[dict]:
    return [c for c in json.loads((NOTEBOOKS / name).read_text())["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_all_six_are_checked():
    assert [n[:2] for n in NAMES] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    dirty = [c.get("id") for c in code_cells(name) if c["outputs"] or c["execution_count"] is not None]
    assert not dirty, f"{name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("name", NAMES)
def test_one_parameters_cell_of_literals(name):
    cells = code_cells(name)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])]
    assert tagged == [1], f"{name}: the parameters cell follows the imports"
    for node in ast.parse(source(cells[1])).body:
        assert isinstance(node, ast.Assign), f"{name}: only assignments in the parameters cell"
        ast.literal_eval(node.value)  # a literal, so papermill can override it


@pytest.mark.parametrize("name", NAMES)
def test_last_cell_writes_metrics_through_the_package(name):
    cells = code_cells(name)
    assert "write_metrics(output_dir" in source(cells[-1])
    for cell in cells:
        text = source(cell)
        assert "metrics.json" not in text and "json.dumps" not in text, f"{name}: metrics.json built by hand"


@pytest.mark.parametrize("name", NAMES)
def test_no_logic_beyond_a_plot_helper(name):
    for cell in code_cells(name):
        tree = ast.parse(source(cell))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert node.end_lineno - node.lineno < LONGEST_HELPER, f"{name}: {node.name} belongs in the package"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                private = [n for n in names if any(part.startswith("_") for part in n.split("."))]
                assert not private, f"{name}: private imports {private}"
            if isinstance(node, ast.Attribute):
                assert not node.attr.startswith("_"), f"{name}: private attribute .{node.attr}"


def test_the_two_sweeps_share_one_helper():
    for name in ("03_alpha_sweep.ipynb", "04_group_size_sweep.ipynb"):
        text = "".join(source(c) for c in code_cells(name))
        assert "AxisStudy.declare(" in text and "run_sweep" not in text and "curve_summary" not in text
