"""Training and the evaluation protocol: what turns a config into a run directory.

- ``train``: the online RL loop (group rollout -> rewards -> ``algorithm.updates`` -> log ->
  checkpoint), one task per run; ``train(cfg) -> RunResult``
- ``sft``: supervised fine-tuning on demonstrations, the checkpoint RL starts from;
  ``train_sft(cfg) -> RunResult``
- ``evaluation``: the evaluation protocol, in one place (greedy episodes per init-state set,
  cached beside a checkpoint, before/after a run: ``Protocol``)

Importing the package imports none of its modules.
"""
