"""Infrastructure every layer leans on: configs, run directories, files on disk, seeding, commands.

- ``config``: the config tree (``TrainConfig``, ``SFTConfig``), ``override`` and a run's identity
  (``run_name``: readable key + config hash)
- ``runs``: the run-directory layout and its IO (config.json, checkpoints, lock, the per-episode
  evaluation tables, metrics read back)
- ``metrics``: what a run logs (``MetricsLogger``: metrics.jsonl and its TensorBoard events)
- ``demos``: demonstrations on disk (the project's HDF5 format and LIBERO's own files)
- ``seeding``: seeding in one place, and RNG state for exact resume
- ``checks``: the two argument checks every config uses
- ``cli``: command-line plumbing (one-line errors, interrupts, ``--set key=value``)

Nothing here imports the training loop, the workflows or the analysis layer. Importing the
package imports none of its modules.
"""
