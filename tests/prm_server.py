"""A scripted process reward model: vLLM's `POST /pooling` for token_classify, as engines.md §3
documents it, and nothing more.

The request's chat form is checked (model, task, system/user/assistant messages); the assistant
content's steps are the text between `<extra_0>` tags; `reward(step_text)` gives each step's
probability of being good, returned as one `[p_bad, p_good]` row per tag. A prompt longer than
`context_chars` is refused with HTTP 400 and vLLM's wording, so the client's cut can be tested.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from scripted_server import LocalServer, QuietHandler

TAG = "<extra_0>"


@dataclass
class PrmServer(LocalServer):
    reward: Callable[[str], float]
    model: str = "Qwen/Qwen2.5-Math-PRM-7B"
    context_chars: int = 1_000_000
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(body)
        if body.get("model") != self.model:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        if body.get("task", "token_classify") != "token_classify":
            return 400, {"error": {"message": f"Unsupported task: {body.get('task')!r}"}}
        roles = [m.get("role") for m in body.get("messages", [])]
        if roles != ["system", "user", "assistant"]:
            return 400, {"error": {"message": f"expected system, user, assistant messages, got {roles}"}}
        prompt = "".join(m["content"] for m in body["messages"])
        if len(prompt) > self.context_chars:
            return 400, {"error": {"message": "This model's maximum context length is 4096 tokens. "
                                              "However, you requested 5000 tokens."}}
        steps = body["messages"][2]["content"].split(TAG)[:-1]
        rows = [[round(1 - p, 6), round(p, 6)] for p in (self.reward(s) for s in steps)]
        return 200, {"id": "pool-1", "object": "list", "created": int(time.time()), "model": self.model,
                     "data": [{"index": 0, "object": "pooling", "data": rows}],
                     "usage": {"prompt_tokens": len(prompt) // 4, "total_tokens": len(prompt) // 4}}


def _handler_for(server: PrmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            self._json(*(server.respond(body) if self.path == "/pooling"
                         else (404, {"error": {"message": "not found"}})))

    return Handler
