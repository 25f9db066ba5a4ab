import numpy as np
import pytest

from tgrpo_lib.envs import MAX_STEPS, SUITES, EnvConfig, canonical_suite, get_task, list_tasks, standard_init_states


def test_registry_covers_the_forty_tasks_of_the_four_suites():
    tasks = list_tasks()
    assert len(tasks) == 40
    assert {t.suite for t in tasks} == set(SUITES)
    for t in tasks:
        assert t.max_steps == MAX_STEPS[t.suite]
        assert t.num_warmup_steps == 10
        assert t.bddl_path.endswith(".bddl")
        assert t.instruction and t.instruction == t.instruction.lower()
    assert [t.max_steps for t in (get_task(s, 0) for s in SUITES)] == [220, 280, 300, 520]
    assert get_task("object", 0).instruction == "pick up the alphabet soup and place it in the basket"
    assert get_task("long", 0).instruction == "put both the alphabet soup and the tomato sauce in the basket"


@pytest.mark.parametrize("suite", SUITES)
def test_fifty_standard_init_states_per_task(suite):
    states = standard_init_states(suite, 9)
    assert states.shape[0] == 50 and states.ndim == 2 and np.isfinite(states).all()


def test_aliases():
    assert canonical_suite("spatial") == "libero_spatial"
    assert canonical_suite("Object") == "libero_object"
    assert canonical_suite("goal") == "libero_goal"
    assert canonical_suite("long") == "libero_10"


def test_bad_input_gives_one_clear_error():
    with pytest.raises(ValueError, match="Unknown suite 'libero_99'.*libero_spatial"):
        get_task("libero_99", 0)
    with pytest.raises(ValueError, match="out of range.*0..9"):
        get_task("object", 10)
    with pytest.raises(ValueError, match="out of range"):
        get_task("object", -1)
    with pytest.raises(ValueError, match="render_quality"):
        EnvConfig(render_quality="ultra")
    with pytest.raises(ValueError, match="camera"):
        EnvConfig(cameras=("frontview",))


def test_registry_knows_libero_90_and_the_shipped_perturbation_suites():
    from tgrpo_lib.envs import base_suite, perturbations, shipped_suites, split_suite

    shipped = shipped_suites()
    assert shipped[:4] == SUITES and "libero_90" in shipped
    for base in SUITES:
        variants = perturbations(base)
        assert {f"{base}_{p}" for p in ("lan", "object", "swap", "task")} <= set(variants)
        assert any(v.startswith(f"{base}_with_") for v in variants)
        for v in variants:
            assert split_suite(v) == (base, v[len(base) + 1:]) and base_suite(v) == base
            assert get_task(v, 0).max_steps == MAX_STEPS[base]  # a perturbation keeps its base's budget
            assert standard_init_states(v, 0).shape[0] >= 10
    assert get_task("libero_90", 0).max_steps == 400 and len(list_tasks("libero_90")) == 90


def test_a_perturbation_counterpart_is_found_by_goal_and_instructions_follow_the_bddl():
    from tgrpo_lib.envs import perturbed_task
    from tgrpo_lib.envs.registry import _bddl_goal

    base = get_task("object", 0)
    assert perturbed_task("object", 0, "libero_object_lan").instruction == "grab alphabet soup and put it into basket"
    assert perturbed_task("object", 0, "libero_object_task").instruction == "pick the cream cheese and place it in the basket"
    assert perturbed_task("object", 0, "libero_object_swap").instruction == base.instruction
    # distractor scenes reorder the tasks: the counterpart has the same goal, and the trained instruction
    mug = perturbed_task("object", 3, "libero_object_with_mug")
    assert _bddl_goal(mug.bddl_path) == _bddl_goal(get_task("object", 3).bddl_path)
    assert mug.instruction == get_task("object", 3).instruction and mug.task_id != 3
    long5 = perturbed_task("libero_10", 5, "libero_10_with_milk")
    assert _bddl_goal(long5.bddl_path) == _bddl_goal(get_task("libero_10", 5).bddl_path)


def test_perturbation_suites_are_for_evaluation_only():
    from tgrpo_lib.envs import perturbed_task

    with pytest.raises(ValueError, match="libero_object_lan is for evaluation only .* use a base suite: pass one of"):
        canonical_suite("libero_object_lan")
    assert canonical_suite("libero_object_lan", variants=True) == "libero_object_lan"
    with pytest.raises(ValueError, match="Unknown suite 'libero_object_shiny'"):
        canonical_suite("libero_object_shiny", variants=True)
    with pytest.raises(ValueError, match="libero_goal_lan is not a perturbation of libero_object"):
        perturbed_task("object", 0, "libero_goal_lan")
