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
