"""The cache of validated LLM reward programs: keys, entry paths, reading and writing entries.

Cache key = sha256(prompt, model, VALIDATOR_VERSION), 16 hex. An entry is ``<key>.py`` (program),
``<key>.prompt.md`` (prompt) and ``<key>.json`` (model, answer, validation), the record written
last: an entry without it does not exist. Only ``llm.llm_program`` decides what is written (a
proven program) and validates a cached one again before use.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import tgrpo_lib
from tgrpo_lib.reward.config import RewardConfig

VALIDATOR_VERSION = 1
"""Bump when `validate_program` gets stricter: every cache key changes, so old entries are re-proven."""


def cache_key(prompt: str, model: str) -> str:
    blob = json.dumps({"model": model, "prompt": prompt, "validator": VALIDATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def source_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def cache_dir(cfg: RewardConfig, suite: str, task_id: int) -> Path:
    root = Path(cfg.cache_dir)
    if not root.is_absolute():
        root = tgrpo_lib.PROJECT_ROOT / root
    return root / suite / f"task_{task_id}"


def entry_paths(cfg: RewardConfig, suite: str, task_id: int, key: str) -> dict[str, Path]:
    d = cache_dir(cfg, suite, task_id)
    return {"json": d / f"{key}.json", "py": d / f"{key}.py", "prompt": d / f"{key}.prompt.md"}


def display_path(path) -> str:
    """`path` relative to the project root when it is inside it (for messages and tables)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(tgrpo_lib.PROJECT_ROOT))
    except ValueError:
        return str(path)


def read_entry(paths: dict[str, Path]) -> tuple[str, dict]:
    """(program, record) of a cache entry; raises ValueError naming what is wrong with it."""
    try:
        record = json.loads(paths["json"].read_text())
        code = paths["py"].read_text()
    except (OSError, ValueError) as e:
        raise ValueError(f"unreadable ({type(e).__name__})") from None
    if record.get("source_hash") != source_hash(code):
        raise ValueError(f"{paths['py'].name} was edited after validation (hash {source_hash(code)}, "
                         f"recorded {record.get('source_hash')})")
    return code, record


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_entry(paths: dict[str, Path], code: str, prompt: str, record: dict) -> None:
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    paths["json"].unlink(missing_ok=True)  # an entry exists only once its record is written, last
    _write_atomic(paths["py"], code)
    _write_atomic(paths["prompt"], prompt)
    _write_atomic(paths["json"], json.dumps(record, indent=1, sort_keys=True) + "\n")


def has_cache_entries(cfg: RewardConfig, suite: str, task_id: int) -> bool:
    d = cache_dir(cfg, suite, task_id)
    return d.exists() and any(d.glob("*.json"))
