"""A real OpenAI-compatible HTTP server that streams scripted replies, for deterministic tests.

A script is a function of the request body returning a `Reply`: the text to stream, in chunks,
with a delay between them. The server records every request and how each stream ended
(completed, aborted by the client, or cut by the server on purpose), so tests can check what the
solver sent and that cancelled streams were really closed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = ""
    reasoning: str = ""
    chunk_chars: int = 4
    delay: float = 0.0  # seconds between chunks
    die_after: int | None = None  # close the connection after this many chunks, like a crash
    reasoning_field: str = "reasoning"  # vLLM >= 0.10; older vLLM and SGLang use reasoning_content
    confidence: float | None = None  # if logprobs are asked: every token's top-k logprobs = -this
    error_after: int | None = None  # send an error event (error_message) after this many chunks
    error_message: str = "EngineCore encountered an issue. See stack trace (above) for the root cause."


Script = Callable[[dict[str, Any]], Reply]


class _BackloggedHTTPServer(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a sixth connection opened at once has its SYN
    # dropped and retried by the kernel a second later. Engines listen with thousands (uvicorn
    # 2048), and a solve opens one connection per branch at the same moment.
    request_queue_size = 1024


class LocalServer:
    """A threaded HTTP server on a free local port, for the duration of a test (or a `with`)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = _BackloggedHTTPServer(("127.0.0.1", 0), self.handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class StreamRecord:
    body: dict[str, Any]
    outcome: str = "open"  # open | completed | aborted | died | refused
    chunks_sent: int = 0


@dataclass
class ScriptedServer(LocalServer):
    script: Script
    api_key: str = ""
    model: str = "scripted-model"
    refuse_logprobs: bool = False  # answer 400 to a request that asks for them, as some hosts do
    refuse_continue: bool = False  # answer 400 to continue_final_message, as OpenAI's API does
    streams: list[StreamRecord] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def options(self, **more: Any) -> dict[str, Any]:
        """Solve options that point a solve at this server (seed 0), with `more` over them."""
        return {"engine": "endpoint", "endpoint": self.base_url, "api_key": self.api_key, "seed": 0,
                **more}

    def open_streams(self) -> int:
        with self._lock:
            return sum(s.outcome == "open" for s in self.streams)

    def outcomes(self) -> list[str]:
        with self._lock:
            return [s.outcome for s in self.streams]


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, no log lines, and a JSON answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _authorised(self) -> bool:
            if not server.api_key or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._json(401, {"error": {"message": "invalid api key"}})
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": "not found"}})
                return
            record = StreamRecord(body=body)
            with server._lock:
                server.streams.append(record)
            if server.refuse_continue and "continue_final_message" in body:
                record.outcome = "refused"
                self._json(400, {"error": {"message": "Unrecognized request argument supplied: "
                                                      "continue_final_message"}})
                return
            if server.refuse_logprobs and body.get("logprobs"):
                record.outcome = "refused"
                self._json(400, {"error": {"message": "logprobs are not supported for this model"}})
                return
            self._stream(server.script(body), record)

        def _stream(self, reply: Reply, record: StreamRecord) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            pieces = [(reply.reasoning_field, p) for p in _chunks(reply.reasoning, reply.chunk_chars)]
            pieces += [("content", p) for p in _chunks(_apply_stop(reply.text, record.body), reply.chunk_chars)]
            try:
                for number, (name, piece) in enumerate(pieces):
                    if reply.die_after is not None and number >= reply.die_after:
                        record.outcome = "died"
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if reply.error_after is not None and number >= reply.error_after:
                        self._event({"error": {"message": reply.error_message, "code": 500}})
                        self.wfile.write(b"data: [DONE]\n\n")
                        self.wfile.flush()
                        record.outcome = "completed"
                        return
                    if reply.delay:
                        time.sleep(reply.delay)
                    choice = {"index": 0, "delta": {name: piece}, "finish_reason": None}
                    if record.body.get("logprobs") and reply.confidence is not None:
                        top = [{"token": "t", "logprob": -reply.confidence}] * int(record.body.get("top_logprobs") or 1)
                        choice["logprobs"] = {"content": [{"token": piece, "logprob": -reply.confidence,
                                                           "top_logprobs": top}]}
                    self._event({"choices": [choice]})
                    record.chunks_sent += 1
                self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._event({"choices": [], "usage": {"prompt_tokens": _prompt_tokens(record.body),
                                                      "completion_tokens": len(pieces)}})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                record.outcome = "completed"
            except (BrokenPipeError, ConnectionResetError):
                record.outcome = "aborted"

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

    return Handler


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _apply_stop(text: str, body: dict[str, Any]) -> str:
    for stop in body.get("stop") or []:
        at = text.find(stop)
        if at >= 0:
            text = text[:at]
    return text


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(len(m.get("content", "").split()) for m in body.get("messages", []))


def branch_and_round(body: dict[str, Any]) -> tuple[int, int]:
    """With base seed 0, branch i's round r (from 1) is sent seed i + 1000 * (r - 1)."""
    seed = int(body.get("seed", 0))
    return seed % 1000, seed // 1000 + 1


def last_output(body: dict[str, Any]) -> str:
    """The code output the solver sent back last (inside the ```output fence), or ''.

    It is in the open assistant turn (the continue protocol) or in a user message (chat)."""
    for message in reversed(body.get("messages", [])):
        found = re.findall(r"```output\n(.*?)\n```", message["content"], re.S)
        if found:
            return found[-1]
        if message["role"] == "user":
            return ""
    return ""


def code_then_box(body: dict[str, Any]) -> Reply:
    """Round 1 writes code (and more text after it, which the solver cuts off); round 2 boxes
    whatever the kernel printed."""
    _, round_ = branch_and_round(body)
    if round_ == 1:
        return Reply("Let me compute.\n```python\nprint(6 * 7)\n```\nThe output will show it.")
    return Reply(f"The program printed {last_output(body)}, so the answer is \\boxed{{{last_output(body)}}}.")
