"""What a run logs: ``metrics.jsonl`` (one JSON line per logged step, keys prefixed ``charts/``,
``losses/``, ``time/``) and the same metrics as TensorBoard event files beside it (``make tb``).

    logger = MetricsLogger(run_dir)                        # resume_from_step=k drops the lines after k
    logger.log({"charts/success_rate": 0.5, "losses/policy": 0.1}, step=3)

Both are appended whole or not at all (``append_whole``): a full disk leaves no half line and
stops the run with a ``RunError`` naming the fix. Reading them back is the run directory's IO
(``runs.read_metrics``, ``runs.check_metrics``), beside the run's other files.
"""
from __future__ import annotations

import io
import json
import os
import platform
import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2

from tgrpo_lib.infra.runs import RunError, free_space, latest_checkpoint, parse_jsonl


class MetricsLogger:
    """Appends one JSON line per ``log`` call to ``run_dir/metrics.jsonl``.

    Keys must carry a section prefix (``charts/success_rate``, ``losses/policy``, ``time/sim``).
    Each line is written and flushed whole, so a crash loses at most the line being written; a
    write that fails (a full disk) leaves the file as it was and raises ``RunError`` naming the
    file, the free space and the checkpoint the rerun resumes from (``append_whole``).
    When resuming from a checkpoint at iteration k, pass ``resume_from_step=k`` to drop the
    lines logged after it, which would otherwise appear twice.
    """

    def __init__(self, run_dir: Path | str, resume_from_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        rows = parse_jsonl(self.path)[0] if self.path.exists() else []
        if resume_from_step is not None and self.path.exists():
            rows = [r for r in rows if r.get("step", -1) <= resume_from_step]
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
            os.replace(tmp, self.path)
        self.events = TensorBoardEvents(run_dir, rows, resume_from_step)

    def log(self, metrics: dict, step: int) -> None:
        bad = [k for k in metrics if not isinstance(k, str) or "/" not in k.strip("/")]
        if bad:
            raise ValueError(f"metric keys need a section prefix like 'charts/', 'losses/' or 'time/', "
                             f"got {bad}; e.g. log({{'charts/success_rate': 0.5}}, step)")
        row = {"step": int(step), "wall_time": time.time()}
        row.update({k: _to_scalar(v) for k, v in metrics.items()})
        append_whole(self.path, (json.dumps(row) + "\n").encode())
        self.events.write(row)


class TensorBoardEvents:
    """The TensorBoard view of ``metrics.jsonl``: event files beside it, the same keys as scalar
    tags (values that are no number, e.g. lists, stay in the jsonl only), the same steps and wall
    times. Written with tensorboard's protobufs and record format, without TensorFlow.

    Each logger session appends to a new file, record by record, each flushed whole like a jsonl
    line. A run without event files gets its jsonl rows replayed first (runs logged before this
    existed); a resumed run's file starts with a session-start event at the first new step, which
    makes TensorBoard drop the steps the jsonl dropped, from older files or from its memory.
    """

    PREFIX = "events.out.tfevents."  # TensorBoard reads files whose name contains "tfevents"

    def __init__(self, run_dir: Path | str, rows: list[dict], resume_from_step: int | None = None):
        run_dir = Path(run_dir)
        older = sorted(run_dir.glob(self.PREFIX + "*"))
        # names sort in writing order (TensorBoard reads files by name): time, then a session count
        self.path = run_dir / f"{self.PREFIX}{int(time.time()):010d}.{len(older):04d}.{platform.node() or 'host'}.tgrpo"
        events = [event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")]
        if not older:
            events += [self._to_event(r) for r in rows]
        elif resume_from_step is not None:
            events.append(event_pb2.Event(wall_time=time.time(), step=resume_from_step + 1,
                                          session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        self._append(events)

    def write(self, row: dict) -> None:
        self._append([self._to_event(row)])

    @staticmethod
    def _to_event(row: dict):
        values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in row.items()
                  if k not in ("step", "wall_time") and isinstance(v, (int, float))]
        return event_pb2.Event(wall_time=row.get("wall_time", time.time()), step=int(row.get("step", 0)),
                               summary=summary_pb2.Summary(value=values))

    def _append(self, events) -> None:
        # deferred: tensorboard.summary imports its v1 API with it (~0.5 s), wanted only by writers
        from tensorboard.summary.writer.record_writer import RecordWriter

        records = io.BytesIO()
        writer = RecordWriter(records)
        for event in events:
            writer.write(event.SerializeToString())
        append_whole(self.path, records.getvalue())


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` whole or not at all: a write that fails part-way (a full disk,
    a quota) is cut back off, so no half line or half record is left for a reader, and
    ``RunError`` names the file, the reason, the free space and the checkpoint a rerun resumes from."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # not a regular file (a device): nothing of it to keep whole
            raise RunError(_append_failure(path, exc)) from exc
    finally:
        os.close(fd)


def _append_failure(path: Path, exc: OSError) -> str:
    ckpt = latest_checkpoint(path.parent)
    resume = (f"rerun the same command to resume from {ckpt.name}" if ckpt is not None else
              "rerun the same command to start the run again")
    return f"could not append to {path} ({exc.strerror or exc}; {free_space(path)}): free disk space, then {resume}"


def _to_scalar(v):
    # NaN/inf are kept (json writes NaN/Infinity, which json.loads reads back) so a diverging
    # loss stays visible in the curves instead of failing the logger.
    return v.tolist() if hasattr(v, "tolist") else v


__all__ = ["MetricsLogger", "TensorBoardEvents", "append_whole"]
