import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, EnvWorkerError, GroupEngine, make_env, rollout_group, standard_init_states
from tgrpo_lib.envs.shared_obs import NAME_PREFIX, SharedObservations
from tgrpo_lib.envs.worker import process_alive


@pytest.fixture(scope="module")
def engine():
    eng = GroupEngine("object", 0, 3, EnvConfig(max_steps=12, render_quality="standard"))
    yield eng
    eng.close()


@pytest.mark.sim
def test_workers_are_flagged_as_scene_workers(engine):
    """So they leave the cold mesh cache's progress bar to this process (render_quality)."""
    from tgrpo_lib.envs.render_quality import SCENE_WORKER_ENV

    for pid in engine.worker_pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"{SCENE_WORKER_ENV}=1".encode() in environ


def _random_policy(seed=0):
    rng = np.random.default_rng(seed)
    return lambda obs: {"actions": rng.uniform(-0.3, 0.3, (len(obs["proprio"]), 7)), "tag": np.arange(len(obs["proprio"]))}


@pytest.mark.sim
def test_group_trajectories_have_equal_length_and_same_start(engine):
    state = standard_init_states("object", 0)[1]
    ro = rollout_group(engine, _random_policy(), state)
    assert ro.length == 12  # nobody succeeds with small random actions: all run to max_steps
    assert ro.obs["agentview"].shape == (3, 12, 128, 128, 3)
    assert ro.obs["proprio"].shape == (3, 12, 8)
    assert ro.actions.shape == (3, 12, 7) and ro.success.shape == (3, 12)
    assert ro.states["eef_pos"].shape == (3, 13, 3)
    assert ro.extras["tag"].shape == (3, 12)
    # all N environments start from the same init state ...
    assert np.allclose(ro.states["pos/alphabet_soup_1"][:, 0], ro.states["pos/alphabet_soup_1"][0, 0])
    # ... and then diverge under different actions
    assert not np.allclose(ro.states["eef_pos"][0, -1], ro.states["eef_pos"][1, -1])


def _env1_succeeds_at_step_4(engine):
    """A policy of zero actions that, before env 1's 4th step, drops the soup into its basket;
    and the count of env 1's policy calls."""
    seen = {"env1": 0}

    def policy(obs):
        if 1 in obs["env"]:
            seen["env1"] += 1
            if seen["env1"] == 4:
                basket = engine.call(1, "privileged_state")["pos/basket_1_contain_region"]
                engine.call(1, "set_object_pose", "alphabet_soup_1", basket)
        return {"actions": np.zeros((len(obs["env"]), 7))}
    return policy, seen


@pytest.mark.sim
def test_stop_rule_any_success_stops_all(engine):
    state = standard_init_states("object", 0)[0]
    policy, _ = _env1_succeeds_at_step_4(engine)
    ro = rollout_group(engine, policy, state)
    assert ro.length == 4
    assert ro.success[:, -1].tolist() == [False, True, False]
    assert not ro.success[:, :-1].any()
    assert ro.episode_success.tolist() == [False, True, False]
    engine.reset(state)  # no step left in flight: the engine is usable again


@pytest.mark.sim
def test_stop_each_lets_the_others_run_and_pads_the_success(engine):
    state = standard_init_states("object", 0)[0]
    policy, seen = _env1_succeeds_at_step_4(engine)
    ro = rollout_group(engine, policy, state, stop="each")
    assert seen["env1"] == 4  # env 1 stopped acting at its success
    assert ro.length == 12 and ro.lengths.tolist() == [12, 4, 12]
    assert ro.valid[1].tolist() == [True] * 4 + [False] * 8
    assert ro.success[1, 3:].all() and not ro.success[1, :3].any()  # success absorbing
    assert ro.episode_success.tolist() == [False, True, False]
    # the padded steps repeat env 1's last step: its final state and the frame it last saw
    assert np.array_equal(ro.states["eef_pos"][1, 4:], np.repeat(ro.states["eef_pos"][1, 4:5], 9, axis=0))
    assert np.array_equal(ro.obs["agentview"][1, 4:], np.repeat(ro.obs["agentview"][1, 3:4], 8, axis=0))
    with pytest.raises(ValueError, match="stop="):
        rollout_group(engine, policy, state, stop="first")


