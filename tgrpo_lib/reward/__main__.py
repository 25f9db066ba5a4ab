"""Reward commands: sanity-check rewards on expert demos vs random rollouts; generate LLM rewards.

    python -m tgrpo_lib reward sanity --suite all --expert 2 --random 2    # the 40 tasks (offline)
    python -m tgrpo_lib reward --suite goal --tasks 0 3 7                   # no command: sanity
    python -m tgrpo_lib reward sanity --suite object --source cache          # the cached LLM rewards
    python -m tgrpo_lib reward generate --suite all                         # needs ANTHROPIC_API_KEY

sanity writes ``outputs/reward_sanity/<suite>.{csv,md}`` (one row per task: pass/fail columns and
the reason); a task whose expert failed every episode is listed as "no successful expert demo".

generate asks Claude for each task's reward (the paper's prompt: instruction, key objects with
positions from a real start state, key poses of an expert demonstration), validates the answer
(static check, sandboxed run on init-state start states, sanity on expert vs random) and caches
only what passed under ``rewards/``; the table (passed / cached / rejected and why) goes to
``outputs/reward_generation/<suite>.{csv,md}``. Exit status: 0 all tasks have a validated program,
1 some answer was rejected, 2 a usage error, no key, or an API failure (one line saying what to do).
"""
from __future__ import annotations

import argparse
import json
import sys

import tgrpo_lib
from tgrpo_lib.envs.registry import SUITES, canonical_suite
from tgrpo_lib.reward import evidence, llm
from tgrpo_lib.reward.commands import Aborted, generate_rewards, markdown_table, sanity_rows
from tgrpo_lib.reward.config import SOURCES, RewardConfig
from tgrpo_lib.reward.sandbox import one_line

COMMANDS = ("sanity", "generate")


def build_parser() -> argparse.ArgumentParser:
    defaults = RewardConfig()
    p = argparse.ArgumentParser(prog="python -m tgrpo_lib reward", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("sanity", "check rewards on expert demos vs random rollouts (default command)"),
                            ("generate", "generate, validate and cache LLM rewards (needs ANTHROPIC_API_KEY)")):
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument("--suite", default="all", help="suite, alias, or 'all'")
        c.add_argument("--tasks", type=int, nargs="*", help="task ids (default 0..9)")
        c.add_argument("--expert", type=int, default=2, help="expert successes (sanity: episodes) per task")
        c.add_argument("--random", type=int, default=2, help="random rollouts per task")
        c.add_argument("--random-steps", type=int, default=60)
        c.add_argument("--cache-dir", default=defaults.cache_dir, help="LLM reward cache (default: rewards/)")
        c.add_argument("--model", default=defaults.model, help="Anthropic model (part of the cache key)")
        if name == "sanity":
            c.add_argument("--source", default="offline", choices=SOURCES, help="which reward to check")
        else:
            c.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
            c.add_argument("--timeout", type=float, default=defaults.request_timeout_s,
                           help="seconds the API may stay silent before a try times out")
            c.add_argument("--retries", type=int, default=defaults.max_retries,
                           help="retries after 429 / 529 / 5xx / timeouts")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """`sanity` is the default command, so the flags of the former single command still work."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["sanity", *argv]
    return build_parser().parse_args(argv)


def _tasks(args) -> list[tuple[str, int]]:
    suites = SUITES if args.suite == "all" else (canonical_suite(args.suite),)
    bad = [t for t in args.tasks or () if not 0 <= t <= 9]
    if bad:
        raise ValueError(f"--tasks {bad}: task ids are 0..9")
    return [(s, t) for s in suites for t in (args.tasks if args.tasks else range(10))]


def _save(table, kind: str, args) -> None:
    out = tgrpo_lib.OUTPUTS_DIR / kind
    out.mkdir(parents=True, exist_ok=True)
    name = "all" if args.suite == "all" else canonical_suite(args.suite)
    table.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text(markdown_table(table))


def sanity(args) -> int:
    cfg = RewardConfig(source=args.source, cache_dir=args.cache_dir, model=args.model)
    table = sanity_rows(_tasks(args), cfg, expert=args.expert, random=args.random, random_steps=args.random_steps)
    _save(table, "reward_sanity", args)
    print(table.to_string())
    print(json.dumps({"tasks": len(table), "passed": int(table["ok"].sum())}))
    return 0


def generate(args) -> int:
    cfg = RewardConfig(source="llm", cache_dir=args.cache_dir, model=args.model, max_tokens=args.max_tokens,
                       request_timeout_s=args.timeout, max_retries=args.retries)
    tasks = _tasks(args)
    if not llm.api_key_available():
        print("ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=<your key> (ANTHROPIC_BASE_URL for a proxy) "
              "and rerun to generate LLM rewards; until then training uses the offline stage compiler "
              "(RewardConfig(source='offline'))", file=sys.stderr)
        return 2

    def evidence_for(suite, task_id):  # read off the module at call time, so a test may replace it
        return evidence.collect_evidence(suite, task_id, n_expert=args.expert, n_random=args.random,
                                         random_steps=args.random_steps)

    try:
        table = generate_rewards(tasks, cfg, evidence_for)
        error = None
    except Aborted as e:
        table, error = e.table, str(e)
    _save(table, "reward_generation", args)
    print(table.drop(columns=[c for c in ("evidence",) if c in table]).to_string())
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    print(json.dumps({"tasks": len(tasks), **{k: int(v) for k, v in counts.items()}}))
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if set(counts) <= {"passed", "cached"} else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return sanity(args) if args.command == "sanity" else generate(args)
    except ValueError as e:  # user-caused (unknown suite, bad task id, no cached program ...): one line
        print(f"error: {one_line(e, 600)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
