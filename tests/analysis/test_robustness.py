"""The robustness table (``analysis.robustness``): the same init states paired across policies,
and whether the gain on the reference condition holds, shrinks or reverses."""
import pandas as pd
import pytest

from tgrpo_lib.analysis import figures, robustness


def _robustness_episodes():
    """10 states per condition; SFT solves the first k_sft, TGRPO the first k_rl (worked counts below)."""
    counts = {"standard": (5, 9), "lan": (2, 3), "swap": (6, 2), "object": (0, 10)}
    rows = []
    for condition, (k_sft, k_rl) in counts.items():
        for policy, k in (("SFT", k_sft), ("TGRPO", k_rl)):
            rows += [{"policy": policy, "condition": condition, "suite": "libero_object", "task_id": 0,
                      "state_key": f"{condition}{i}", "success": i < k} for i in range(10)]
    return pd.DataFrame(rows)


def test_robustness_table_pairs_states_and_says_whether_the_gain_holds():
    table = robustness.robustness_table(_robustness_episodes())
    assert list(table.index) == ["standard", "lan", "swap", "object"]
    std, lan, swap, obj = (table.loc[c] for c in table.index)
    assert (std["SFT %"], std["TGRPO %"], std["change (pts)"], std["b"], std["c"]) == (50, 90, 40, 0, 4)
    assert std["p"] == pytest.approx(0.125) and not std["significant"]  # 2 * 0.5**4
    assert std["verdict"] == "reference"
    assert lan["verdict"] == "shrinks" and lan["change (pts)"] == pytest.approx(10)  # < half of 40
    assert swap["verdict"] == "reverses" and (swap["b"], swap["c"]) == (4, 0)
    assert obj["verdict"] == "holds" and obj["p"] == pytest.approx(2 * 0.5 ** 10) and obj["significant"]
    assert std["SFT CI low"] < 50 < std["SFT CI high"]
    answer = robustness.robustness_answer(table)
    assert "swap: the gain reverses: 60.0 % -> 20.0 % (n=10), -40.0 pts" in answer
    assert "lan: the gain shrinks" in answer and "not significant" in answer
    png = figures.figure_robustness(table)._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_robustness_table_refuses_missing_policies_and_reference():
    with pytest.raises(ValueError, match="no episodes of RL: pass before/after among SFT, TGRPO"):
        robustness.robustness_table(_robustness_episodes(), after="RL")
    with pytest.raises(ValueError, match="reference='heldout' was not evaluated"):
        robustness.robustness_table(_robustness_episodes(), reference="heldout")
    assert [robustness.verdict(c, 20) for c in (-1, 0, 9, 10, 30)] == ["reverses", "shrinks", "shrinks", "holds", "holds"]
