"""Keeps the study's finished runs in git, so that the analysis outlives the machine that ran it.

A run's records live under ``$TGRPO_OUTPUTS/train/<run>/``, which git ignores; a new machine starts
without them. ``save`` copies each finished study run's records (config, versions, metrics, the
per-episode evaluation tables: everything but its checkpoints) to ``results/runs/<run>/``;
``restore`` puts them back where the queue and collect.py look, so finished runs are skipped and
analysed as if they had run on this machine. The study's chosen weak start travels the same way.

The SFT starts travel too (``results/starts/<sft run>/``: the policy, a few MB, and its cached
greedy evaluations): SFT's weights depend on the CPU's kernels (docs/setup.md, "Across machines"),
so a start retrained on another machine would be another start, and a regime's runs must share one.

A run cut by a session's end travels as well (``results/in_flight/<run>/``: its records and latest
checkpoint, under a megabyte), so a new machine resumes it instead of starting it over; it leaves
the archive once the run has finished.

    python experiments/dense_vs_sparse/archive.py save       # after a run lands, before committing
    python experiments/dense_vs_sparse/archive.py restore    # on a new machine (queue.sh does it)
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import study  # noqa: E402
from tgrpo_lib import runs  # noqa: E402
from tgrpo_lib.config import run_name  # noqa: E402

ARCHIVE = HERE / "results" / "runs"
STARTS = HERE / "results" / "starts"
IN_FLIGHT = HERE / "results" / "in_flight"
WEAK_START = HERE / "results" / "weak_start.json"
SKIP_DIRS = {"checkpoints"}
SKIP_SUFFIXES = (".mp4",)  # videos
SKIP_NAMES = ("LOCK", "events.out.tfevents")  # a live run's lock; TensorBoard's copy of metrics.jsonl
MAX_FILE_BYTES = 20_000_000
"""A run's record larger than this is left out (and named): the archive is for what the analysis
reads. A start's file larger than this stops ``save``: a start without its weights is no start."""


def study_run_names() -> list[str]:
    """The registered runs' names (those whose start is known: the weak ones need weak_start.json)."""
    names = []
    for regime, arm, seed in study.queue():
        name, _ = study.status(regime, arm, seed)
        if not name.startswith("("):
            names.append(name)
    return names


def start_names() -> list[str]:
    """The SFT runs the study's regimes start from (the weak one once it is chosen)."""
    names = []
    for regime in study.STARTS:
        try:
            names.append(run_name(study.sft_config(regime)))
        except SystemExit:  # the weak start is not chosen yet
            pass
    return names


def records(run_dir: Path, skip_dirs=SKIP_DIRS) -> list[Path]:
    """A run's files, relative to it, without ``skip_dirs`` (a train run's checkpoints), videos,
    locks and TensorBoard files."""
    out = []
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if (p.is_file() and not (set(rel.parts[:-1]) & set(skip_dirs)) and not p.name.endswith(SKIP_SUFFIXES)
                and not p.name.startswith(SKIP_NAMES)):
            out.append(rel)
    return out


def sync_start(src: Path, dst: Path, overwrite: bool = True) -> int:
    """Copy a finished start's files to dst where missing, or (``overwrite``) different: its
    evaluation cache grows as runs evaluate it. Returns how many were copied."""
    copied = 0
    for rel in records(src, skip_dirs=()):
        if (src / rel).stat().st_size > MAX_FILE_BYTES:
            sys.exit(f"{src / rel} is over {MAX_FILE_BYTES / 1e6:.0f} MB: the archive keeps small starts only "
                     "(raise archive.MAX_FILE_BYTES if it must travel in git).")
        if (dst / rel).is_file() and (not overwrite or filecmp.cmp(src / rel, dst / rel, shallow=False)):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel.with_name(rel.name + ".partial"))
        os.replace(dst / rel.with_name(rel.name + ".partial"), dst / rel)
        copied += 1
    return copied


def copy_tree(src: Path, dst: Path, files: list[Path]) -> list[str]:
    """Copy ``files`` from src to dst (a fresh dst); returns the ones left out for their size."""
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    left_out = []
    for rel in files:
        if (src / rel).stat().st_size > MAX_FILE_BYTES:
            left_out.append(f"{rel} ({(src / rel).stat().st_size / 1e6:.1f} MB)")
            continue
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, tmp / rel)
    tmp.rename(dst)
    return left_out


