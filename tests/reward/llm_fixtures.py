"""HAND-WRITTEN TEST FIXTURES standing in for LLM answers (not output of Claude): a program for
libero_object #0 (alphabet soup into the basket) that passes validation on
`tgrpo_lib.reward.synthetic.soup_evidence()`, and answers built from it."""

FIXTURE = '''N_STAGES = 2

def reward(state, step):
    eef = state["eef_pos"]
    obj = state["pos/alphabet_soup_1"]
    basket = state["pos/basket_1_contain_region"]
    near = np.linalg.norm(eef - obj, axis=-1) < 0.07
    inside = np.all(np.abs(obj - basket) < 0.06, axis=-1)
    stage = np.where(inside, 2, np.where(near, 1, 0))
    f2 = np.exp(-np.linalg.norm(eef - obj, axis=-1) / 0.1)
    return stage + np.where(inside, 1.0, f2), stage
'''
RETURN = "return stage + np.where(inside, 1.0, f2), stage"
GOOD = "Stages: reach the can, then the can inside the basket.\n```python\n" + FIXTURE + "```\n"
HOSTILE = "```python\nimport os\nN_STAGES = 1\ndef reward(state, step):\n    open('/etc/passwd')\n    return 0, 0\n```"
BROKEN = "```python\n" + FIXTURE.replace(RETURN, "return eef, stage") + "```"
