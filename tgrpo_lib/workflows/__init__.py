"""Workflows: the commands and the multi-step jobs behind them.

- ``main``: ``make run`` (``python -m tgrpo_lib run``): demos -> SFT -> TGRPO -> before/after table
- ``pipeline``: the steps ``make run`` and the notebooks share (demos, reward checks, SFT checkpoints)
- ``sweeps``: sweeps declared as data, one training run per cell (locally or on Ray)
- ``notebook``: what the notebooks share (``AxisStudy``: one axis of Fig. 5 for 03 and 04; the two
  policies of a robustness comparison for 06)
- ``reproduce``: the paper's tables and figures by executing the notebooks (``python -m tgrpo_lib reproduce``)
- ``diagnose``: why a policy does or does not improve (``python -m tgrpo_lib diagnose``)

Importing the package imports none of its modules; the commands load torch only after their
arguments are checked.
"""
