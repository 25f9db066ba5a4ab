"""Diagnosis of a run's groups from saved npz files, checked against counts worked out by hand."""
import numpy as np
import pytest

from tgrpo_lib.workflows.diagnose import group_signal, main, to_markdown


def _group(path, it, success_steps, returns, t=10):
    success = np.zeros((len(returns), t), bool)
    for i, s in enumerate(success_steps):
        if s is not None:
            success[i, s - 1:] = True
    rewards = np.zeros((len(returns), t))
    rewards[:, -1] = returns
    np.savez_compressed(path / f"iter_{it:06d}.npz", rewards=rewards, success=success, init_state_index=it)


def test_group_signal_by_hand(tmp_path):
    groups = tmp_path / "groups"
    groups.mkdir()
    _group(groups, 0, [7, None, None, None], [9.0, 5.0, 10.0, 1.0])  # success ranked above 2 of 3 failures
    _group(groups, 1, [None, None, None, None], [1.0, 2.0, 3.0, 4.0])  # no success: no pairs
    _group(groups, 2, [4, 6, None, None], [8.0, 7.0, 6.0, 5.0])  # 4 of 4 pairs right
    g = group_signal(tmp_path)
    assert (g["groups"], g["groups_with_success"]) == (3, 2)
    assert g["successes_per_group"] == {"0": 1, "1": 1, "2": 1}
    assert g["first_success_steps"] == [7, 4] and g["first_success_step_median"] == 5.5
    assert (g["success_beats_failure_pairs"], g["success_failure_pairs"]) == (6, 7)
    assert g["success_ranked_above_failure"] == pytest.approx(6 / 7)
    md = to_markdown({"groups": g})
    assert "2/3" in md and "6/7 pairs (86 %)" in md


def test_bad_arguments_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--run", str(tmp_path)])
    assert exc.value.code == 2
    assert "has no groups/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])
    assert "pass --checkpoint" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    import tgrpo_lib.workflows.diagnose as diagnose

    def interrupted(run_dir):
        raise KeyboardInterrupt("interrupted by SIGINT")
    (tmp_path / "groups").mkdir()
    monkeypatch.setattr(diagnose, "group_signal", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["--run", str(tmp_path)])
    assert exc.value.code == 130
    assert capsys.readouterr().err == "python -m tgrpo_lib diagnose: interrupted by SIGINT\n"
