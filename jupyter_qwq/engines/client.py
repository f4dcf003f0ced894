"""One async streaming client for every OpenAI-compatible server (vLLM, SGLang, llama.cpp, remote).

Reasoning text is kept apart from the answer text: vLLM sends it as `reasoning`, older vLLM and
SGLang as `reasoning_content`, and servers without a reasoning parser inline it in `<think>` tags.
Leaving the `async for` early (or cancelling the task) closes the stream, which makes the server
abort the request and free its slot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from ..confidence import token_confidence
from ..exceptions import ContinuationRefused, EngineDied, EngineError, EngineUnreachable


@dataclass
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    min_p: float = 0.05
    top_k: int = 0
    max_tokens: int = 1024
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    top_logprobs: int = 0  # alternatives per token whose log-probabilities come back; 0: none

    def request_fields(self) -> dict[str, Any]:
        # Explicit values everywhere: servers fill omitted fields with different defaults
        # (llama-cpp-python's repeat_penalty is 1.1 unless told; vLLM reads repetition_penalty).
        fields: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "repetition_penalty": 1.0,
            "repeat_penalty": 1.0,
        }
        if self.seed is not None:
            fields["seed"] = self.seed
        if self.stop:
            fields["stop"] = list(self.stop)
        if self.top_logprobs:
            fields["logprobs"] = True
            fields["top_logprobs"] = self.top_logprobs
        return fields


@dataclass
class Delta:
    """A piece of a streamed reply."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    confidences: list[float] = field(default_factory=list)  # one per token, when logprobs came


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    served_by: str = ""  # the endpoint that took the request (set by an EngineFleet)


