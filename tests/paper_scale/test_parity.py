"""The parity command without a GPU: one line naming what it needs; its table on hand-worked episodes."""
import io
import json

import pandas as pd
import pytest

from tgrpo_lib.paper_scale import parity


def test_published_rates_are_openvlas():
    assert parity.PUBLISHED == {"libero_spatial": 84.7, "libero_object": 88.4, "libero_goal": 79.2, "libero_10": 53.7}


def test_without_gpu_or_weights_it_stops_in_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        parity.main(["--model", str(tmp_path / "missing"), "--suite", "long"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert "CUDA GPU" in err[0] and "openvla/openvla-7b-finetuned-libero-10" in err[0]
    with pytest.raises(SystemExit):
        parity.main(["--model", str(tmp_path), "--suite", "sideways"])
    assert "Unknown suite" in capsys.readouterr().err.splitlines()[-1]


def test_unnorm_key_is_the_published_scripts(tmp_path):
    (tmp_path / "dataset_statistics.json").write_text(json.dumps({"libero_object_no_noops": {"action": {}}}))
    assert parity.unnorm_key_for(str(tmp_path), "libero_object") == "libero_object_no_noops"
    with pytest.raises(ValueError, match="libero_goal"):
        parity.unnorm_key_for(str(tmp_path), "libero_goal")
    with pytest.raises(ValueError, match="finetuned"):
        parity.unnorm_key_for(str(tmp_path / "none"), "libero_goal")


def test_summary_beside_the_published_rate():
    # task 0: 40 / 50, task 1: 45 / 50 -> suite 85 / 100 = 85 %, Wilson [76.7, 90.7]: 84.7 inside
    episodes = pd.DataFrame({"task_id": [0] * 50 + [1] * 50,
                             "success": [True] * 40 + [False] * 10 + [True] * 45 + [False] * 5})
    res = parity.summarize(episodes, "libero_spatial")
    assert res["tasks"][0]["successes"] == 40 and res["tasks"][1]["rate"] == 0.9
    s = res["suite_summary"]
    assert (s["n"], s["successes"]) == (100, 85)
    assert s["ci_low"] == pytest.approx(0.7672, abs=1e-3) and s["ci_high"] == pytest.approx(0.9069, abs=1e-3)
    out = io.StringIO()
    parity.print_summary(res, out)
    last = out.getvalue().splitlines()[-1]
    assert "85.0 % [76.7, 90.7] (n=100)" in last and "84.7 %" in last and "inside" in last


def test_stack_note_names_the_published_stack():
    assert "(the published stack)" in parity.stack_note({"mujoco": "2.3.7", "robosuite": "1.4.1"})
    assert "published: MuJoCo 2.3.x" in parity.stack_note({"mujoco": "3.17.0", "robosuite": "1.4.0"})


def test_ctrl_c_during_the_evaluation_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("interrupted by SIGINT")
    monkeypatch.setattr(parity, "requirements", lambda model, suite, gpu=True: [])
    monkeypatch.setattr(parity, "unnorm_key_for", lambda model, suite: "libero_goal_no_noops")
    monkeypatch.setattr(parity, "run", interrupted)
    with pytest.raises(SystemExit) as exc:
        parity.main(["--model", str(tmp_path), "--suite", "goal"])
    assert exc.value.code == 130
    assert capsys.readouterr().err == "python -m tgrpo_lib parity: interrupted by SIGINT\n"
