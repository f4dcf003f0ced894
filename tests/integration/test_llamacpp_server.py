"""The embedded llama.cpp server as jupyter_qwq starts it (jupyter_qwq.engines.llamacpp_server),
on the real default model: no weight repacking, log-probabilities, continuing a turn, aborts."""

from __future__ import annotations

import asyncio
import json
import platform
import subprocess
import sys
from pathlib import Path

import httpx
import llama_cpp
import pytest

from jupyter_qwq.engines.cpu_features import (cpu_flags, llama_cpp_features, missing_instructions,
                                              unsupported_build_message)
from jupyter_qwq.engines.llamacpp_server import INFO_ROUTE
from jupyter_qwq.engines.models import default_model_path
from jupyter_qwq.engines.llamacpp import LlamaCppServer

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(300)]

SYSTEM = "You are a concise assistant."
QUESTION = "Name the capital of France in one word, then one fact about it."


@pytest.fixture(scope="module")
def model() -> Path:
    return default_model_path()


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    running = LlamaCppServer(model, n_ctx=2048, n_threads=2, log_dir=tmp_path_factory.mktemp("llamacpp"))
    asyncio.run(running.start())
    try:
        yield running
    finally:
        running.stop()


def client(server: LlamaCppServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.root_url, timeout=120,
                             headers={"Authorization": f"Bearer {server.api_key}"})


def model_buffers(log: str) -> list[str]:
    """The buffer types llama.cpp put the model's weights in, from its load log."""
    return [line.split("model buffer size")[0].split(":")[-1].strip()
            for line in log.splitlines() if "model buffer size" in line]


