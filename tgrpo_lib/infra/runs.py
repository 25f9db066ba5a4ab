"""Run directories: one layout for every training, sweep and evaluation run.

    outputs/<kind>/<run_name>/
        config.json      the run's config (a dataclass tree as a dict), written once
        versions.json    simulator / renderer / torch / transformers / peft / numpy versions, MUJOCO_GL,
                         python, platform, git commit, packages that differ from requirements/lock.txt
        metrics.jsonl    one JSON object per logged step, keys prefixed (charts/, losses/, time/),
                         written by ``infra.metrics.MetricsLogger``
        events.out.tfevents.*  the same metrics for TensorBoard (``make tb``)
        checkpoints/     iter_XXXXXX.pt written atomically + a `latest` pointer file
        eval/            {before,after}_{init set}.csv: one row per episode of the before/after
                         evaluation (``read_episodes``; written by ``training.evaluation.Protocol``)
        metrics.json     final summary, written by mark_complete() with the COMPLETE marker
        LOCK             while a process works on the run: its pid and host (``run_lock``)

Run names come from ``config.run_name(cfg)`` (readable key + config hash) or the user.
config.json carries ``schema``; an existing run is resumed only under the same schema and an
identical config. Plotting and results tables read only these files.

Faults a run survives (``RunError``: one line naming the path and the fix): a second process on
the same run is refused (``run_lock``), a checkpoint that cannot be written leaves the previous
one intact (``save_checkpoint``), a metrics line that cannot be appended (a full disk) leaves
the file whole (``metrics.append_whole``), and a checkpoint or metrics file cut by a crash is set aside
or dropped on resume (``load_latest_checkpoint``, ``check_metrics``). docs/reliability.md lists them all.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from tgrpo_lib import CONFIG_SCHEMA, OUTPUTS_DIR
from tgrpo_lib.envs.init_states import INIT_STATE_SETS
from tgrpo_lib.infra.config import check_name, check_schema, config_to_dict, json_default
from tgrpo_lib.infra.provenance import collect_versions

INIT_SETS = INIT_STATE_SETS
"""The init-state sets a run's before/after evaluation may hold: standard, heldout, test
(``tgrpo_lib.envs.init_states``); runs older than the test set hold none for it."""
COMPLETE_MARKER = "COMPLETE"
LOCK_FILE = "LOCK"


class RunError(RuntimeError):
    """A run stopped by a fault outside the code (a dead simulator worker, a full disk, another
    process on the run): the message is one line naming what happened, the path, and the fix.
    The commands print it as ``<prog>: error: <message>`` (``cli.run_guarded``)."""


class RunLocked(RunError):
    """Another live process holds the run's LOCK."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run: the message says where and what the rerun resumes from."""


def say(message: str) -> None:
    """One line on stderr about a fault a run recovered from (a stale lock, a cut checkpoint)."""
    print(message, file=sys.stderr, flush=True)


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON so readers never see a partial file; the temporary name carries the pid, so
    concurrent writers (sweep cells sharing a cache) do not clobber each other's temp file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves the old file and no stray temp


def run_dir_path(kind: str, name: str, root: Path | str | None = None) -> Path:
    """Where run ``name`` of ``kind`` lives (whether or not it exists)."""
    check_name("kind", kind)
    check_name("run name", name)
    return Path(OUTPUTS_DIR if root is None else root) / kind / name


def create_run_dir(kind: str, name: str, config, root: Path | str | None = None,
                   resume: bool = False) -> Path:
    """Create ``<root>/<kind>/<name>/`` with config.json (with ``schema``) and versions.json;
    never overwrite.

    An existing run is returned only with ``resume=True``, the same schema and an identical
    config; any other reuse of a name raises one ValueError naming the fix.
    """
    run_dir = run_dir_path(kind, name, root)
    cfg = config_to_dict(config)
    if run_dir.exists():
        if not (run_dir / "config.json").exists():
            if any(run_dir.iterdir()):
                raise ValueError(f"{run_dir} exists without config.json (not a run directory); "
                                 "choose another run name or remove that directory yourself")
        else:
            old = check_schema(read_config(run_dir), f"run {run_dir}")
            if old != cfg:
                diff = sorted(k for k in old.keys() | cfg.keys() if old.get(k) != cfg.get(k))
                raise ValueError(f"run {run_dir} already exists with a different config (top-level keys "
                                 f"differing: {diff}); choose a new run name instead of reusing it")
            if not resume:
                raise ValueError(f"run {run_dir} already exists; pass resume=True to continue it "
                                 "or choose a new run name")
            return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    write_json_atomic(run_dir / "versions.json", collect_versions())
    write_json_atomic(run_dir / "config.json", {"schema": CONFIG_SCHEMA, **cfg})  # last: marks a valid run
    return run_dir


