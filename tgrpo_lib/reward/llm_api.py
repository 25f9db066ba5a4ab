"""Asking Claude for a reward program: the client, the streamed call, its failures, the answer's code.

Claude is asked through the installed ``anthropic`` SDK (streamed, so ``request_timeout_s`` bounds
silence, not answer length), with bounded retries and backoff on 429 / 529 / 5xx / timeouts.
Every failure raises ``RewardGenerationError``, one line naming the cause and the fix, for the
whole LLM reward path (``llm``) too.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass

from tgrpo_lib.reward import sandbox
from tgrpo_lib.reward.config import RewardConfig
from tgrpo_lib.reward.llm_prompt import SYSTEM

# The retry warnings keep the logger name they had before this module was split out of `llm`, so
# logging set up for the LLM reward path (and tests capturing it) still sees them.
log = logging.getLogger("tgrpo_lib.reward.llm")

BACKOFF_BASE_S = 1.0  # waits 1, 2, 4 ... s between tries when the server sends no retry-after
MAX_WAIT_S = 60.0  # a retry-after longer than this ends the call (the user is told to wait and rerun)
MAX_ANSWER_S = 600.0  # overall limit of one streamed answer (request_timeout_s bounds each silence)
NO_KEY = ("ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=<your key> (and ANTHROPIC_BASE_URL for a "
          "proxy) to let Claude write the reward; without it use RewardConfig(source='offline'), the offline "
          "stage compiler")


class RewardGenerationError(ValueError):
    """An LLM reward could not be obtained; the message is one line naming the cause and the fix.

    kind: "setup" (no key / no cached program), "api" (the request failed: stop a batch),
    "answer" (this answer was unusable or rejected: the next task may work).
    """

    def __init__(self, message: str, kind: str = "answer"):
        super().__init__(sandbox.one_line(message, 600))
        self.kind = kind


@dataclass
class Answer:
    text: str
    stop_reason: str | None
    model: str
    usage: dict
    tries: int


def api_key_available() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))


def make_client(cfg: RewardConfig):
    """The SDK client: our own retries (max_retries=0 here), `request_timeout_s` per silence."""
    try:
        import anthropic
    except ImportError:
        raise RewardGenerationError("the anthropic SDK is not installed: pip install 'anthropic>=2.15,<3'",
                                    kind="setup") from None
    if not api_key_available():
        raise RewardGenerationError(NO_KEY, kind="setup")
    return anthropic.Anthropic(timeout=cfg.request_timeout_s, max_retries=0)


def _api_message(e) -> str:
    """The API's own error text when the body is Anthropic's JSON error, else nothing (no HTML dumps)."""
    body = getattr(e, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return sandbox.one_line(body["error"].get("message", ""), 120)
    return ""


def _retry_after(e) -> float | None:
    headers = getattr(getattr(e, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers.get(name)) * scale)
        except (TypeError, ValueError):
            continue
    return None


def _failure(e, cfg: RewardConfig, base: str, tries: int) -> tuple[bool, str]:
    """(retryable, one-line message naming the fix) for an exception of one try."""
    import anthropic

    code = getattr(e, "status_code", None)
    detail = _api_message(e)
    detail = f": {detail}" if detail else ""
    if isinstance(e, anthropic.AuthenticationError):
        return False, f"the API at {base} rejected the key (401{detail}): set a valid ANTHROPIC_API_KEY"
    if isinstance(e, anthropic.PermissionDeniedError):
        return False, (f"the key may not use model {cfg.model!r} (403{detail}): check the key's permissions "
                       "or RewardConfig.model")
    if isinstance(e, anthropic.NotFoundError):
        return False, (f"model {cfg.model!r} or the endpoint was not found (404{detail}): check RewardConfig.model "
                       f"and ANTHROPIC_BASE_URL ({base})")
    if isinstance(e, anthropic.RateLimitError):
        return True, (f"rate limited (429{detail}) on all {tries} tries: wait a minute and rerun (validated "
                      "programs are already cached), or raise RewardConfig.max_retries")
    if isinstance(e, anthropic.APIStatusError) and code == 529:
        return True, f"the API is overloaded (529) on all {tries} tries: wait a few minutes and rerun"
    if isinstance(e, anthropic.APIStatusError) and code is not None and code >= 500:
        return True, (f"server error (HTTP {code}) on all {tries} tries: wait and rerun; if it persists check "
                      f"ANTHROPIC_BASE_URL ({base})")
    if isinstance(e, anthropic.APIStatusError):
        return False, (f"the API refused the request (HTTP {code}{detail}): check RewardConfig.model "
                       f"({cfg.model!r}) and RewardConfig.max_tokens ({cfg.max_tokens})")
    name = type(e).__name__
    if isinstance(e, TypeError) and "authentication" in str(e).lower():  # a client built without credentials
        return False, NO_KEY
    if isinstance(e, anthropic.APITimeoutError) or "Timeout" in name:
        return True, (f"no answer from {base} within request_timeout_s={cfg.request_timeout_s:g} s on all {tries} "
                      "tries: check the network and ANTHROPIC_BASE_URL, or raise RewardConfig.request_timeout_s")
    if isinstance(e, anthropic.APIConnectionError) or type(e).__module__.split(".")[0].startswith("httpx"):
        return True, f"cannot reach the API at {base} ({name}, {tries} tries): check the network and ANTHROPIC_BASE_URL"
    return False, (f"malformed answer from the API at {base} ({name}): check that ANTHROPIC_BASE_URL points "
                   "at the Anthropic Messages API")


def ask_llm(prompt: str, cfg: RewardConfig, client=None) -> Answer:
    """One streamed Messages API answer; retries transient failures (RewardConfig.max_retries)."""
    client = client if client is not None else make_client(cfg)
    base = str(getattr(client, "base_url", "the API")).rstrip("/")
    tries = cfg.max_retries + 1
    for attempt in range(tries):
        try:
            t0 = time.monotonic()
            with client.messages.stream(model=cfg.model, max_tokens=cfg.max_tokens, system=SYSTEM,
                                        messages=[{"role": "user", "content": prompt}]) as stream:
                for _ in stream:
                    if time.monotonic() - t0 > MAX_ANSWER_S:
                        raise RewardGenerationError(f"the answer from {base} took over {MAX_ANSWER_S:g} s: rerun "
                                                    "later, or lower RewardConfig.max_tokens", kind="api")
                msg = stream.get_final_message()
            text = "".join(getattr(b, "text", "") for b in msg.content if getattr(b, "type", "") == "text")
            usage = {k: getattr(msg.usage, k, None) for k in ("input_tokens", "output_tokens")}
            return Answer(text, msg.stop_reason, str(getattr(msg, "model", cfg.model)), usage, attempt + 1)
        except RewardGenerationError:
            raise
        except Exception as e:  # noqa: BLE001 - every SDK / transport failure ends in one line
            retryable, message = _failure(e, cfg, base, tries)
            wait = _retry_after(e)
            wait = BACKOFF_BASE_S * 2 ** attempt if wait is None else wait
            if not retryable or attempt + 1 == tries:
                raise RewardGenerationError(message, kind="api") from None
            if wait > MAX_WAIT_S:
                raise RewardGenerationError(f"the API at {base} asks to wait {wait:.0f} s before a retry (HTTP "
                                            f"{getattr(e, 'status_code', '?')}, retry-after): wait and rerun",
                                            kind="api") from None
            log.warning("LLM request failed (%s); retry %d/%d in %.1f s", type(e).__name__, attempt + 1,
                        cfg.max_retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def code_from_answer(answer: Answer, cfg: RewardConfig) -> str:
    """The program in an answer: the last ```python block (or a bare answer that is code)."""
    if answer.stop_reason == "max_tokens":
        raise RewardGenerationError(f"the answer was cut at max_tokens={cfg.max_tokens} (stop_reason=max_tokens): "
                                    "raise RewardConfig.max_tokens and rerun", kind="answer")
    if answer.stop_reason == "refusal":
        raise RewardGenerationError("the model refused to answer (stop_reason=refusal): rerun, or try another "
                                    "RewardConfig.model", kind="answer")
    blocks = re.findall(r"```(?:python|py|python3)?[ \t\r]*\n(.*?)```", answer.text, flags=re.S)
    if blocks:
        with_entry = [b for b in blocks if "def reward" in b]
        return (with_entry or blocks)[-1].strip() + "\n"
    if re.search(r"^def reward\(", answer.text, flags=re.M):
        return answer.text.strip() + "\n"
    raise RewardGenerationError("the answer has no ```python code block (prose only): rerun to ask again, or "
                                "try another RewardConfig.model", kind="answer")
