"""Paper-scale tools: running the paper's protocol on OpenVLA-7B (docs/paper_scale.md).

- ``presets``: named config overrides that follow a published protocol (``openvla-7b``)
- ``plan``: the memory plan of an update at paper scale, without a GPU or weights (``python -m tgrpo_lib plan``)
- ``parity``: a LIBERO-finetuned OpenVLA checkpoint on OpenVLA's own evaluation (``python -m tgrpo_lib parity``)

Importing the package imports none of its modules.
"""