def read_config(run_dir: Path | str) -> dict:
    """The run's config.json as a dict (with its ``schema`` key)."""
    return json.loads((Path(run_dir) / "config.json").read_text())


def find_run(kind: str, name: str, root: Path | str | None = None) -> Path | None:
    """The run directory of ``kind``/``name`` if it exists (has config.json), else None."""
    run_dir = run_dir_path(kind, name, root)
    return run_dir if (run_dir / "config.json").exists() else None


def list_runs(kind: str, root: Path | str | None = None, complete_only: bool = False) -> list[Path]:
    """All run directories of ``kind``, sorted by name; only finished ones if complete_only."""
    check_name("kind", kind)
    base = Path(OUTPUTS_DIR if root is None else root) / kind
    runs = sorted(p.parent for p in base.glob("*/config.json")) if base.exists() else []
    return [r for r in runs if is_complete(r)] if complete_only else runs


# ------------------------------------------------------------------------------ one process per run
def _holder(text: str) -> dict:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except json.JSONDecodeError:
        return {}


@contextmanager
def run_lock(run_dir: Path | str) -> Iterator[Path]:
    """Hold ``run_dir/LOCK`` (pid, host, start time) while working on the run, so a second
    process on it (two ``make run`` at once, a sweep cell started twice on a cluster) is refused
    with ``RunLocked`` naming the holder.

    The lock is an ``flock`` on the file, which the kernel drops when its holder dies however
    it dies, so a LOCK left by a dead process is stale and taken over (with one line saying
    so). On a shared filesystem (NFS) flock works across hosts."""
    path = Path(run_dir) / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            who = (f"pid {info.get('pid', '?')} on host {info.get('host', '?')} since {info.get('started', '?')}"
                   if info else "another process")
            raise RunLocked(f"run {run_dir} is in use by {who} ({path}): wait for it to finish or stop it, "
                            "or choose another run name") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:  # its holder removed it between our open and our flock
            same = False
        if same:
            break
        os.close(fd)
    stale = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    if stale:
        say(f"[run] took over the stale lock {path} of pid {stale.get('pid', '?')} on host "
            f"{stale.get('host', '?')} (that process is gone)")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)  # before the flock goes: a waiter then sees the path gone and retries
        os.close(fd)


def free_space(path: Path) -> str:
    """``"<n> MiB free there"`` for the filesystem ``path`` is (or would be) on, for a full-disk message."""
    try:
        where = path.parent if path.parent.exists() else Path(path.anchor)
        return f"{shutil.disk_usage(where).free / 2**20:.0f} MiB free there"
    except OSError:
        return "free space unknown"


def parse_jsonl(path: Path) -> tuple[list[dict], list[int]]:
    """(rows, numbers of the damaged lines): a line cut by a crash mid-write, or garbage (NUL
    bytes a filesystem left after a power loss) is not a JSON object."""
    rows, damaged = [], []
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            damaged.append(number)
    return rows, damaged


def check_metrics(run_dir: Path | str) -> str | None:
    """One line describing the damaged lines of ``metrics.jsonl`` (cut by a crash), or None when
    it is whole or absent. Resuming drops them (``metrics.MetricsLogger(resume_from_step=...)``)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    rows, damaged = parse_jsonl(path)
    if not damaged:
        return None
    shown = ", ".join(map(str, damaged[:5])) + (", ..." if len(damaged) > 5 else "")
    return (f"[resume] {path}: {len(damaged)} damaged line(s) (line {shown}; cut by a crash?) dropped, "
            f"{len(rows)} kept")


def read_metrics(run_dir: Path | str) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per log call; empty when nothing was logged)."""
    path = Path(run_dir) / "metrics.jsonl"
    return pd.DataFrame(parse_jsonl(path)[0]) if path.exists() else pd.DataFrame()


def save_checkpoint(run_dir: Path | str, iteration: int, state: dict, keep_last: int | None = None) -> Path:
    """torch.save ``state`` to checkpoints/iter_XXXXXX.pt atomically, then point ``latest`` at it.

    A crash at any moment leaves either the old or the new checkpoint readable, never a
    half-written one. A write that fails (disk full, unwritable ``outputs/``) removes its
    partial file, leaves ``latest`` on the previous checkpoint and raises ``RunError`` naming
    the path. keep_last: delete all but this many newest checkpoints.
    """
    ckpt_dir = Path(run_dir) / "checkpoints"
    path = ckpt_dir / f"iter_{int(iteration):06d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    latest_tmp = ckpt_dir / "latest.tmp"
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        import torch  # deferred: only a checkpoint needs torch (the commands check arguments first)

        torch.save(state, tmp)
        os.replace(tmp, path)
        latest_tmp.write_text(path.name + "\n")
        os.replace(latest_tmp, ckpt_dir / "latest")
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError of its zip writer
        raise RunError(_write_failure(path, exc, latest_checkpoint(run_dir))) from exc
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves no stray partial file
        latest_tmp.unlink(missing_ok=True)
    if keep_last is not None:
        for old in sorted(ckpt_dir.glob("iter_*.pt"))[:-max(keep_last, 1)]:
            old.unlink()
    return path


