"""Scripted expert: control helpers, key-pose extraction, success table, the package's import graph,
and real episodes per suite."""
import ast
import graphlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tgrpo_lib.expert import (ExpertConfig, ScriptedExpert, SceneGeometry, aggregate_key_poses, expert_success_table,
                              extract_key_events, load_key_poses, save_key_poses)
from tgrpo_lib.expert.control import R_DOWN, gripper_yaw, wrap_finger_yaw
from tgrpo_lib.expert.geometry import axis_rot, quat_to_mat, rot_to_axis_angle, rot_z


def test_rotation_helpers():
    np.testing.assert_allclose(rot_to_axis_angle(rot_z(0.3)), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(rot_to_axis_angle(np.eye(3)), [0, 0, 0], atol=1e-12)
    # half turns: the near-pi branch must keep the axis' relative signs, e.g. about (1, -1, 0)/sqrt(2)
    n = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
    aa = rot_to_axis_angle(2 * np.outer(n, n) - np.eye(3))
    assert np.allclose(aa, np.pi * n, atol=1e-6) or np.allclose(aa, -np.pi * n, atol=1e-6)
    # the Panda home orientation (xyzw -0.707, -0.707, 0, 0) is "pointing down, fingers along y": yaw 0
    np.testing.assert_allclose(quat_to_mat([-0.7071068, -0.7071068, 0, 0]), R_DOWN, atol=1e-6)
    assert abs(gripper_yaw([-0.7071068, -0.7071068, 0, 0])) < 1e-6
    # the finger axis is symmetric under a half turn: pick the copy nearest the current yaw
    assert wrap_finger_yaw(np.pi - 0.1, 0.0) == pytest.approx(-0.1)
    assert wrap_finger_yaw(0.2, 3.0) == pytest.approx(0.2)  # 0.2 + pi is nearer but beyond the wrist range


def _state(eef, quat=(-0.7071068, -0.7071068, 0, 0)):
    return {"eef_pos": np.asarray(eef, float), "eef_quat": np.asarray(quat, float), "gripper_qpos": np.array([0.04, -0.04])}


def test_servo_is_a_clipped_p_controller():
    ex = ScriptedExpert([["in", "a", "b"]], SceneGeometry(), ExpertConfig(gain=20.0))
    ex.s = _state([0.0, 0.0, 1.0])
    a = ex.servo(np.array([0.01, -0.5, 1.0]), grip=1.0)
    np.testing.assert_allclose(a[:3], [0.2, -1.0, 0.0], atol=1e-9)  # 20 * 0.01; -10 clipped to -1
    np.testing.assert_allclose(a[3:6], 0.0, atol=1e-6)  # already pointing down at yaw 0
    assert a[6] == 1.0
    ex.yaw = 0.2  # a yaw target turns the wrist about +z only
    a = ex.servo(np.array([0.0, 0.0, 1.0]), grip=-1.0)
    assert a[5] > 0 and abs(a[3]) < 1e-6 and abs(a[4]) < 1e-6


def test_expert_act_requires_reset():
    ex = ScriptedExpert([["in", "a", "b"]], SceneGeometry())
    with pytest.raises(ValueError, match="reset"):
        ex.act(_state([0, 0, 1]))


def _trajectory():
    """Hand-built: a failed grasp (t=1..2), a real one at t=4 (object rises), release at t=8,
    and a drawer joint crossing its Open threshold at t=10."""
    T = 12
    actions = np.zeros((T, 7))
    actions[:, 6] = -1
    actions[1:3, 6] = 1
    actions[4:8, 6] = 1
    eef = np.stack([np.array([0.01 * t, 0.0, 1.0]) for t in range(T + 1)])
    obj = np.tile([0.04, 0.0, 0.9], (T + 1, 1))
    obj[5:9, 2] = [0.95, 1.0, 1.0, 0.93]  # lifted while closed, set down at 0.93
    other = np.tile([1.0, 1.0, 0.9], (T + 1, 1))
    q = np.zeros((T + 1, 1))
    q[10:] = -0.15
    states = {"eef_pos": eef, "pos/bowl_1": obj, "quat/bowl_1": np.tile([0, 0, 0, 1.0], (T + 1, 1)),
              "pos/plate_1": other, "quat/plate_1": np.tile([0, 0, 0, 1.0], (T + 1, 1)),
              "joint/wooden_cabinet_1_top_level": q}
    goal = [["on", "bowl_1", "plate_1"], ["open", "wooden_cabinet_1_top_region"]]
    return actions, states, goal


def test_key_events_on_a_hand_built_trajectory():
    actions, states, goal = _trajectory()
    events = extract_key_events(actions, states, goal)
    assert [e["label"] for e in events] == ["grasp:bowl_1", "release:bowl_1", "open:wooden_cabinet_1_top_region"]
    assert [e["step"] for e in events] == [4, 8, 10]
    np.testing.assert_allclose(events[0]["xyz"], [0.04, 0.0, 1.0])
    np.testing.assert_allclose(events[1]["xyz"], [0.08, 0.0, 1.0])


def test_success_while_holding_adds_the_release_at_the_last_step():
    actions, states, goal = _trajectory()
    actions = actions[:7]  # success came while still closed
    states = {k: v[:8] for k, v in states.items()}
    events = extract_key_events(actions, states, goal[:1], success=True)
    assert [(e["label"], e["step"]) for e in events] == [("grasp:bowl_1", 4), ("release:bowl_1", 6)]


def test_aggregate_takes_the_modal_sequence_and_averages(tmp_path):
    a = [{"label": "grasp:x", "xyz": [0.0, 0.0, 1.0]}, {"label": "release:x", "xyz": [1.0, 0.0, 1.0]}]
    b = [{"label": "grasp:x", "xyz": [0.2, 0.0, 1.0]}, {"label": "release:x", "xyz": [1.0, 0.4, 1.0]}]
    odd = [{"label": "grasp:y", "xyz": [9.0, 9.0, 9.0]}]
    poses, used = aggregate_key_poses([a, b, odd, []])
    assert used == 2 and [p["label"] for p in poses] == ["grasp:x", "release:x"]
    np.testing.assert_allclose(poses[0]["xyz"], [0.1, 0.0, 1.0])
    np.testing.assert_allclose(poses[1]["xyz"], [1.0, 0.2, 1.0])
    save_key_poses(tmp_path / "libero_goal" / "task_2" / "key_poses.json", "libero_goal", 2, poses, used)
    assert load_key_poses("goal", 2, root=tmp_path) == poses
    assert load_key_poses("goal", 3, root=tmp_path) is None


def test_key_poses_of_the_first_demos_only(tmp_path):
    def demo(x):
        return [{"label": "grasp:x", "step": 5, "xyz": [x, 0.0, 1.0]}, {"label": "release:x", "step": 9, "xyz": [1.0, x, 1.0]}]

    per_demo = [demo(0.0), demo(0.2), [], demo(0.9)]  # the third recorded no event
    poses, used = aggregate_key_poses(per_demo)
    path = save_key_poses(tmp_path / "libero_object" / "task_0" / "key_poses.json", "libero_object", 0, poses, used,
                          per_demo=per_demo)
    assert json.loads(path.read_text())["per_demo"] == per_demo
    assert load_key_poses("object", 0, root=tmp_path) == poses  # every demo
    np.testing.assert_allclose(load_key_poses("object", 0, root=tmp_path, num_demos=2)[0]["xyz"], [0.1, 0.0, 1.0])
    np.testing.assert_allclose(load_key_poses("object", 0, root=tmp_path, num_demos=3)[1]["xyz"], [1.0, 0.1, 1.0])
    assert load_key_poses("object", 0, root=tmp_path, num_demos=99) == poses  # fewer recorded: all of them
    assert load_key_poses("object", 0, root=tmp_path, num_demos=2)[0]["count"] == 2
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_demos"):
            load_key_poses("object", 0, root=tmp_path, num_demos=bad)
    with pytest.raises(ValueError, match="num_demos"):  # refused before any file is looked for
        load_key_poses("object", 7, root=tmp_path, num_demos=0)


def test_key_poses_file_without_per_demo_events_gives_its_aggregate(tmp_path):
    poses = [{"label": "grasp:x", "xyz": [0.3, 0.0, 1.0], "std": [0, 0, 0], "count": 200}]
    save_key_poses(tmp_path / "libero_object" / "task_0" / "key_poses.json", "libero_object", 0, poses, 200)
    assert "per_demo" not in json.loads((tmp_path / "libero_object" / "task_0" / "key_poses.json").read_text())
    assert load_key_poses("object", 0, root=tmp_path, num_demos=175) == poses


def test_success_table_from_episode_rows(tmp_path):
    rows = pd.DataFrame({"suite": ["libero_object"] * 3 + ["libero_goal"] * 2, "task_id": [0, 0, 0, 7, 7],
                         "success": [True, False, True, True, True], "steps": [100, 280, 120, 90, 110]})
    table = expert_success_table(rows, save_to=tmp_path)
    row = table.set_index(["suite", "task_id"]).loc[("libero_object", 0)]
    assert row["episodes"] == 3 and row["successes"] == 2 and row["success_rate"] == pytest.approx(0.667)
    assert (row["ci_low"], row["ci_high"]) == (0.208, 0.939)  # Wilson 95 % of 2 / 3, worked by hand
    assert row["mean_steps"] == pytest.approx(166.7)
    assert (tmp_path / "success_table.csv").exists()


# ------------------------------------------------------------------ the package's import graph
EXPERT_DIR = Path(__file__).resolve().parents[2] / "tgrpo_lib" / "expert"


def _package_imports(folder: Path, package: str) -> list[tuple[str, str, str | None, str, int]]:
    """(module, sibling, imported name or None, local name, line) for every import of one module
    of ``package`` (the .py files in ``folder``) by another: relative or absolute, top level or in a function."""
    modules = {f.stem for f in folder.glob("*.py")}
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [(a.name[len(package):], None, a.asname or a.name) for a in node.names
                           if a.name.startswith(package + ".")]
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [("." + (node.module or ""), a.name, a.asname or a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and f"{node.module}.".startswith(package + "."):
                targets = [(node.module[len(package):], a.name, a.asname or a.name) for a in node.names]
            else:
                continue
            for dotted, name, local in targets:
                sibling = dotted.lstrip(".").split(".")[0]
                if not sibling:  # `from . import x`: x is a sibling module, or a name defined in __init__
                    sibling, name = (name, None) if name in modules else ("__init__", name)
                found.append((path.stem, sibling, name, local, node.lineno))
    return found


def _import_cycle(imports) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for module, sibling, *_ in imports:
        graph.setdefault(module, set())
        if sibling != module:
            graph[module].add(sibling)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return err.args[1]
    return None


def _private_crossings(folder: Path, imports) -> list[str]:
    """``_names`` imported from a sibling, or read off a sibling module (``articulated._handle``)."""
    bad = [f"{m}:{line} imports {s}.{n}" for m, s, n, _, line in imports if n is not None and n.startswith("_")
           and not n.startswith("__")]
    for module in {m for m, *_ in imports}:
        aliases = {local for m, _, n, local, _ in imports if m == module and n is None}
        tree = ast.parse((folder / f"{module}.py").read_text())
        bad += [f"{module}:{node.lineno} reads {node.value.id}.{node.attr}" for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")]
    return bad


def test_import_checks_catch_a_cycle_and_a_private_name(tmp_path):
    (tmp_path / "a.py").write_text("from .b import helper\n")
    # a deferred import still closes a cycle
    (tmp_path / "b.py").write_text("def helper():\n    from . import a\n    return a._secret\n")
    (tmp_path / "c.py").write_text("from pkg.a import _private\n")
    imports = _package_imports(tmp_path, "pkg")
    assert sorted(_import_cycle(imports)[:-1]) == ["a", "b"]
    assert sorted(_private_crossings(tmp_path, imports)) == ["b:3 reads a._secret", "c:1 imports a._private"]
    assert _import_cycle([i for i in imports if i[0] != "b"]) is None


def test_expert_modules_import_each_other_as_a_dag_of_public_names():
    imports = _package_imports(EXPERT_DIR, "tgrpo_lib.expert")
    assert _import_cycle(imports) is None
    # the layering: geometry <- control <- articulated <- planner <- core <- rollout <- runner
    edges = {(m, s) for m, s, *_ in imports}
    assert {("control", "geometry"), ("articulated", "control"), ("planner", "articulated"), ("core", "planner"),
            ("rollout", "core"), ("runner", "rollout")} <= edges
    assert _private_crossings(EXPERT_DIR, imports) == []


def test_expert_defers_no_import_of_the_package_without_saying_why():
    """An import of a tgrpo_lib module inside a function is kept only for start-up time, and says so."""
    for path in sorted(EXPERT_DIR.glob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for f in ast.walk(ast.parse(text)):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(f):
                ours = (isinstance(node, ast.ImportFrom) and (node.level > 0 or f"{node.module}".startswith("tgrpo_lib"))
                        or isinstance(node, ast.Import) and any(a.name.startswith("tgrpo_lib") for a in node.names))
                assert not ours or "#" in lines[node.lineno - 1], f"{path.name}:{node.lineno}: deferred, without a why"


# one quick task per suite, from init state 0, physics only
SIM_CASES = [("libero_object", 0), ("libero_spatial", 0), ("libero_goal", 7), ("libero_10", 0)]


@pytest.mark.sim
@pytest.mark.parametrize("suite,task_id", SIM_CASES)
def test_expert_solves_one_task_per_suite(suite, task_id, tmp_path):
    from tgrpo_lib.expert import run_task

    run = run_task(suite, task_id, episodes=1, out=tmp_path, progress=False)
    assert run.results["success"].tolist() == [True]
    assert run.results["steps"].iloc[0] < {"libero_object": 280, "libero_spatial": 220, "libero_goal": 300,
                                           "libero_10": 520}[suite]
    poses = load_key_poses(suite, task_id, root=tmp_path)
    assert poses and poses[0]["label"].startswith(("grasp:", "turnon:"))
    # the one demo's own events are stored too, and averaging the first one gives the same poses
    assert len(json.loads((tmp_path / suite / f"task_{task_id}" / "key_poses.json").read_text())["per_demo"]) == 1
    np.testing.assert_allclose([p["xyz"] for p in load_key_poses(suite, task_id, root=tmp_path, num_demos=1)],
                               [p["xyz"] for p in poses], atol=1e-4)


def test_axis_rot_leans_the_down_pointing_fingers_into_a_push():
    # about +x by 0.6 rad, straight down (0, 0, -1) turns toward +y: (0, sin 0.6, -cos 0.6) = (0, 0.5646, -0.8253)
    np.testing.assert_allclose(axis_rot(np.array([2.0, 0, 0]), 0.6) @ [0, 0, -1.0], [0, 0.5646, -0.8253], atol=1e-4)
    rot = axis_rot(np.array([1.0, 1.0, 0.0]), 0.3)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rot_to_axis_angle(rot), 0.3 * np.array([1, 1, 0]) / np.sqrt(2), atol=1e-9)


# drawer tasks: goal 3 must move the bowl out from under the drawer it opens; libero_10 task 3 must
# lower the bowl clear of the cabinet front and push the drawer home past q = 0
@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("suite,task_id", [("libero_goal", 3), ("libero_10", 3)])
def test_expert_solves_the_drawer_tasks(suite, task_id):
    from tgrpo_lib.expert import run_task

    run = run_task(suite, task_id, episodes=1, progress=False)
    assert run.results["success"].tolist() == [True]


@pytest.mark.sim
def test_expert_episodes_do_not_depend_on_the_number_of_workers():
    from tgrpo_lib.expert import run_task

    one = run_task("libero_object", 0, episodes=2, seed=1, progress=False, workers=1).results
    two = run_task("libero_object", 0, episodes=2, seed=1, progress=False, workers=2).results
    cols = ["init_index", "seed", "success", "steps"]
    assert one[cols].to_dict("records") == two[cols].to_dict("records")
    assert two["init_index"].tolist() == [0, 1]


@pytest.mark.sim
def test_recorded_demos_label_the_intended_action_on_sampled_layouts(tmp_path):
    from tgrpo_lib.envs.init_states import heldout_seeds, training_layout_seeds
    from tgrpo_lib.expert import run_task
    from tgrpo_lib.expert.runner import DEMO_EXPERT_CONFIG
    from tgrpo_lib.infra.demos import load_demos

    assert not set(training_layout_seeds(0, 1000)) & set(heldout_seeds(0, 1000))  # never an evaluation scene
    run = run_task("libero_object", 0, episodes=2, record=True, init_states="sampled", out=tmp_path,
                   progress=False, workers=1)
    assert run.results["init_index"].tolist() == [-1, -1]
    assert run.results["layout_seed"].tolist() == training_layout_seeds(0, 2).tolist()
    demos = load_demos(tmp_path / "libero_object" / "task_0" / "demos.h5")
    assert [d.layout for d in demos] == ["sampled", "sampled"]
    start = [np.concatenate([d.states[k][0] for k in sorted(d.states) if k.startswith("pos/")]) for d in demos]
    assert np.abs(start[0] - start[1]).max() > 1e-3  # two scenes (libero_object moves its objects by ~cm)
    # labels are the intended actions; the executed ones carry the configured noise
    from tgrpo_lib.envs import EnvConfig, make_env
    from tgrpo_lib.expert.rollout import run_episode

    env = make_env("libero_object", 0, EnvConfig(cameras=()))
    try:
        ep = run_episode(env, env.sample_layout(seed=int(training_layout_seeds(0, 1)[0])), seed=3,
                         cfg=DEMO_EXPERT_CONFIG, max_steps=40)
    finally:
        env.close()
    noise = (ep.actions - ep.intended)[:, :6]
    assert 0.02 < noise[np.abs(ep.intended[:, :6]) < 0.9].std() < 0.04  # the configured 0.03, where not clipped
    np.testing.assert_array_equal(ep.actions[:, 6], ep.intended[:, 6])  # the gripper is never noised


@pytest.mark.parametrize("argv, message", [
    (["--suite", "kitchen"], "Unknown suite 'kitchen'"),
    (["--suite", "object", "--task", "12"], "Task id 12 is out of range for libero_object: pass 0..9."),
    (["--suite", "object", "--task", "x"], "--task 'x': pass an id"),
    (["--suite", "libero_object_lan"], "libero_object_lan is for evaluation only"),
    (["--suite", "object", "--episodes", "0"], "--episodes 0: pass at least 1."),
])
def test_expert_cli_refuses_bad_input_in_one_line(argv, message, capsys):
    from tgrpo_lib.expert.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and message in err[-1] and err[-1].startswith("python -m tgrpo_lib expert: error:")
    assert not any("Traceback" in line for line in err)


ORPHAN_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import os, time; from tgrpo_lib.expert.runner import exit_with_parent; "
                          "exit_with_parent(os.getppid(), poll_s=0.1); print('watching', flush=True); time.sleep(120)"],
                         stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def test_pool_worker_ends_with_its_killed_parent():
    """A recording worker whose parent died (a killed run) stops instead of holding a core."""
    out = subprocess.run([sys.executable, "-c", ORPHAN_PARENT], capture_output=True, text=True, timeout=120)
    pid = int(out.stdout.split()[-1])  # the parent has exited; its child was still watching then
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"worker {pid} outlived its parent"
