"""The paper's algorithm: its equations as pure functions of tensors, and one update step.

Read in this order:

- ``advantages``: step-level (Eq. 2), trajectory-level (Eq. 3) and fused (Eq. 4) advantages
- ``loss``: the clipped objective with its KL term (Eq. 5-7)
- ``preference``: the preference baselines of Table I (DPO, GRAPE-style)
- ``variants``: the one table of algorithm variants (reward kind, advantage weights, objective)
- ``updates``: one optimisation phase on one group rollout, picked by the variant's objective

Nothing here runs a simulator, reads a run directory or draws a figure: ``training.train`` calls
``updates.update`` once per iteration. Importing the package imports none of its modules (torch
loads only with ``advantages``, ``loss``, ``preference`` or ``updates``).
"""