def _write_failure(path: Path, exc: BaseException, previous: Path | None) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:200]
    free = free_space(path)
    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    return (f"could not write checkpoint {path} ({reason}; {free}); {kept}: free disk space or make "
            f"{path.parent} writable, then rerun the same command to resume")


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    """The newest checkpoint: the one ``latest`` names, else the highest iter_*.pt, else None."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    pointer = ckpt_dir / "latest"
    if pointer.exists():
        named = ckpt_dir / pointer.read_text(errors="replace").strip()
        if named.name.startswith("iter_") and named.is_file():
            return named
    found = sorted(ckpt_dir.glob("iter_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: Path | str, map_location="cpu") -> dict:
    """Load a checkpoint written by save_checkpoint (our own files, so full unpickling is allowed:
    RNG states hold numpy arrays that ``weights_only=True`` refuses)."""
    import torch  # deferred: only a checkpoint needs torch (the commands check arguments first)

    return torch.load(path, map_location=map_location, weights_only=False)


def load_latest_checkpoint(run_dir: Path | str, report: Callable[[str], None] = say) -> tuple[Path, dict] | None:
    """(path, state) of the newest checkpoint that loads, or None when there is none.

    A checkpoint that does not load (cut by a crash or a full disk, zeroed by a filesystem) is
    renamed ``<name>.corrupt`` (kept for inspection, never picked again) with one line to
    ``report``, and the next older one is tried: the run falls back to its last good checkpoint."""
    while (path := latest_checkpoint(run_dir)) is not None:
        try:
            state = load_checkpoint(path)
            if not isinstance(state, dict) or "iteration" not in state:
                raise ValueError("not a training checkpoint (no 'iteration')")
            return path, state
        except Exception as exc:  # noqa: BLE001 - any failure to read it means it is unusable
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            older = latest_checkpoint(run_dir)
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
            report(f"[resume] checkpoint {path} is corrupted ({reason}); moved to {aside.name}, "
                   f"falling back to {older.name if older else 'the start of the run'}")
    return None


@dataclass
class RunResult:
    """What a finished (or resumed-to-the-end) run leaves behind: a training run and an SFT run alike."""

    run_dir: Path
    summary: dict  # also in run_dir/metrics.json
    metrics: pd.DataFrame  # run_dir/metrics.jsonl, one row per logged step

    @classmethod
    def read(cls, run_dir: Path | str) -> RunResult:
        """A complete run, as it lies on disk."""
        return cls(Path(run_dir), read_json(Path(run_dir) / "metrics.json"), read_metrics(run_dir))


def run_once(kind: str, name: str, config, work: Callable[[Path], RunResult],
             root: Path | str | None = None) -> RunResult:
    """The run ``kind``/``name`` of ``config``, done once: its directory created (or found, under
    the same config: ``create_run_dir``), read back when complete, else ``work(run_dir)`` under the
    run's lock (a second process is refused, ``RunLocked``); a run the lock's previous holder
    finished meanwhile is read back too."""
    run_dir = create_run_dir(kind, name, config, root=root, resume=True)
    if is_complete(run_dir):
        return RunResult.read(run_dir)
    with run_lock(run_dir):
        if is_complete(run_dir):
            return RunResult.read(run_dir)
        return work(run_dir)


def mark_complete(run_dir: Path | str, summary: dict) -> Path:
    """Write the final ``metrics.json`` summary, then the COMPLETE marker. Returns metrics.json."""
    run_dir = Path(run_dir)
    write_json_atomic(run_dir / "metrics.json", summary)
    (run_dir / COMPLETE_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    return run_dir / "metrics.json"


def is_complete(run_dir: Path | str) -> bool:
    """True once mark_complete() has run for this directory."""
    return (Path(run_dir) / COMPLETE_MARKER).exists()


def read_json(path: Path | str) -> dict:
    """A JSON file of a run directory (config.json, metrics.json, ...)."""
    return json.loads(Path(path).read_text())


def episodes_path(run_dir: Path | str, tag: str, init_set: str) -> Path:
    """Where a run keeps the per-episode table of its ``tag`` (before | after) evaluation of ``init_set``."""
    return Path(run_dir) / "eval" / f"{tag}_{init_set}.csv"


def read_episodes(run_dir: Path | str, tag: str, init_set: str) -> pd.DataFrame:
    """The per-episode table a run saved for ``{tag}_{init_set}`` (one row per init state: init_set,
    episode, state_key, success, length)."""
    return pd.read_csv(episodes_path(run_dir, tag, init_set))
