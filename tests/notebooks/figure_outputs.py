"""What the figure cells of a notebook executed by papermill must carry: image/png outputs, as many
as the cell shows figures, and no figure anywhere shown only as its text (``<Figure size ...>``)."""
import base64
import json
import re
from pathlib import Path

FIGURE_TEXT = re.compile(r"<\w*Figure size [\d.]+x[\d.]+ with \d+ Axes>")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FIGURE_CELLS = {
    "01_reward_generation": {"5d696b2c": 1, "f68e92cd": 1},  # offline vs LLM reward on one demo; reward inspector
    "02_training_run": {"be63da07": 1, "a7a76f06": 1},       # training curves; advantage explorer (one copy)
    "03_alpha_sweep": {"cell-08": 1},                        # Fig. 5 left
    "04_group_size_sweep": {"cell-08": 1},                   # Fig. 5 right
    "05_results_tables": {"cell-12": 2},                     # Fig. 3, Fig. 5
    "06_robustness": {"cell-08": 1},                         # success per condition, SFT vs TGRPO
}
"""Notebook -> {cell id: images it shows}."""


def assert_figures_render(executed: Path | str, name: str) -> None:
    cells = json.loads(Path(executed).read_text())["cells"]
    images, as_text = {}, []
    for cell in cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                assert base64.b64decode(data["image/png"]).startswith(PNG_MAGIC), cell["id"]
                images[cell["id"]] = images.get(cell["id"], 0) + 1
            elif FIGURE_TEXT.search("".join(data.get("text/plain", "")) + "".join(out.get("text", ""))):
                as_text.append(cell["id"])
    assert not as_text, f"{name}: figures shown as text, not images, in cells {as_text}"
    expected = FIGURE_CELLS[name]
    assert {cid: images.get(cid, 0) for cid in expected} == expected, f"{name}: images per figure cell"
