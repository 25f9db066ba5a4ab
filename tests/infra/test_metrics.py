"""metrics.jsonl and its TensorBoard events: the logger, prefixed keys, whole lines, resume, damaged lines."""
import numpy as np
import pytest
import torch

from tgrpo_lib.infra import runs
from tgrpo_lib.infra.metrics import MetricsLogger
from tgrpo_lib.infra.runs import read_metrics


def test_metrics_round_trip(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log({"charts/success_rate": 0.25, "losses/policy": torch.tensor(-0.5)}, step=0)
    logger.log({"charts/success_rate": np.float32(0.5), "time/sim": 3.0, "losses/kl": float("nan")}, step=1)
    df = read_metrics(tmp_path)
    assert list(df["step"]) == [0, 1]
    assert list(df["charts/success_rate"]) == [0.25, 0.5]
    assert df["losses/policy"].iloc[0] == -0.5 and np.isnan(df["losses/policy"].iloc[1])
    assert np.isnan(df["losses/kl"].iloc[1]) and df["time/sim"].iloc[1] == 3.0
    assert (df["wall_time"] > 0).all()


def test_metrics_need_prefixed_keys(tmp_path):
    with pytest.raises(ValueError, match="section prefix"):
        MetricsLogger(tmp_path).log({"success_rate": 1.0}, step=0)
    assert read_metrics(tmp_path).empty


def test_metrics_survive_a_torn_line_and_resume_drops_later_steps(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(4):
        logger.log({"losses/policy": float(step)}, step=step)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "losses/po')  # crash mid-write
    assert list(read_metrics(tmp_path)["step"]) == [0, 1, 2, 3]
    MetricsLogger(tmp_path, resume_from_step=1).log({"losses/policy": 20.0}, step=2)
    df = read_metrics(tmp_path)
    assert list(df["step"]) == [0, 1, 2] and df["losses/policy"].iloc[-1] == 20.0


def tensorboard_scalars(run_dir) -> dict:
    """{tag: [(step, value), ...]} as TensorBoard's own loader reads the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_mirror_metrics_jsonl(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log({"eval/success_standard": 0.5}, step=-1)
    logger.log({"losses/policy": torch.tensor(-0.5), "charts/env_steps": 16, "charts/has_success": True,
                "charts/per_env": np.array([1.0, 2.0])}, step=0)
    logger.log({"losses/policy": float("nan"), "charts/env_steps": 8}, step=1)
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = tensorboard_scalars(tmp_path)
    df = read_metrics(tmp_path)
    assert set(scalars) == set(df.columns) - {"step", "wall_time", "charts/per_env"}  # a list has no scalar
    assert scalars["eval/success_standard"] == [(-1, 0.5)]
    assert scalars["charts/env_steps"] == [(0, 16.0), (1, 8.0)] and scalars["charts/has_success"] == [(0, 1.0)]
    assert scalars["losses/policy"][0] == (0, -0.5) and np.isnan(scalars["losses/policy"][1][1])


def test_tensorboard_events_follow_a_resume(tmp_path):
    """After a resume TensorBoard shows what metrics.jsonl keeps: read afresh, and by a loader
    that had read the dropped steps already (a TensorBoard left running)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricsLogger(tmp_path)
    for step in range(4):
        logger.log({"losses/policy": float(step)}, step=step)
    running = EventAccumulator(str(tmp_path))
    running.Reload()
    MetricsLogger(tmp_path, resume_from_step=1).log({"losses/policy": 20.0}, step=2)
    kept = [(0, 0.0), (1, 1.0), (2, 20.0)]
    assert tensorboard_scalars(tmp_path) == {"losses/policy": kept}
    running.Reload()
    assert [(e.step, e.value) for e in running.Scalars("losses/policy")] == kept


def test_tensorboard_events_replay_a_run_logged_without_them(tmp_path):
    MetricsLogger(tmp_path).log({"losses/policy": 1.0}, step=0)
    for f in tmp_path.glob("events.out.tfevents.*"):
        f.unlink()
    MetricsLogger(tmp_path, resume_from_step=0).log({"losses/policy": 2.0}, step=1)
    assert tensorboard_scalars(tmp_path) == {"losses/policy": [(0, 1.0), (1, 2.0)]}


def test_damaged_metrics_lines_are_reported_and_dropped_on_resume(tmp_path):
    logger = MetricsLogger(tmp_path)
    for step in range(3):
        logger.log({"losses/policy": float(step)}, step=step)
    assert runs.check_metrics(tmp_path) is None
    with (tmp_path / "metrics.jsonl").open("ab") as f:
        f.write(b'{"step": 3, "losses/po')  # cut mid-write, no newline
    line = runs.check_metrics(tmp_path)
    assert "1 damaged line(s) (line 4" in line and "3 kept" in line
    MetricsLogger(tmp_path, resume_from_step=2).log({"losses/policy": 3.0}, step=3)
    assert list(read_metrics(tmp_path)["step"]) == [0, 1, 2, 3] and runs.check_metrics(tmp_path) is None
    with (tmp_path / "metrics.jsonl").open("ab") as f:
        f.write(b"\0\0\0\xff\xfe\n")  # what a filesystem may leave after a power loss
    assert list(read_metrics(tmp_path)["step"]) == [0, 1, 2, 3] and "line 5" in runs.check_metrics(tmp_path)