def compiled_features() -> set[str]:
    return llama_cpp_features(llama_cpp.llama_print_system_info().decode())


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the portable x86-64 build")
def test_the_installed_build_runs_on_any_x86_64_cpu_with_avx2():
    """The README builds llama.cpp with GGML_NATIVE=OFF. Built natively on a machine with AVX-512
    or AMX, it dies with SIGILL on one without (as a CI run on an AMD EPYC did, 2026-12-01)."""
    compiled = compiled_features()
    assert "AVX2" in compiled and "FMA" in compiled
    foreign = compiled & {"AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "AVX_VNNI"}
    assert not foreign, f"llama-cpp-python was built natively ({sorted(foreign)}): follow the README"
    assert missing_instructions(compiled, cpu_flags()) == []


def test_the_launcher_refuses_a_build_for_instructions_the_cpu_lacks(model):
    # This machine's CPU has what the build needs; the launcher is told of a CPU before AVX.
    pretend = ("import jupyter_qwq.engines.cpu_features as f; f.cpu_flags = lambda: {'sse2', 'pni'}\n"
               "from jupyter_qwq.engines.llamacpp_server import main; main()")
    done = subprocess.run([sys.executable, "-c", pretend, "--model", str(model), "--port", "9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "was compiled for instructions this CPU does not have (AVX, AVX2, BMI2, F16C, FMA" in done.stderr
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall' in done.stderr
    assert "llama_model_load" not in done.stderr  # refused before the model is loaded


async def test_the_model_is_loaded_without_extra_buffer_types_and_serves_its_first_request(server):
    async with client(server) as http:
        info = (await http.get(INFO_ROUTE)).json()
        reply = await http.post("/v1/chat/completions", json={
            "model": server.model_name, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "What is 2+3?"}]})
    assert info["use_extra_bufts"] is False  # read back from the model llama.cpp loaded
    log = server.log_path.read_text(errors="replace")
    assert "extra buffer types (weight repacking) off" in log
    assert model_buffers(log) and all(b in ("CPU", "CPU_Mapped") for b in model_buffers(log)), log
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"].strip()
    assert server.alive  # the first request is where AMX repacking crashed the stock server


async def test_with_extra_buffer_types_on_llamacpp_repacks_weights(model, tmp_path):
    """The contrast that shows the check above can fail: the same model, repacking allowed."""
    async with LlamaCppServer(model, n_ctx=512, extra_buffer_types=True, log_dir=tmp_path) as repacking:
        async with client(repacking) as http:
            info = (await http.get(INFO_ROUTE)).json()
        log = repacking.log_path.read_text(errors="replace")
    assert info["use_extra_bufts"] is True
    if (cpu_flags() or set()) & {"avx2", "amx_tile"}:  # llama.cpp repacks q4_K for AVX2, everything for AMX
        assert any("REPACK" in b or "AMX" in b for b in model_buffers(log)), model_buffers(log)


async def test_logprobs_are_those_llama_cpp_computes_itself(server, model):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    async with client(server) as http:
        reply = (await http.post("/v1/chat/completions", json={
            "model": server.model_name, "messages": messages, "max_tokens": 12, "temperature": 0,
            "logprobs": True, "top_logprobs": 5})).json()
    ours = reply["choices"][0]["logprobs"]["content"]
    # llama-cpp-python's own way: keep every position's logits, then rank the whole vocabulary.
    # In this process: a build for another CPU must fail this test, not kill the test run.
    missing = missing_instructions(compiled_features(), cpu_flags())
    assert not missing, unsupported_build_message(missing, llama_cpp.__version__)
    reference = llama_cpp.Llama(str(model), n_ctx=2048, n_threads=2, logits_all=True, verbose=False)
    try:
        theirs = reference.create_chat_completion(messages=messages, max_tokens=12, temperature=0,
                                                   logprobs=True, top_logprobs=5)
    finally:
        reference.close()
    theirs = theirs["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in ours[: len(theirs)]] == [e["token"] for e in theirs]
    for mine, other in zip(ours, theirs):
        assert mine["logprob"] == pytest.approx(other["logprob"], abs=0.1)
        assert len(mine["top_logprobs"]) == 5
        shared = {t["token"] for t in mine["top_logprobs"]} & {t["token"] for t in other["top_logprobs"]}
        assert len(shared) >= 4


async def test_continue_final_message_goes_on_writing_the_same_turn(server):
    partial = "The capital of France is"
    async with client(server) as http:
        continued = (await http.post("/v1/chat/completions", json={
            "model": server.model_name, "max_tokens": 16, "temperature": 0,
            "continue_final_message": True, "add_generation_prompt": False,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
                         {"role": "assistant", "content": partial}]})).json()
        # The same prompt written out by hand in the model's ChatML, on the plain completions route
        prompt = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
                  f"<|im_start|>assistant\n{partial}")
        raw = (await http.post("/v1/completions", json={
            "model": server.model_name, "prompt": prompt, "max_tokens": 16, "temperature": 0,
            "repeat_penalty": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
            "stop": ["<|im_end|>"]})).json()
    text = continued["choices"][0]["message"]["content"]
    assert text == raw["choices"][0]["text"]
    assert "<|im_start|>" not in text and not text.lstrip().lower().startswith("the capital")


async def test_a_client_that_leaves_stops_the_generation(server):
    async with client(server) as http:
        async with http.stream("POST", "/v1/chat/completions", json={
            "model": server.model_name, "max_tokens": 400, "temperature": 0.8, "seed": 1,
            "stream": True, "messages": [{"role": "user", "content": "Write a long story."}],
        }) as stream:
            events = 0
            async for line in stream.aiter_lines():
                if line.startswith("data: {"):
                    events += 1
                    if events == 5:
                        break  # leaving closes the connection
        after = await http.post("/v1/chat/completions", json={
            "model": server.model_name, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hi."}]})
    assert after.status_code == 200
    stopped = [line for line in server.log_tail(200).splitlines() if "the client left" in line]
    assert stopped, server.log_tail(40)
    assert int(stopped[-1].split("stopped after ")[1].split()[0]) < 100  # not all 400 tokens


async def test_bad_requests_get_a_clear_400(server):
    async with client(server) as http:
        empty = await http.post("/v1/chat/completions", json={"model": server.model_name, "messages": []})
        not_continuable = await http.post("/v1/chat/completions", json={
            "model": server.model_name, "continue_final_message": True,
            "messages": [{"role": "user", "content": "hi"}]})
        streamed = await http.post("/v1/chat/completions", json={
            "model": server.model_name, "stream": True, "logprobs": True, "top_logprobs": 99,
            "messages": [{"role": "user", "content": "hi"}]})
    assert empty.status_code == 400 and "messages" in empty.json()["error"]["message"]
    assert not_continuable.status_code == 400
    assert "final assistant message" in not_continuable.json()["error"]["message"]
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert events and "top_logprobs" in events[-1]["error"]["message"]
