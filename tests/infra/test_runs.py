"""Run directories, checkpoints, completion markers, the run lock and RNG state for exact resume
(metrics.jsonl and its TensorBoard events: test_metrics.py)."""
import dataclasses
import json
import os
import random

import numpy as np
import pytest
import torch

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.infra import provenance, runs
from tgrpo_lib.infra.runs import (create_run_dir, find_run, is_complete, latest_checkpoint, list_runs,
                                  load_checkpoint, mark_complete, read_config, save_checkpoint)
from tgrpo_lib.infra.seeding import rng_state, seed_everything, set_rng_state


@dataclasses.dataclass(frozen=True)
class _Inner:
    alpha1: float = 0.3
    alpha2: float = 0.7


@dataclasses.dataclass(frozen=True)
class _Cfg:
    task: str = "libero_object_t0"
    seed: int = 1
    group_size: int = 4
    inner: _Inner = _Inner()
    horizons: tuple = (220, 280)


def test_create_run_dir_writes_config_and_versions(tmp_path):
    run_dir = create_run_dir("train", "a__b__1__x", _Cfg(), root=tmp_path)
    assert run_dir == tmp_path / "train" / "a__b__1__x"
    cfg = read_config(run_dir)
    assert cfg["inner"] == {"alpha1": 0.3, "alpha2": 0.7} and cfg["horizons"] == [220, 280]
    versions = json.loads((run_dir / "versions.json").read_text())
    assert versions["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert versions["packages"]["numpy"] == np.__version__
    assert set(provenance.TRACKED_PACKAGES) <= set(versions["packages"]) and versions["python"]
    assert (run_dir / "checkpoints").is_dir()


def test_existing_run_is_never_overwritten(tmp_path):
    run_dir = create_run_dir("train", "r1", _Cfg(), root=tmp_path)
    (run_dir / "metrics.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(ValueError, match="resume=True"):
        create_run_dir("train", "r1", _Cfg(), root=tmp_path)
    with pytest.raises(ValueError, match="different config.*'seed'"):
        create_run_dir("train", "r1", _Cfg(seed=2), root=tmp_path, resume=True)
    # the same config as a dict (as it reads back from disk) resumes the same directory untouched
    again = create_run_dir("train", "r1", dataclasses.asdict(_Cfg()), root=tmp_path, resume=True)
    assert again == run_dir
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 0}\n'
    assert read_config(run_dir)["seed"] == 1


def test_resume_of_a_missing_run_creates_it(tmp_path):
    run_dir = create_run_dir("train", "fresh", {"lr": 1e-4}, root=tmp_path, resume=True)
    assert read_config(run_dir) == {"lr": 1e-4, "schema": CONFIG_SCHEMA}


@pytest.mark.parametrize("kind,name", [("train", "a/b"), ("train", ""), ("../x", "r"), ("train", "has space")])
def test_bad_names_raise(tmp_path, kind, name):
    with pytest.raises(ValueError, match="not a valid directory name"):
        create_run_dir(kind, name, {}, root=tmp_path)


def test_find_and_list_runs(tmp_path):
    a = create_run_dir("sweep", "a", {}, root=tmp_path)
    b = create_run_dir("sweep", "b", {}, root=tmp_path)
    assert find_run("sweep", "a", root=tmp_path) == a
    assert find_run("sweep", "zzz", root=tmp_path) is None
    assert list_runs("sweep", root=tmp_path) == [a, b]
    mark_complete(b, {"charts/success_rate": 0.8})
    assert list_runs("sweep", root=tmp_path, complete_only=True) == [b]
    assert list_runs("nothing_here", root=tmp_path) == []


def test_checkpoints_are_atomic_and_latest_points_to_newest(tmp_path, monkeypatch):
    assert latest_checkpoint(tmp_path) is None
    p1 = save_checkpoint(tmp_path, 1, {"w": torch.ones(2), "iteration": 1})
    p2 = save_checkpoint(tmp_path, 2, {"w": torch.full((2,), 2.0), "iteration": 2})
    assert p2.name == "iter_000002.pt" and latest_checkpoint(tmp_path) == p2
    assert load_checkpoint(p1)["iteration"] == 1

    def torn_save(obj, path):  # a crash while writing iteration 3
        open(path, "wb").write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr("torch.save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 3, {"iteration": 3})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == p2
    torch.testing.assert_close(load_checkpoint(latest_checkpoint(tmp_path))["w"], torch.full((2,), 2.0))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if "000003" in p.name] == []


def test_latest_falls_back_to_highest_iteration_and_keep_last(tmp_path):
    for it in (5, 10, 15):
        save_checkpoint(tmp_path, it, {"it": it}, keep_last=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("iter_*.pt")) == \
        ["iter_000010.pt", "iter_000015.pt"]
    (tmp_path / "checkpoints" / "latest").unlink()
    assert latest_checkpoint(tmp_path).name == "iter_000015.pt"


def test_mark_complete(tmp_path):
    assert not is_complete(tmp_path)
    path = mark_complete(tmp_path, {"charts/success_rate": 0.9, "n_episodes": 50})
    assert is_complete(tmp_path)
    assert json.loads(path.read_text()) == {"charts/success_rate": 0.9, "n_episodes": 50}


def _draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_seed_everything_is_reproducible():
    seed_everything(7)
    a = _draws()
    seed_everything(7)
    assert _draws() == a
    seed_everything(8)
    assert _draws() != a


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    seed_everything(0)
    _draws()
    save_checkpoint(tmp_path, 1, {"rng": rng_state()})
    expected = _draws()
    seed_everything(123)  # the process moves on / restarts
    set_rng_state(load_checkpoint(latest_checkpoint(tmp_path))["rng"])
    assert _draws() == expected


def test_bad_seed_and_state_raise():
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(-1)
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(1.5)
    with pytest.raises(ValueError, match="rng_state"):
        set_rng_state({"python": random.getstate()})


# ------------------------------------------------------------------------------ faults
def test_a_second_process_on_a_run_is_refused_naming_the_holder(tmp_path):
    import socket
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from tgrpo_lib.infra.runs import run_lock\n"
        "with run_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runs.RunLocked) as err:
            with runs.run_lock(tmp_path):
                pass
        msg = str(err.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg and str(tmp_path / "LOCK") in msg
        assert "\n" not in msg
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its LOCK is stale and taken over
    assert json.loads((tmp_path / "LOCK").read_text())["pid"] == holder.pid
    with runs.run_lock(tmp_path):
        assert json.loads((tmp_path / "LOCK").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "LOCK").exists()


def test_a_stale_lock_is_taken_over_with_one_line(tmp_path, capsys):
    (tmp_path / "LOCK").write_text(json.dumps({"pid": 999999999, "host": "gone", "started": "then"}))
    with runs.run_lock(tmp_path):
        with pytest.raises(runs.RunLocked, match=f"pid {os.getpid()}"):  # and now it is ours
            with runs.run_lock(tmp_path):
                pass
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stale lock" in err[0] and "999999999" in err[0]


def test_a_full_disk_keeps_the_previous_checkpoint_and_names_the_path(tmp_path):
    p1 = save_checkpoint(tmp_path, 1, {"w": torch.ones(2), "iteration": 1})
    tmp = tmp_path / "checkpoints" / "iter_000002.pt.tmp"
    tmp.symlink_to("/dev/full")  # every write there fails with ENOSPC, like a full disk
    with pytest.raises(runs.RunError) as err:
        save_checkpoint(tmp_path, 2, {"w": torch.full((100_000,), 2.0), "iteration": 2})
    msg = str(err.value)
    assert str(tmp_path / "checkpoints" / "iter_000002.pt") in msg and f"{p1} is intact" in msg and "\n" not in msg
    assert latest_checkpoint(tmp_path) == p1 and load_checkpoint(p1)["iteration"] == 1
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter_000001.pt", "latest"]


def test_an_unwritable_checkpoint_dir_is_named(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"iteration": 1})

    def refuse(obj, path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr("torch.save", refuse)
    with pytest.raises(runs.RunError, match=r"iter_000002\.pt \(Permission denied; .* MiB free there\); the previous"):
        save_checkpoint(tmp_path, 2, {"iteration": 2})
    assert latest_checkpoint(tmp_path).name == "iter_000001.pt"


def test_a_corrupted_checkpoint_falls_back_to_the_last_good_one(tmp_path):
    assert runs.load_latest_checkpoint(tmp_path) is None
    for it in (1, 2, 3):
        save_checkpoint(tmp_path, it, {"iteration": it, "w": torch.full((1000,), float(it))})
    ckpts = tmp_path / "checkpoints"
    data = (ckpts / "iter_000003.pt").read_bytes()
    (ckpts / "iter_000003.pt").write_bytes(data[:len(data) // 2])  # cut by a crash
    (ckpts / "iter_000002.pt").write_bytes(b"")  # zeroed
    lines = []
    path, state = runs.load_latest_checkpoint(tmp_path, report=lines.append)
    assert path.name == "iter_000001.pt" and state["iteration"] == 1
    assert len(lines) == 2 and "iter_000003.pt is corrupted" in lines[0] and "falling back to iter_000002.pt" in lines[0]
    assert "falling back to iter_000001.pt" in lines[1]
    assert sorted(p.name for p in ckpts.glob("*.corrupt")) == ["iter_000002.pt.corrupt", "iter_000003.pt.corrupt"]
    assert runs.load_latest_checkpoint(tmp_path, report=lines.append)[0] == path and len(lines) == 2


def test_versions_record_the_cpus_instruction_sets(monkeypatch):
    from tgrpo_lib.infra.provenance import cpu_info

    text = ("processor\t: 0\nmodel name\t: Example Xeon\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n"
            "processor\t: 1\nmodel name\t: Example Xeon\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert cpu_info(text) == {"model": "Example Xeon", "features": ["avx2", "avx512f", "avx512_bf16", "amx_tile"],
                              "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "ATEN_CPU_CAPABILITY": None}
    assert cpu_info("")["features"] == []
