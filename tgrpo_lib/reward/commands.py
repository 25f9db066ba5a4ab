"""What `python -m tgrpo_lib reward sanity|generate` does, as functions returning tables."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd

from tgrpo_lib.reward import llm, make_reward, recorded_key_poses
from tgrpo_lib.reward.config import RewardConfig
from tgrpo_lib.reward.evidence import RewardEvidence, collect_evidence
from tgrpo_lib.reward.sandbox import one_line
from tgrpo_lib.reward.sanity import sanity_table


class Aborted(RuntimeError):
    """A batch stopped early (the API failed): `table` holds the rows done so far."""

    def __init__(self, error: Exception, table: pd.DataFrame):
        super().__init__(str(error))
        self.table = table


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of `df` (no extra dependency)."""
    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def sanity_rows(tasks: list[tuple[str, int]], cfg: RewardConfig | None = None, expert: int = 2, random: int = 2,
                random_steps: int = 60, evidence_for: Callable[..., RewardEvidence] | None = None,
                progress: bool = True) -> pd.DataFrame:
    """One row per task: the reward of `cfg.source` checked on `expert` expert episodes (from
    standard init states 0, 1, ...) vs `random` random rollouts. Prints one line per task."""
    cfg = cfg or RewardConfig()
    evidence_for = evidence_for or (lambda s, t: collect_evidence(s, t, n_start=1, n_expert=expert, expert_tries=expert,
                                                                  n_random=random, random_steps=random_steps))
    rows = []
    for suite, task_id in tasks:
        key = f"{suite}-{task_id}"
        ev = evidence_for(suite, task_id)
        if not ev.n_success:
            rows.append({"task": key, "ok": False, "reason": f"no successful expert demo in {ev.expert_tries} episodes"})
            print(key, "no successful expert demo", flush=True)
            continue
        poses = recorded_key_poses(suite, task_id, cfg)
        program = make_reward(suite, task_id, cfg=cfg, key_poses=poses, evidence=ev)
        rep = ev.sanity(program, task=key, require_monotone=program.source == "offline")
        row = sanity_table([rep]).iloc[0].to_dict()
        row.update(task=key, expert_successes=f"{ev.n_success}/{ev.expert_tries}", n_stages=program.n_stages,
                   source_hash=program.source_hash)
        rows.append(row)
        print(key, "ok" if rep.ok else f"FLAGGED: {rep.row.get('reason')}", flush=True)
    return pd.DataFrame(rows)


def generate_rewards(tasks: list[tuple[str, int]], cfg: RewardConfig,
                     evidence_for: Callable[[str, int], RewardEvidence] | None = None, client=None,
                     progress: bool = True) -> pd.DataFrame:
    """Generate, validate and cache an LLM reward for each task: one row per task with status
    "cached" (a validated entry existed), "passed" (new, validated, cached), "rejected" (this
    answer failed; nothing cached) or "error" (no evidence). An API failure stops the batch:
    `Aborted` carries the rows done so far."""
    from tqdm.auto import tqdm

    cfg = dataclasses.replace(cfg, source="llm", fallback="none")
    evidence_for = evidence_for or (lambda s, t: collect_evidence(s, t))
    rows: list[dict] = []
    bar = tqdm(tasks, desc="LLM rewards", disable=not progress)
    for suite, task_id in bar:
        bar.set_postfix(task=f"{suite}-{task_id}")
        row = {"task": f"{suite}-{task_id}", "status": "", "n_stages": None, "source_hash": "", "entry": "",
               "reason": ""}
        try:
            ev = evidence_for(suite, task_id)
        except Exception as e:  # noqa: BLE001 - one task's simulator trouble must not stop the others
            rows.append({**row, "status": "error", "reason": f"evidence: {type(e).__name__}: {one_line(e)}"})
            continue
        row["evidence"] = ev.describe()
        try:
            program = make_reward(suite, task_id, cfg=cfg, evidence=ev, client=client)
        except llm.RewardGenerationError as e:
            rows.append({**row, "status": "rejected", "reason": str(e)})
            if e.kind in ("api", "setup"):
                rows[-1]["status"] = "error"
                raise Aborted(e, pd.DataFrame(rows)) from None
            continue
        rows.append({**row, "status": "passed" if program.origin == "generated" else "cached",
                     "n_stages": program.n_stages, "source_hash": program.source_hash,
                     "entry": llm.display_path(program.cache_path)})
    return pd.DataFrame(rows)
