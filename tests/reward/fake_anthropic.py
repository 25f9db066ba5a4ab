"""A local stand-in for the Anthropic Messages API on 127.0.0.1, for tests with the real SDK.

    with FakeAnthropic([answer("```python ...```"), status(429, retry_after=1)]) as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.url
        ...
    api.requests   # [{"path", "headers", "body"}] as the SDK sent them

Each request takes the next scripted reply (the last one repeats). Replies: `answer` (a streamed
message, server-sent events as the API sends them), `status` (an error status with Anthropic's
JSON error body), `raw` (any bytes), `stall` (headers never come, until the server stops). At most
`max_requests` are answered; later ones get a 418 so a runaway retry loop fails fast.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer(text: str, stop_reason: str = "end_turn", model: str = "test-model") -> dict:
    return {"kind": "answer", "text": text, "stop_reason": stop_reason, "model": model}


def status(code: int, message: str = "scripted error", retry_after: float | None = None,
           error_type: str = "api_error") -> dict:
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()
    return {"kind": "raw", "status": code, "body": body, "content_type": "application/json", "headers": headers}


def raw(body: bytes, code: int = 200, content_type: str = "application/json") -> dict:
    return {"kind": "raw", "status": code, "body": body, "content_type": content_type, "headers": {}}


def stall(mid_answer: bool = False) -> dict:
    """No headers ever (mid_answer=False), or headers and the first event of an answer, then silence."""
    return {"kind": "stall", "mid_answer": mid_answer}


def _events(reply: dict) -> bytes:
    text, stop = reply["text"], reply["stop_reason"]
    chunks = [text[i:i + 200] for i in range(0, len(text), 200)] or [""]
    events = [{"type": "message_start", "message": {
        "id": "msg_test", "type": "message", "role": "assistant", "model": reply["model"], "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}} for c in chunks]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": max(1, len(text) // 4)}},
               {"type": "message_stop"}]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


class FakeAnthropic:
    def __init__(self, script: list[dict], max_requests: int = 12):
        self.script = list(script)
        self.max_requests = max_requests
        self.requests: list[dict] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                with fake._lock:
                    k = len(fake.requests)
                    try:
                        parsed = json.loads(body)
                    except ValueError:
                        parsed = None
                    fake.requests.append({"path": self.path, "headers": {h.lower(): v for h, v in self.headers.items()},
                                          "body": parsed})
                if k >= fake.max_requests:
                    return self._send(418, b'{"type": "error", "error": {"type": "test", "message": "too many requests"}}',
                                      "application/json", {})
                reply = fake.script[min(k, len(fake.script) - 1)]
                if reply["kind"] == "stall":
                    if reply["mid_answer"]:
                        data = _events(answer("never finished"))
                        first = data[: data.index(b"\n\n") + 2]
                        self.send_response(200)
                        self.send_header("content-type", "text/event-stream")
                        self.send_header("content-length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(first)
                        self.wfile.flush()
                    fake._stop.wait(60)
                    return
                if reply["kind"] == "answer":
                    return self._send(200, _events(reply), "text/event-stream", {})
                return self._send(reply["status"], reply["body"], reply["content_type"], reply["headers"])

            def _send(self, code, body, content_type, headers):
                try:
                    self.send_response(code)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "FakeAnthropic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
