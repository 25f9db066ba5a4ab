"""``python -m tgrpo_lib <command> [flags]``: the project's commands behind one entry point.

    python -m tgrpo_lib run          # ``make run``: demos -> SFT -> TGRPO -> before/after, one task
    python -m tgrpo_lib sft          # supervised fine-tuning on demonstrations
    python -m tgrpo_lib expert       # the scripted expert: success rates, recorded demonstrations
    python -m tgrpo_lib reward       # reward sanity checks, LLM reward generation
    python -m tgrpo_lib diagnose     # why a policy does or does not improve
    python -m tgrpo_lib reproduce    # the paper's tables and figures (executes the notebooks)
    python -m tgrpo_lib plan         # memory plan of an update at paper scale
    python -m tgrpo_lib parity       # a LIBERO-finetuned OpenVLA on OpenVLA's own evaluation

``python -m tgrpo_lib <command> --help`` lists a command's flags. The older spelling
``python -m tgrpo_lib.main`` (``.sft``, ``.plan``, ...) still works.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": "tgrpo_lib.workflows.main",
    "sft": "tgrpo_lib.training.sft",
    "expert": "tgrpo_lib.expert.__main__",
    "reward": "tgrpo_lib.reward.__main__",
    "diagnose": "tgrpo_lib.workflows.diagnose",
    "reproduce": "tgrpo_lib.workflows.reproduce",
    "plan": "tgrpo_lib.paper_scale.plan",
    "parity": "tgrpo_lib.paper_scale.parity",
}
"""Command -> the module whose ``main(argv)`` runs it."""


def main(argv: list[str] | None = None):
    """Run ``argv[0]``'s command on the rest of ``argv``; no command or an unknown one exits 2 with the list."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        raise SystemExit(0)
    if not argv:
        print(f"{__doc__.strip()}\n\npython -m tgrpo_lib: error: name a command.", file=sys.stderr)
        raise SystemExit(2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"python -m tgrpo_lib: error: unknown command {command!r}: pass one of {', '.join(COMMANDS)}.",
              file=sys.stderr)
        raise SystemExit(2)
    return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
