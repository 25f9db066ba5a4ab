"""Analysis: tables, figures and tests built only from run directories.

This layer reads what runs wrote (``infra.runs``: config.json, metrics.json, the per-episode
tables); it never imports the simulator (``envs``), a policy (``policy``) or the training loop
(``training``), so a table can be rebuilt anywhere the outputs are.

- ``stats``: intervals and paired tests for success rates (pure; any layer may use it)
- ``cells``: run-level statistics of one table cell (its units, n, interval, test against the reference row)
- ``paper``: the paper's published numbers and names
- ``runs_table``: run directories as one table, repeats counted once, per-method success
- ``tables``: Table I / II (cells, wide tables, Markdown) and one run's before/after comparison
- ``table_views``: Table I / II as a reader reads them, one table each, ours beside the paper's (a
  pandas Styler in notebook 05, Markdown in results.md)
- ``curves``: sweep curves (Fig. 5 data) and a sweep's before/after
- ``robustness``: the perturbation table and its one-line-per-condition answer
- ``figures``: every plot (training curves, advantage panels, Fig. 3, Fig. 5, robustness)
- ``report``: ``write_results`` (results.md, tables, figures, results.json), the provenance they rest
  on, and ``write_metrics`` (the metrics.json every notebook ends with)

Importing the package imports none of its modules.
"""
