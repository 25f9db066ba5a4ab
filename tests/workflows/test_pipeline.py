"""The steps `make run` chains: a second `make run` at once is refused instead of recording over the first."""
import os

import pytest

import tgrpo_lib
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.demos import task_dir
from tgrpo_lib.workflows import pipeline


def test_demos_being_recorded_by_another_process_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tgrpo_lib, "OUTPUTS_DIR", tmp_path)
    monkeypatch.setattr(pipeline, "run_task", None)  # recording would fail if it got that far
    folder = task_dir("libero_object", 0)
    folder.mkdir(parents=True)
    with runs.run_lock(folder):
        with pytest.raises(runs.RunLocked, match=f"in use by pid {os.getpid()}"):
            pipeline.ensure_demos("libero_object", 0, episodes=2)