class ThinkSplitter:
    """Splits `<think>…</think>` out of streamed content, even when a tag is cut across chunks."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._thinking = False
        self._pending = ""

    def feed(self, text: str) -> Delta:
        text = self._pending + text
        self._pending = ""
        out = Delta()
        while text:
            tag = self.CLOSE if self._thinking else self.OPEN
            at = text.find(tag)
            if at < 0:
                keep = _partial_suffix(text, tag)
                emitted, self._pending = text[: len(text) - keep], text[len(text) - keep :]
                self._emit(out, emitted)
                break
            self._emit(out, text[:at])
            text = text[at + len(tag) :]
            self._thinking = not self._thinking
        return out

    def flush(self) -> Delta:
        out = Delta()
        self._emit(out, self._pending)
        self._pending = ""
        return out

    def _emit(self, out: Delta, text: str) -> None:
        if self._thinking:
            out.reasoning += text
        else:
            out.content += text


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could start `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class EngineClient:
    """Streams chat completions from one OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        api_key: str = "",
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.refuses_logprobs = False  # the server answered 400 to a request for them
        self._settings = {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
            "timeout": httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=None),
            "limits": httpx.Limits(max_connections=256, max_keepalive_connections=64),
        }
        self._http = httpx.AsyncClient(**self._settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def reset_connections(self) -> None:
        """Forget every pooled connection: after the server restarted they all lead nowhere."""
        stale, self._http = self._http, httpx.AsyncClient(**self._settings)
        await stale.aclose()

    async def __aenter__(self) -> EngineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def list_models(self) -> list[str]:
        """The served model names; also the check that the endpoint answers at all."""
        try:
            response = await self._http.get("/models")
        except httpx.TransportError as error:
            raise EngineUnreachable(
                f"Nothing answers at {self.base_url} ({type(error).__name__}). Start the server, "
                "or check --endpoint (it should end in /v1)."
            ) from None
        _raise_for_status(response, self.base_url)
        try:
            return [item["id"] for item in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EngineError(
                f"{self.base_url}/models did not answer like an OpenAI-compatible server. "
                "Check --endpoint (it should end in /v1)."
            ) from None

    async def resolve_model(self) -> str:
        if not self.model:
            models = await self.list_models()
            if not models:
                raise EngineError(f"{self.base_url} serves no model. Pass --model NAME.")
            self.model = models[0]
        return self.model

    async def stream_chat(
        self, messages: list[dict[str, str]], sampling: Sampling, usage: Usage | None = None,
        continue_turn: bool = False,
    ) -> AsyncIterator[Delta]:
        """Yield the reply as it streams; `usage` counts tokens as they come (the server's own count
        replaces the estimate when it sends one). With `continue_turn` the model goes on writing
        the final assistant message instead of starting a new one (vLLM's continue_final_message;
        ContinuationRefused if the server does not take it)."""
        if self.refuses_logprobs and sampling.top_logprobs:
            sampling = replace(sampling, top_logprobs=0)
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampling.request_fields(),
        }
        if continue_turn:
            body.update(continue_final_message=True, add_generation_prompt=False)
        splitter = ThinkSplitter()
        reported = False
        ended = False  # a [DONE] or a finish_reason arrived: the server meant to stop here
        try:
            async with aconnect_sse(self._http, "POST", "/chat/completions", json=body) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    if _refuses_logprobs(source.response, sampling):
                        self.refuses_logprobs = True  # e.g. a hosted reasoning model: go on without
                        retry = replace(sampling, top_logprobs=0)
                        async for delta in self.stream_chat(messages, retry, usage, continue_turn):
                            yield delta
                        return
                    if continue_turn and source.response.status_code == 400 and (
                            "continue_final_message" in source.response.text):
                        raise ContinuationRefused(f"HTTP 400: {source.response.text[:200].strip()}")
                    _raise_for_status(source.response, self.base_url)
                async for event in source.aiter_sse():
                    if event.data.strip() == "[DONE]":
                        ended = True
                        break
                    chunk = _parse_chunk(event.data)
                    if chunk is None:
                        continue
                    if usage is not None and chunk.get("usage"):
                        usage.prompt_tokens = chunk["usage"].get("prompt_tokens", 0) or 0
                        usage.completion_tokens = chunk["usage"].get("completion_tokens", 0) or 0
                        reported = True
                    for choice in chunk.get("choices") or []:
                        delta = _delta_of(choice, splitter)
                        if usage is not None and not reported and (delta.content or delta.reasoning):
                            # the logprobs count tokens exactly; else about a token a chunk
                            usage.completion_tokens += len(delta.confidences) or 1
                        ended = ended or bool(delta.finish_reason)
                        if delta.content or delta.reasoning or delta.finish_reason or delta.confidences:
                            yield delta
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise EngineUnreachable(
                f"Nothing answers at {self.base_url} ({type(error).__name__}). Start the server, "
                "or check --endpoint."
            ) from None
        except httpx.ReadTimeout:
            raise EngineDied(
                f"The server at {self.base_url} sent nothing for {self._http.timeout.read:.0f} s. "
                "It may be overloaded: use fewer branches, or raise request_timeout."
            ) from None
        except httpx.TransportError as error:  # read, write, protocol: the connection broke
            raise EngineDied(
                f"The server at {self.base_url} closed the stream mid-reply ({type(error).__name__})."
                " It may have crashed or run out of memory: check the server's log."
            ) from None
        if not ended:
            raise EngineDied(
                f"The server at {self.base_url} closed the stream mid-reply. It may have crashed "
                "or run out of memory: check the server's log."
            )
        tail = splitter.flush()
        if tail.content or tail.reasoning:
            yield tail


def _parse_chunk(data: str) -> dict[str, Any] | None:
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk:
        message = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
        if "EngineCore encountered" in str(message) or "EngineDeadError" in str(message):
            # vLLM's engine process died under the request: the server is going down too
            raise EngineDied(f"The server's engine died mid-reply: {message}")
        raise EngineError(f"The server reported an error mid-stream: {message}")
    return chunk


def _delta_of(choice: dict[str, Any], splitter: ThinkSplitter) -> Delta:
    raw = choice.get("delta") or {}
    reasoning = raw.get("reasoning") or raw.get("reasoning_content") or ""
    split = splitter.feed(raw.get("content") or "")
    return Delta(
        content=split.content,
        reasoning=reasoning + split.reasoning,
        finish_reason=choice.get("finish_reason"),
        confidences=_confidences(choice.get("logprobs")),
    )


def _confidences(logprobs: Any) -> list[float]:
    """Each token's confidence, from the OpenAI `logprobs.content[*].top_logprobs` lists."""
    if not isinstance(logprobs, dict):
        return []
    found = []
    for entry in logprobs.get("content") or []:
        top = entry.get("top_logprobs") if isinstance(entry, dict) else None
        values = [t["logprob"] for t in top or [] if isinstance(t, dict) and "logprob" in t]
        if values:
            found.append(token_confidence(values))
    return found


def _refuses_logprobs(response: httpx.Response, sampling: Sampling) -> bool:
    return bool(sampling.top_logprobs) and response.status_code == 400 and "logprob" in response.text.lower()


def _raise_for_status(response: httpx.Response, base_url: str) -> None:
    if response.status_code < 400:
        return
    detail = response.text[:300].strip()
    if response.status_code in (401, 403):
        raise EngineError(f"{base_url} refused the API key (HTTP {response.status_code}). Pass the right --api-key.")
    if response.status_code == 404:
        raise EngineError(
            f"{base_url} has no such route or model (HTTP 404: {detail}). Check --endpoint "
            "(it should end in /v1) and --model."
        )
    raise EngineError(f"{base_url} answered HTTP {response.status_code}: {detail}")