@pytest.mark.sim
def test_pipelined_rollout_matches_lock_step_stepping(engine):
    """The pipelined rollout records exactly what stepping all environments together gives."""
    state = standard_init_states("object", 0)[2]
    acts = np.random.default_rng(3).uniform(-0.5, 0.5, (12, engine.n, 7))
    count = {}

    def policy(obs):
        t = count.setdefault(tuple(obs["env"]), 0)
        count[tuple(obs["env"])] += 1
        return {"actions": acts[t][obs["env"]], "t": np.full(len(obs["env"]), t)}

    ro = rollout_group(engine, policy, state)
    obs = engine.reset(state)
    eef = [obs["state"]["eef_pos"]]
    for t in range(12):
        obs, _ = engine.step(acts[t])
        eef.append(obs["state"]["eef_pos"])
    assert np.array_equal(ro.states["eef_pos"], np.stack(eef, axis=1))
    assert np.array_equal(ro.actions, acts.transpose(1, 0, 2))
    assert np.array_equal(ro.extras["t"], np.broadcast_to(np.arange(12), (engine.n, 12)))


def test_group_needs_two_trajectories():
    class One:
        n = 1
    with pytest.raises(ValueError, match="N >= 2"):
        rollout_group(One(), lambda o: {"actions": np.zeros((1, 7))}, np.zeros(3))


@pytest.mark.sim
def test_reset_some_resets_only_the_named_environments(engine):
    states = standard_init_states("object", 0)
    engine.reset(states[:3])
    engine.step(np.full((3, 7), 0.2))
    moved = engine.call(2, "privileged_state")["eef_pos"]
    obs = engine.reset_some([0], states[4:5])
    fresh = engine.call(0, "privileged_state")
    kept = engine.call(2, "privileged_state")["eef_pos"]
    # env 0 restarted from init state 4 exactly as a full reset would put it ...
    engine.reset(states[[4, 4, 4]])
    ref = engine.call(1, "privileged_state")
    assert np.array_equal(fresh["pos/alphabet_soup_1"], ref["pos/alphabet_soup_1"])
    assert np.array_equal(fresh["eef_pos"], ref["eef_pos"])
    # ... while env 2 kept the state it had moved to
    assert np.array_equal(kept, moved)
    assert not np.allclose(moved, ref["eef_pos"], atol=1e-3)
    assert obs["proprio"].shape == (3, 8)


# ---------------------------------------------------------------------------- the transport
def _leaked_segments(pid=None):
    return sorted(Path("/dev/shm").glob(f"{NAME_PREFIX}_{pid or os.getpid()}_*"))


@pytest.mark.sim
def test_shared_memory_observations_equal_a_direct_env_bit_for_bit(engine):
    """Frames, proprio and every privileged-state entry that come through the engine's shared
    memory (lock-step and pipelined) equal those of one make_env env after the same actions."""
    states = standard_init_states("object", 0)[[6, 7, 8]]
    acts = np.random.default_rng(5).uniform(-1, 1, (6, engine.n, 7))
    acts[3:, :, 6] = 1.0  # close the gripper
    got = [engine.reset(states)]
    for t in range(3):
        got.append(engine.step(acts[t])[0])
    for t in range(3, 6):
        for w, slots in enumerate(engine.worker_slots):
            engine.step_send(w, {i: acts[t, i] for i in slots})
        for w in range(len(engine.worker_slots)):
            engine.step_recv(w)
        got.append(engine.last_obs())
    assert not _leaked_segments()  # unlinked as soon as the workers had attached
    env = make_env("object", 0, engine.cfg)
    try:
        for i in range(engine.n):
            ref = [env.reset(states[i])] + [env.step(acts[t, i])[0] for t in range(6)]
            for t, (batch, obs) in enumerate(zip(got, ref)):
                assert set(batch) - {"env"} == set(obs) and list(batch["state"]) == list(obs["state"])
                pairs = [(k, batch[k][i], obs[k]) for k in obs if k != "state"]
                pairs += [(k, batch["state"][k][i], v) for k, v in obs["state"].items()]
                for key, a, b in pairs:
                    assert a.dtype == b.dtype and np.array_equal(a, b), (i, t, key)
    finally:
        env.close()


