"""The embedded llama.cpp server: llama-cpp-python's own server, started the way jupyter_qwq needs.

    python -m jupyter_qwq.engines.llamacpp_server --model M.gguf [llama_cpp.server flags]
                                                  [--extra_buffer_types]

It runs llama-cpp-python's FastAPI app (every route, setting and lock of ``llama_cpp.server``),
with three changes the stock ``python -m llama_cpp.server`` has no setting for:

1. **No weight repacking into extra buffer types** unless ``--extra_buffer_types`` is given.
   On CPUs with AMX (Intel Sapphire Rapids and later) llama.cpp's AMX repacking crashes the
   server on its first request (a general protection fault at ``ldtilecfg`` in
   ``ggml_backend_amx_mul_mat``); elsewhere it only repacks a few tensors (``CPU_REPACK``).
   llama.cpp's model parameter ``use_extra_bufts`` turns it off, on every CPU alike.
2. **Log-probabilities at no real cost.** The stock server returns them only for a model loaded
   with ``logits_all`` (the logits of every prompt token kept: context × vocabulary floats) and
   then sorts the whole vocabulary in Python for every token. Here the sampler reads each
   generated token's logits once, in place, and keeps the top k.
3. **Continuing the assistant's own turn**, as vLLM does with ``continue_final_message``: the
   chat template is applied, and the final assistant message is left open for the model to go
   on writing. Tool-integrated reasoning puts a code block's output there.

``/v1/chat/completions`` is this module's own route; it speaks the OpenAI format (streamed or
not), takes the library's lock, and stops generating when the client goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
from fastapi import Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .cpu_features import cpu_flags, llama_cpp_features, missing_instructions, unsupported_build_message

EXTRA_BUFFER_TYPES_FLAG = "--extra_buffer_types"
INFO_ROUTE = "/jupyter_qwq/info"
MAX_TOP_LOGPROBS = 20


def _extra_buffer_types(enabled: bool) -> None:
    """Make every model this process loads use (or not) llama.cpp's extra buffer types.

    llama-cpp-python 0.3.36 fills its model parameters from ``llama_model_default_params()``
    and has no argument for ``use_extra_bufts``: the defaults it reads are where to set it.
    """
    import llama_cpp.llama_cpp as capi

    library_defaults = capi.llama_model_default_params

    def model_defaults():
        params = library_defaults()
        params.use_extra_bufts = enabled
        return params

    capi.llama_model_default_params = model_defaults


class TokenLog:
    """The chosen token and the top-n alternatives, as log-probabilities, of each generated token."""

    def __init__(self, llama: Any, top_n: int) -> None:
        self.llama = llama
        self.top_n = top_n
        self._entries: list[dict[str, Any]] = []
        self._logits: np.ndarray | None = None
        self._logsumexp = 0.0

    def before_sampling(self, logits: np.ndarray) -> None:
        peak = float(logits.max())
        self._logsumexp = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
        self._logits = logits

    def after_sampling(self, token: int) -> None:
        logits, self._logits = self._logits, None
        if logits is None:
            return
        top: list[dict[str, Any]] = []
        if self.top_n:
            best = np.argpartition(logits, -self.top_n)[-self.top_n:]
            best = best[np.argsort(-logits[best])]
            top = [self._entry(int(i), logits) for i in best]
        self._entries.append({**self._entry(token, logits), "top_logprobs": top})

    def take(self) -> list[dict[str, Any]]:
        """The entries logged since the last call."""
        entries, self._entries = self._entries, []
        return entries

    def _entry(self, token: int, logits: np.ndarray) -> dict[str, Any]:
        text = self.llama.detokenize([token], special=True).decode("utf-8", "replace")
        return {"token": text, "logprob": round(float(logits[token]) - self._logsumexp, 5)}


def _confident_llama_class():
    import llama_cpp

    class ConfidentLlama(llama_cpp.Llama):
        """A Llama that logs log-probabilities while ``token_log`` is set (by the chat route)."""

        token_log: TokenLog | None = None

        def sample(self, *args: Any, idx: int | None = None, **kwargs: Any) -> int:
            log = self.token_log
            if log is not None:
                row = idx - self.n_tokens if idx is not None else -1
                pointer = self._ctx.get_logits_ith(row)
                log.before_sampling(np.ctypeslib.as_array(pointer, shape=(self.n_vocab(),)))
            token = super().sample(*args, idx=idx, **kwargs)
            if log is not None:
                log.after_sampling(token)
            return token

    return ConfidentLlama


# -- the chat route ---------------------------------------------------------------------------


class RequestError(ValueError):
    """A request this server cannot serve; its message goes back to the client as HTTP 400."""


def render_prompt(llama: Any, messages: list[dict[str, Any]], add_generation_prompt: bool,
                  continue_final_message: bool) -> tuple[str, list[str]]:
    """The prompt text of a chat, by the model's own chat template, and the template's stops."""
    from llama_cpp import llama_chat_format

    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    template = llama.metadata.get("tokenizer.chat_template") or llama_chat_format.CHATML_CHAT_TEMPLATE
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
        add_generation_prompt=add_generation_prompt and not continue_final_message,
    )
    rendered = formatter(messages=messages)
    prompt = rendered.prompt
    if continue_final_message:
        final = messages[-1]
        content = final.get("content")
        if final.get("role") != "assistant" or not isinstance(content, str) or not content:
            raise RequestError("continue_final_message needs a final assistant message with text")
        # Leave the final message open: cut what the template wrote after it (its end of turn).
        end = prompt.rfind(content)
        if end < 0:
            raise RequestError("the chat template changed the final message; it cannot be continued")
        prompt = prompt[: end + len(content)]
    return prompt, list(rendered.stop or [])


def _token_text(llama: Any, token: int) -> str:
    return llama.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""


def sampling_arguments(body: dict[str, Any], template_stops: list[str]) -> dict[str, Any]:
    """create_completion's arguments for an OpenAI request body; penalties off unless asked."""
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    top_k = body.get("top_k")
    return {
        "max_tokens": max_tokens if max_tokens else None,
        "temperature": float(body.get("temperature", 1.0)),
        "top_p": float(body.get("top_p", 1.0)),
        "min_p": float(body.get("min_p", 0.0)),
        "top_k": int(top_k) if top_k and int(top_k) > 0 else 0,
        "seed": body.get("seed"),
        "stop": stop + [s for s in template_stops if s and s not in stop],
        "repeat_penalty": float(body.get("repetition_penalty", body.get("repeat_penalty", 1.0))),
        "presence_penalty": float(body.get("presence_penalty", 0.0)),
        "frequency_penalty": float(body.get("frequency_penalty", 0.0)),
    }


