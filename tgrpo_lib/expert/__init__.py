"""Scripted expert for the LIBERO tasks: goals -> motion primitives -> demos and key poses.

    from tgrpo_lib.expert import run_task, expert_success_table, load_key_poses
    run = run_task("libero_object", 0, episodes=10, out="outputs/demos", record=True)
    run.success_rate; run.results  # one row per episode

CLI: ``python -m tgrpo_lib expert --suite libero_object --task 0 --episodes 10 --out outputs/demos --record``.

The expert reads the task's BDDL goal atoms (``env.goal``) and the privileged state
(``obs["state"]``) and drives the env's own 7-D OSC deltas; see ``planner.py`` for the skill
chain, ``control.py`` for the controller and ``core.py`` for the expert that runs the plan. Object
sizes come from the compiled MuJoCo model (``geometry.py``). Demos use the format documented in
``tgrpo_lib.infra.demos``.

Imports inside the package go one way: geometry <- control <- articulated <- planner <- core <-
rollout <- runner (keyposes stands alone); ``tests/expert/test_expert.py`` checks there is no cycle.
"""
from .control import ExpertConfig
from .core import ScriptedExpert
from .geometry import SceneGeometry, scene_geometry
from .keyposes import aggregate_key_poses, extract_key_events, load_key_poses, save_key_poses
from .rollout import Episode, run_episode
from .runner import DEMO_EXPERT_CONFIG, TaskRun, expert_success_table, run_task

__all__ = [
    "DEMO_EXPERT_CONFIG", "Episode", "ExpertConfig", "SceneGeometry", "ScriptedExpert", "TaskRun",
    "aggregate_key_poses", "expert_success_table", "extract_key_events", "load_key_poses", "run_episode",
    "run_task", "save_key_poses", "scene_geometry",
]
