"""Inputs for executing notebooks in tests without training: parameterised copies (papermill's
injected-parameters cell, as papermill would run them) and complete synthetic run directories."""
import sys
from pathlib import Path

import tgrpo_lib

NOTEBOOKS = Path(tgrpo_lib.PROJECT_ROOT) / "notebooks"
CELL_TIMEOUT_S = 900  # papermill per cell: a kernel reply that never comes fails that test, naming its cell


def parameterised(name: str, folder: Path, params: dict) -> str:
    """A copy of notebook ``name`` with papermill's injected-parameters cell, as papermill would run it."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOKS / name)), params)
    nbformat.write(nb, folder / name)
    return name


def synthetic_runs(root: Path) -> Path:
    """Complete run directories as tests/analysis/run_dirs.py writes them: two suites, three methods."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    try:
        from run_dirs import write_run
    finally:
        sys.path.pop(0)
    for suite in ("libero_object", "libero_goal"):
        for algo, after in (("tgrpo", 0.6), ("grpo_sparse", 0.4), ("step_only", 0.5)):  # whole counts
            for seed in (0, 1):
                write_run(root, algo, suite, 0, seed, after=after + 0.1 * seed, before=0.3, episodes=10)
    for alpha1, after in ((0.1, 0.4), (0.9, 0.5)):
        write_run(root, "tgrpo", "libero_goal", 0, 0, after=after, before=0.3, alpha1=alpha1, episodes=10)
    return root