def _top_logprobs(body: dict[str, Any]) -> int | None:
    """How many alternatives to return per token; None when no log-probabilities are asked."""
    if not body.get("logprobs"):
        return None
    count = int(body.get("top_logprobs") or 0)
    if not 0 <= count <= MAX_TOP_LOGPROBS:
        raise RequestError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")
    return count


class ChatStream:
    """Turns create_completion's text chunks into chat.completion chunks, with logprobs."""

    def __init__(self, model: str, log: TokenLog | None) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.log = log
        self.completion_tokens = 0
        self._first = True

    def chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": text}
        if self._first:
            delta = {"role": "assistant", **delta}
            self._first = False
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        if self.log is not None:
            entries = self.log.take()
            self.completion_tokens += len(entries)
            choice["logprobs"] = {"content": entries}
        return self._wrap("chat.completion.chunk", [choice])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return {**self._wrap("chat.completion.chunk", []), "usage": usage}

    def _wrap(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "choices": choices}


def _completion_chunks(llama: Any, prompt: str, sampling: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return llama.create_completion(prompt=prompt, stream=True, **sampling)


async def _generate(request: Request, body: dict[str, Any], proxy_context: Any) -> AsyncIterator[dict]:
    """The chat chunks of one request, generated under the library's model lock."""
    from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

    async with proxy_context() as proxy:
        llama = proxy(body.get("model"))
        prompt, stops = render_prompt(
            llama, body.get("messages"), bool(body.get("add_generation_prompt", True)),
            bool(body.get("continue_final_message", False)),
        )
        top_n = _top_logprobs(body)
        log = TokenLog(llama, top_n) if top_n is not None else None
        stream = ChatStream(body.get("model") or llama.model_path, log)
        llama.token_log = log
        chunks = await run_in_threadpool(_completion_chunks, llama, prompt, sampling_arguments(body, stops))
        counted, finished = 0, False
        try:
            async for piece in iterate_in_threadpool(chunks):
                choice = piece["choices"][0]
                counted += choice.get("finish_reason") is None  # the last chunk carries no token
                yield stream.chunk(choice.get("text") or "", choice.get("finish_reason"))
                if await request.is_disconnected():
                    return
            finished = True
            prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
            completion_tokens = stream.completion_tokens if log is not None else counted
            yield stream.usage_chunk(prompt_tokens, completion_tokens)
        finally:
            chunks.close()  # stops generating (the client left, or an error)
            llama.token_log = None
            if not finished:
                print(f"jupyter_qwq: {stream.id} stopped after {counted} chunks: the client left",
                      file=sys.stderr, flush=True)


def add_chat_route(app: Any) -> None:
    """Serve /v1/chat/completions here, ahead of the library's route of the same path."""
    from llama_cpp.server import app as server_app

    proxy_context = contextlib.asynccontextmanager(server_app.get_llama_proxy)

    async def chat_completions(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        if body.get("stream"):
            return StreamingResponse(_sse(request, body, proxy_context), media_type="text/event-stream")
        try:
            return JSONResponse(await _complete(request, body, proxy_context))
        except RequestError as error:
            return _error(400, str(error))
        except ValueError as error:  # llama-cpp-python's own checks, e.g. the context window
            return _error(400, str(error))

    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"],
                      dependencies=[Depends(server_app.authenticate)])
    app.router.routes.insert(0, app.router.routes.pop())  # first match wins


async def _sse(request: Request, body: dict[str, Any], proxy_context: Any) -> AsyncIterator[str]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    try:
        async for chunk in _generate(request, body, proxy_context):
            if chunk["choices"] or include_usage:
                yield f"data: {json.dumps(chunk)}\n\n"
    except ValueError as error:  # RequestError, or llama-cpp-python refusing the request
        yield f"data: {json.dumps({'error': {'message': str(error), 'code': 400}})}\n\n"
    yield "data: [DONE]\n\n"


async def _complete(request: Request, body: dict[str, Any], proxy_context: Any) -> dict[str, Any]:
    text, finish, logprobs, usage, head = [], None, [], None, None
    async for chunk in _generate(request, body, proxy_context):
        head = head or chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            text.append(choice["delta"].get("content") or "")
            finish = choice.get("finish_reason") or finish
            logprobs += (choice.get("logprobs") or {}).get("content", [])
    message = {"role": "assistant", "content": "".join(text)}
    choice = {"index": 0, "message": message, "finish_reason": finish,
              "logprobs": {"content": logprobs} if body.get("logprobs") else None}
    return {**(head or {}), "object": "chat.completion", "choices": [choice], "usage": usage}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": status}}, status_code=status)


# -- the process --------------------------------------------------------------------------------


def build_app(server_settings: Any, model_settings: Any, extra_buffer_types: bool) -> Any:
    import llama_cpp
    from llama_cpp.server import app as server_app
    from llama_cpp.server.app import create_app

    _extra_buffer_types(extra_buffer_types)
    llama_cpp.Llama = _confident_llama_class()  # the class the library's model loader builds
    app = create_app(server_settings=server_settings, model_settings=[model_settings])
    add_chat_route(app)

    async def info() -> dict[str, Any]:
        async with contextlib.asynccontextmanager(server_app.get_llama_proxy)() as proxy:
            llama = proxy()
            return {"use_extra_bufts": bool(llama.model_params.use_extra_bufts),
                    "model": llama.model_path, "n_ctx": llama.n_ctx(), "pid": os.getpid()}

    app.add_api_route(INFO_ROUTE, info, methods=["GET"], dependencies=[Depends(server_app.authenticate)])
    return app


def refuse_a_build_for_another_cpu() -> None:
    """Exit with what to do, instead of dying with SIGILL, if llama.cpp was built for another CPU."""
    import llama_cpp

    compiled = llama_cpp_features(llama_cpp.llama_print_system_info().decode(errors="replace"))
    missing = missing_instructions(compiled, cpu_flags())
    if missing:
        sys.exit(unsupported_build_message(missing, llama_cpp.__version__))


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    parser = argparse.ArgumentParser(prog="python -m jupyter_qwq.engines.llamacpp_server",
                                     description=__doc__.splitlines()[0])
    add_args_from_model(parser, Settings)
    parser.add_argument(EXTRA_BUFFER_TYPES_FLAG, action="store_true",
                        help="let llama.cpp repack weights into extra buffer types (AMX, CPU_REPACK); "
                             "crashes on CPUs with AMX")
    args = parser.parse_args(argv)
    refuse_a_build_for_another_cpu()
    server_settings = parse_model_from_args(ServerSettings, args)
    model_settings = parse_model_from_args(ModelSettings, args)
    state = "on" if args.extra_buffer_types else "off"
    print(f"jupyter_qwq: extra buffer types (weight repacking) {state}", file=sys.stderr, flush=True)
    app = build_app(server_settings, model_settings, args.extra_buffer_types)
    uvicorn.run(app, host=server_settings.host, port=server_settings.port)


if __name__ == "__main__":
    main()
