"""A loopback HTTP server speaking OpenAI's chat-completions protocol (``POST /v1/chat/completions``), as a
local vLLM or the OpenAI API does: bearer-token auth, JSON request, ``chat.completion`` response with usage.
Tests point ``judge.base_url`` at it; the ``openai`` client is not patched.

Its judging is a real (simple) rule: it reads the generated answer and the ground truth out of the prompt and
scores 9 if they share a content word, else 2. Fault injection, per request in arrival order (``faults``):
``400`` (a bad request), ``429`` / ``500`` (with a short ``retry-after-ms``), ``slow`` (answers after ``slow_s``,
past the client's timeout), ``malformed`` (a reply without a parseable score). ``latency_s`` delays every reply,
as a real server's inference does, so that concurrent clients overlap measurably (``max_active``).

Reply styles, per request in arrival order (``styles``; ``json`` when empty), are the ways real judge models
answer (``STYLES``). JSON mode is served as OpenAI serves it: ``response_format={"type": "json_object"}`` gets
a JSON reply whatever the style, and a 400 unless the messages mention JSON; ``reject_response_format`` makes
the server answer any request carrying ``response_format`` with a 400 naming it, as some endpoints do.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer

STYLES = {
    "json": lambda s, why: json.dumps({"Factuality Score": s, "Justification": why}),
    "fenced": lambda s, why: f'```json\n{{\n  "Factuality Score": {s},\n  "Justification": "{why}"\n}}\n```',
    "plain": lambda s, why: f"Factuality Score: {s}\nJustification: {why}",
    "markdown": lambda s, why: f"**Factuality Score:** {s}/10\n\n**Justification:** {why}",
    "dash": lambda s, why: f"__Factuality Score__ - {s}\n*Justification*: {why}",
}


def review_reply(prompt: str) -> str:
    """LLaVA-Bench's reviewer protocol (eval/llava_bench.py): two scores on the first line, the reference
    answer (assistant 1) always 8, ours 7 if it shares a content word with the reference, else 3."""
    first, second = re.findall(r"^\[\w+ [12]\]\n(.*?)\n\n\[End of", prompt, re.MULTILINE | re.DOTALL)
    words = lambda s: {w for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 3}  # noqa: E731
    close = bool(words(first) & words(second))
    return f"8 {7 if close else 3}\nAssistant 2 is {'close to' if close else 'far from'} the reference."


def judge_reply(prompt: str, style: str = "json") -> str:
    if "[End of " in prompt:
        return review_reply(prompt)
    answer = re.search(r"^Generated answer: (.*)$", prompt, re.MULTILINE).group(1)
    truth = re.search(r"^Ground truth: (.*)$", prompt, re.MULTILINE).group(1)
    words = lambda s: {w for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 3}  # noqa: E731
    score = 9 if words(answer) & words(truth) else 2
    return STYLES[style](score, "shared words" if score > 5 else "no overlap")


class JudgeServer(LoopbackServer):
    url_path = "/v1"

    def __init__(self, api_key: str, slow_s: float = 2.0):
        self.api_key, self.slow_s = api_key, slow_s
        self.latency_s = 0.0
        self.faults: deque[str] = deque()
        self.styles: deque[str] = deque()
        self.reject_response_format = False
        # every request that reached the handler: {status, fault, body, auth_ok, received, replied} (monotonic s)
        self.requests: list[dict] = []
        self.active = self.max_active = 0
        self._lock = threading.Lock()
        self._start_server()

    def _reply(self, body: dict, fault: str | None, style: str) -> tuple[int, dict]:
        """Status and payload of an authorised request to the right route."""
        if fault in ("400", "429", "500"):
            return int(fault), {"error": {"message": "injected", "type": "server_error"}}
        json_mode = body.get("response_format", {}).get("type") == "json_object"
        if json_mode and (self.reject_response_format or
                          "json" not in json.dumps(body["messages"]).lower()):
            why = ("response_format is not supported by this model" if self.reject_response_format else
                   "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                   "'json_object'.")
            return 400, {"error": {"message": why, "type": "invalid_request_error", "param": "response_format"}}
        time.sleep(self.slow_s if fault == "slow" else self.latency_s)
        prompt = body["messages"][-1]["content"]
        content = "I think it is fine." if fault == "malformed" else judge_reply(prompt, "json" if json_mode else style)
        return 200, {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                     "created": int(time.time()), "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}],
                     "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 20,
                               "total_tokens": len(prompt.split()) + 20}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def do_POST(self):
                received = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth_ok = self.headers.get("Authorization") == f"Bearer {server.api_key}"
                with server._lock:
                    fault = server.faults.popleft() if server.faults else None
                    style = server.styles.popleft() if server.styles else "json"
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    headers = {}
                    if self.path != "/v1/chat/completions":
                        status, payload = 404, {"error": {"message": f"no route {self.path}"}}
                    elif not auth_ok:
                        status, payload = 401, {"error": {"message": "invalid api key",
                                                          "type": "invalid_request_error"}}
                    else:
                        status, payload = server._reply(body, fault, style)
                        if status in (429, 500):
                            headers = {"retry-after-ms": "20"}
                    with server._lock:  # recorded before the reply leaves: a client never sees it first
                        server.requests.append({"status": status, "fault": fault, "body": body, "auth_ok": auth_ok,
                                                "received": received, "replied": time.monotonic()})
                    self._send(status, payload, headers)
                finally:
                    with server._lock:
                        server.active -= 1

        return Handler
