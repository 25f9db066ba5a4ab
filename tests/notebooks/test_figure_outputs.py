"""The executed-notebook figure check itself (no kernel, no simulator): it fails on a figure shown
as text, as notebook 05 showed Fig. 3 before, and on a missing or a second copy of an image."""
import base64
import json

import pytest
from figure_outputs import FIGURE_CELLS, PNG_MAGIC, assert_figures_render

PNG = base64.b64encode(PNG_MAGIC + b"rest of the image").decode()


def _executed(tmp_path, outputs_per_cell: dict) -> str:
    cells = [{"cell_type": "code", "id": cid, "source": "", "metadata": {}, "execution_count": 1, "outputs": outs}
             for cid, outs in outputs_per_cell.items()]
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def image(text="<NotebookFigure size 1200x440 with 2 Axes>"):
    return {"output_type": "display_data", "metadata": {}, "data": {"text/plain": text, "image/png": PNG}}


def test_passes_on_images(tmp_path):
    assert FIGURE_CELLS["05_results_tables"] == {"cell-12": 2}
    assert_figures_render(_executed(tmp_path, {"cell-11": [], "cell-12": [image(), image()]}), "05_results_tables")


@pytest.mark.parametrize("outputs", [
    [{"output_type": "display_data", "metadata": {}, "data": {"text/plain": "<Figure size 1200x400 with 2 Axes>"}},
     image()],                                                                   # one figure as text only
    [{"output_type": "stream", "name": "stdout", "text": "<Figure size 1000x700 with 4 Axes>\n"}, image()],
    [image()],                                                                   # a figure missing
    [image(), image(), image()],                                                 # a second copy
])
def test_fails_on_text_missing_or_duplicate_figures(tmp_path, outputs):
    with pytest.raises(AssertionError):
        assert_figures_render(_executed(tmp_path, {"cell-12": outputs}), "05_results_tables")
