"""Notebook 05 under papermill on synthetic run directories (no simulator, seconds): its figure
cells carry image/png outputs, one per figure, and no figure is shown as text. The quick subset
(``make test-quick``) runs it; the smoke runs of every notebook (marked sim) check the same."""
import json

import pytest
from figure_outputs import assert_figures_render
from run_fixtures import CELL_TIMEOUT_S, NOTEBOOKS, synthetic_runs

from tgrpo_lib.workflows.reproduce import kernel_config


pytestmark = pytest.mark.notebook


def test_results_notebook_figures_are_images(tmp_path, monkeypatch):
    import papermill as pm

    root = synthetic_runs(tmp_path / "runs")
    monkeypatch.setenv("TGRPO_OUTPUTS", str(tmp_path / "outputs"))  # the kernel inherits it
    executed = tmp_path / "05_results_tables.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / executed.name), str(executed), kernel_name="python3", cwd=str(NOTEBOOKS),
                        progress_bar=False, config=kernel_config(), execution_timeout=CELL_TIMEOUT_S,
                        parameters=dict(outputs_root=str(root), results_name="quick"))
    assert_figures_render(executed, "05_results_tables")
    metrics = json.loads((root / "notebooks" / "05_results_tables" / "metrics.json").read_text())
    assert metrics["runs"] == 14 and metrics["table_runs"] == 12  # the two alpha-sweep runs stay out of the tables
    assert (root / "results" / "quick" / "fig3.png").stat().st_size > 1000