@pytest.mark.sim
def test_a_stepping_worker_leaves_the_last_observation_in_place(engine):
    """Double buffering: while a worker steps (and has written its new frames), the parent still
    reads the observation from before the step; collecting the step switches to the new one."""
    states = standard_init_states("object", 0)
    before = engine.reset(states[:3])
    w = 0
    mine = engine.worker_slots[w]
    engine.step_send(w, {i: np.full(7, 0.8) for i in mine})
    time.sleep(1.0)  # long enough for the worker to have written its rows
    during = engine.last_obs()
    engine.step_recv(w)
    after = engine.last_obs()
    for key in ("agentview", "proprio"):
        assert np.array_equal(during[key], before[key])
    assert np.array_equal(during["state"]["eef_pos"], before["state"]["eef_pos"])
    assert not np.array_equal(after["state"]["eef_pos"][mine], before["state"]["eef_pos"][mine])
    others = [i for i in range(engine.n) if i not in mine]
    assert np.array_equal(after["state"]["eef_pos"][others], before["state"]["eef_pos"][others])


@pytest.mark.sim
def test_a_dead_worker_is_named_with_its_signal_at_once_and_leaves_nothing():
    """Ctrl-C reaches the whole process group: the workers ignore it (the parent stops them);
    a segfault is reported within seconds, on one line naming the worker, its pid and signal."""
    with pytest.raises(EnvWorkerError, match="died") as err:
        with GroupEngine("object", 0, 2, EnvConfig(cameras=(), max_steps=5), num_workers=2) as eng:
            pids = eng.worker_pids
            eng.reset(standard_init_states("object", 0)[0])
            for pid in pids:
                os.kill(pid, signal.SIGINT)
            eng.step(np.zeros((2, 7)))  # both still serve
            os.kill(pids[1], signal.SIGSEGV)
            t0 = time.perf_counter()
            for _ in range(3):
                eng.step(np.zeros((2, 7)))
    noticed = time.perf_counter() - t0
    assert str(err.value) == f"environment worker 1 (pid {pids[1]}, env 1) died (killed by SIGSEGV)."
    assert (err.value.worker, err.value.signal_name) == (1, "SIGSEGV") and noticed < 5
    assert err.value.__cause__ is None and err.value.__suppress_context__  # one error, not a chain
    assert not _leaked_segments()
    assert not any(process_alive(p) for p in pids)


def test_exit_description_names_signals_and_codes():
    from tgrpo_lib.envs.group import exit_description

    assert exit_description(-9) == ("killed by SIGKILL", "SIGKILL")
    assert exit_description(-11) == ("killed by SIGSEGV", "SIGSEGV")
    assert exit_description(1) == ("exited with code 1", None)
    assert exit_description(None) == ("did not exit", None)


def test_a_worker_exception_is_one_line_with_the_traceback_as_a_note():
    exc = EnvWorkerError("environment worker 0 (pid 7, env 0) failed: ValueError: boom", 0, 7,
                         traceback_text="Traceback (most recent call last):\n  ...\nValueError: boom\n")
    assert "\n" not in str(exc) and "ValueError: boom" in exc.__notes__[0]


@pytest.mark.sim
def test_a_failed_start_leaves_no_shared_memory(monkeypatch):
    """The workers cannot attach (a wrong segment name): the engine reports it, stops them and
    unlinks the segment it had created."""
    monkeypatch.setattr(SharedObservations, "name", property(lambda self: f"{NAME_PREFIX}_no_such_segment"))
    created, create = [], SharedObservations.create

    def create_and_note(cls, spec, n_envs):
        created.append(create(spec, n_envs))
        return created[-1]
    monkeypatch.setattr(SharedObservations, "create", classmethod(create_and_note))
    with pytest.raises(EnvWorkerError, match="failed"):
        GroupEngine("object", 0, 2, EnvConfig(cameras=()), num_workers=2)
    assert len(created) == 1 and not _leaked_segments()


@pytest.mark.sim
def test_a_killed_parent_leaves_nothing_in_dev_shm(tmp_path):
    """The segment's name goes as soon as the workers have mapped it, so even a SIGKILL of the
    parent leaks nothing; its orphaned workers see the socket close and exit."""
    pid_file = tmp_path / "workers.txt"
    script = (
        "import os, sys, time\n"
        "from tgrpo_lib.envs import EnvConfig, GroupEngine\n"
        "eng = GroupEngine('object', 0, 2, EnvConfig(cameras=()), num_workers=2)\n"
        "open(sys.argv[1] + '.tmp', 'w').write(' '.join(map(str, eng.worker_pids)))\n"
        "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(pid_file)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not pid_file.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        workers = [int(p) for p in pid_file.read_text().split()]
        assert len(workers) == 2 and not _leaked_segments(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.time() + 30
    while any(process_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(process_alive(p) for p in workers)
    assert not _leaked_segments(proc.pid)