def copy_in_flight(src: Path, dst: Path) -> str | None:
    """A started run's records and its latest checkpoint to a fresh dst (the checkpoint first, so the
    log copied after it reaches at least as far: a resume cuts the log back to the checkpoint).
    Returns the checkpoint's name, or None when it has none yet (nothing is copied then)."""
    for _ in range(3):  # the run may replace its checkpoint meanwhile
        ckpt = runs.latest_checkpoint(src)
        if ckpt is None:
            return None
        tmp = dst.with_name(dst.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "checkpoints").mkdir(parents=True)
        try:
            shutil.copy2(ckpt, tmp / "checkpoints" / ckpt.name)
        except FileNotFoundError:
            continue
        (tmp / "checkpoints" / "latest").write_text(ckpt.name + "\n")
        left_out = copy_tree(src, tmp / "records", records(src))
        for p in (tmp / "records").iterdir():
            p.rename(tmp / p.name)
        (tmp / "records").rmdir()
        if left_out:
            sys.exit(f"{src}: {', '.join(left_out)} over {MAX_FILE_BYTES / 1e6:.0f} MB; a resumed run needs its records.")
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
        return ckpt.name
    sys.exit(f"{src}: its checkpoint kept changing while it was copied; run `archive.py save` again.")


def save() -> None:
    if study.STUDY_DIR.joinpath("weak_start.json").is_file() and not WEAK_START.is_file():
        shutil.copy2(study.STUDY_DIR / "weak_start.json", WEAK_START)
    saved = 0
    for name in study_run_names():
        src, dst = runs.run_dir_path("train", name), ARCHIVE / name
        if src.is_dir() and not runs.is_complete(src):
            if ckpt := copy_in_flight(src, IN_FLIGHT / name):
                print(f"[archive] in flight: {name} at {ckpt}")
            continue
        if not runs.is_complete(src) or dst.exists():
            continue
        left_out = copy_tree(src, dst, records(src))
        shutil.rmtree(IN_FLIGHT / name, ignore_errors=True)  # finished: its cut copy is history
        saved += 1
        print(f"[archive] saved {name}" + (f"; left out: {', '.join(left_out)}" if left_out else ""))
    for name in start_names():
        src = runs.run_dir_path("sft", name)
        if runs.is_complete(src) and (n := sync_start(src, STARTS / name)):
            print(f"[archive] start {name}: {n} file(s) saved")
    print(f"[archive] {saved} run(s) saved; {len(list(ARCHIVE.glob('*')))} in {ARCHIVE}")


def restore() -> None:
    """Starts first (a conflicting one stops it before anything is copied), then the runs."""
    for src in sorted(STARTS.glob("*")) if STARTS.is_dir() else []:
        dst = runs.run_dir_path("sft", src.name)
        if runs.is_complete(dst):
            differs = [str(rel) for rel in records(src / "checkpoints" / "policy", skip_dirs=())
                       if not filecmp.cmp(src / "checkpoints" / "policy" / rel, dst / "checkpoints" / "policy" / rel,
                                          shallow=False)]
            if differs:
                sys.exit(f"{dst} holds other weights than the archived start ({', '.join(differs)}): it was trained "
                         "on this machine; move it aside so the study's runs keep the start they began with.")
        elif dst.exists():
            sys.exit(f"{dst} is an unfinished SFT run of the archived start's name: move it aside.")
    archived = sorted(ARCHIVE.glob("*")) if ARCHIVE.is_dir() else []
    for src in archived:
        dst = runs.run_dir_path("train", src.name)
        if not (src / runs.COMPLETE_MARKER).is_file():
            sys.exit(f"{src} has no {runs.COMPLETE_MARKER} marker: only finished runs are archived; remove it.")
        if dst.exists() and not runs.is_complete(dst):
            sys.exit(f"{dst} is an unfinished run of a name the archive holds finished: move it aside.")
    if WEAK_START.is_file() and not (study.STUDY_DIR / "weak_start.json").is_file():
        study.STUDY_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy2(WEAK_START, study.STUDY_DIR / "weak_start.json")
    for src in sorted(STARTS.glob("*")) if STARTS.is_dir() else []:
        if n := sync_start(src, runs.run_dir_path("sft", src.name), overwrite=False):  # the start, or evaluations it lacks
            print(f"[archive] start {src.name}: {n} file(s) restored")
    restored = 0
    for src in archived:
        dst = runs.run_dir_path("train", src.name)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            copy_tree(src, dst, records(src))
            restored += 1
    for src in sorted(IN_FLIGHT.glob("*")) if IN_FLIGHT.is_dir() else []:
        dst = runs.run_dir_path("train", src.name)
        if not dst.exists() and not (ARCHIVE / src.name).exists():  # else this machine's copy is further on
            dst.parent.mkdir(parents=True, exist_ok=True)
            copy_tree(src, dst, records(src, skip_dirs=()))
            restored += 1
            print(f"[archive] in flight: {src.name} restored, resumes from {(src / 'checkpoints' / 'latest').read_text().strip()}")
    print(f"[archive] {restored} run(s) restored to {runs.run_dir_path('train', 'x').parent}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("save", "restore"))
    a = ap.parse_args(argv)
    save() if a.command == "save" else restore()


if __name__ == "__main__":
    main()
