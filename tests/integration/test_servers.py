"""Managed servers and the default model.

The ``llamacpp`` tests run the real llama-cpp-python server on the real default model
(Qwen2.5-Coder-0.5B GGUF, joined once per session into a temporary cache). vLLM cannot run
here, so its tests check the command it would run; the lifecycle code is the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jupyter_qwq.engines import models
from jupyter_qwq.engines.llamacpp import LlamaCppServer
from jupyter_qwq.engines.managed import (
    cleanup_stale_servers,
    pick_free_port,
    running_servers,
    server_state_dir,
)
from jupyter_qwq.engines.models import DEFAULT_MODEL_SHA256, default_model_path, resolve_model
from jupyter_qwq.engines.vllm import VllmServer, cpu_has_bf16, find_vllm, visible_gpu_count, vllm_build
from jupyter_qwq.exceptions import ConfigError, ModelNotFound, ServerStartError

from processes import group_members
from vllm_stand_in import vllm_install

REPO = Path(__file__).resolve().parents[2]
SMALL_CTX = 1024  # loads faster; enough for the short requests here



def wait_until_gone(pgid: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := group_members(pgid, zombies=True)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Pid files and logs go to a temp dir, not the user's cache (platformdirs reads XDG_*)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def default_model(model_cache) -> Path:
    """The real default model, joined from its chunk packages once per session."""
    return default_model_path(model_cache)


# -- the default model --------------------------------------------------------------------


def test_default_model_is_joined_and_verified(default_model, model_cache):
    assert default_model.parent == model_cache / "models"
    assert default_model.stat().st_size == models.DEFAULT_MODEL_SIZE
    digest = hashlib.sha256(default_model.read_bytes()).hexdigest()
    assert digest == DEFAULT_MODEL_SHA256
    stamp = default_model.with_name(default_model.name + ".sha256")
    assert stamp.read_text().split()[0] == DEFAULT_MODEL_SHA256
    assert not [p for p in default_model.parent.iterdir() if p.name.endswith(".part")]


def test_default_model_second_call_trusts_the_stamp(default_model, model_cache):
    mtime = default_model.stat().st_mtime_ns
    started = time.monotonic()
    assert default_model_path(model_cache) == default_model
    assert time.monotonic() - started < 0.2  # no re-join, no re-hash of 491 MB
    assert default_model.stat().st_mtime_ns == mtime


def test_missing_chunk_package_says_what_to_install(tmp_path):
    packages = (*models.DEFAULT_CHUNK_PACKAGES[:5], "jupyter_qwq_no_such_chunk_pkg")
    with pytest.raises(ModelNotFound) as err:
        default_model_path(tmp_path, chunk_packages=packages)
    assert "pip install 'jupyter_qwq[local]'" in str(err.value)
    assert "jupyter_qwq_no_such_chunk_pkg" in str(err.value)
    assert not (tmp_path / "models" / models.DEFAULT_MODEL_FILENAME).exists()


def test_checksum_mismatch_leaves_no_file(tmp_path, monkeypatch):
    for i, payload in enumerate([b"GGUF", b"bogus"], start=1):
        data = tmp_path / "pkgs" / f"qwq_fake_chunk{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part0{i}.bin").write_bytes(payload)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotFound, match="corrupt"):
        default_model_path(cache, chunk_packages=("qwq_fake_chunk1", "qwq_fake_chunk2"),
                           expected_size=9, expected_sha256="0" * 64)
    assert list((cache / "models").iterdir()) == []


def test_resolve_model_accepts_only_local_gguf(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == gguf.resolve()
    with pytest.raises(ModelNotFound, match="local .gguf"):
        resolve_model("Qwen/QwQ-32B")
    with pytest.raises(ModelNotFound, match="No GGUF file"):
        resolve_model(str(tmp_path / "absent.gguf"))


# -- vLLM: the command it would run ---------------------------------------------------------


def flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


@pytest.fixture
def gpu_vllm(tmp_path) -> str:
    """A stand-in `vllm` command: these tests check the command line, not a real start."""
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    return str(exe)


def gpu_server(model, command, tmp_path, **options):
    return VllmServer(model, command=command, device="gpu", log_dir=tmp_path, **options)


def test_vllm_command_spans_all_visible_gpus(monkeypatch, tmp_path, gpu_vllm):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    server = gpu_server("Qwen/QwQ-32B", gpu_vllm, tmp_path, data_parallel=2)
    cmd = server.command()
    assert cmd[0] == gpu_vllm and cmd[1:3] == ["serve", "Qwen/QwQ-32B"]
    assert flag(cmd, "--tensor-parallel-size") == "4"
    assert flag(cmd, "--data-parallel-size") == "2"
    assert flag(cmd, "--host") == "127.0.0.1"
    assert flag(cmd, "--port") == str(server.port)
    assert flag(cmd, "--reasoning-parser") == "deepseek_r1"
    assert flag(cmd, "--served-model-name") == server.model_name == "Qwen/QwQ-32B"
    assert flag(cmd, "--generation-config") == "vllm"
    assert "--dtype" not in cmd and "VLLM_CPU_KVCACHE_SPACE" not in server.environment()
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.readiness_path == "/health"
    assert "GPU memory" in server.start_failure_hint("")


@pytest.mark.parametrize(("model", "parser"), [
    ("Qwen/QwQ-32B", "deepseek_r1"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek_r1"),
    ("Qwen/Qwen3-8B", "qwen3"),
    ("Qwen/Qwen2.5-Math-7B-Instruct", None),
    ("/home/me/.cache/jupyter_qwq/models/qwen2.5-coder", None),  # the folder's name, not its path
])
def test_vllm_reasoning_parser_follows_the_model(model, parser, monkeypatch, tmp_path, gpu_vllm):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    cmd = gpu_server(model, gpu_vllm, tmp_path).command()
    assert flag(cmd, "--reasoning-parser") == parser
    explicit = gpu_server(model, gpu_vllm, tmp_path, reasoning_parser="none").command()
    assert "--reasoning-parser" not in explicit


def test_vllm_api_key_is_random_and_not_in_argv(monkeypatch, tmp_path, gpu_vllm):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    a = gpu_server("Qwen/Qwen2.5-Math-7B-Instruct", gpu_vllm, tmp_path, max_model_len=4096,
                   extra_args=["--enforce-eager"])
    b = gpu_server("Qwen/Qwen2.5-Math-7B-Instruct", gpu_vllm, tmp_path)
    assert len(a.api_key) >= 32 and a.api_key != b.api_key
    env = a.environment()
    assert env["VLLM_API_KEY"] == a.api_key  # vLLM's env fallback for --api-key
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert int(env["VLLM_ENGINE_READY_TIMEOUT_S"]) > 600
    cmd = a.command()
    assert a.api_key not in " ".join(cmd)  # argv is world-readable through ps
    assert flag(cmd, "--tensor-parallel-size") == "2"
    assert flag(cmd, "--max-model-len") == "4096"
    assert cmd[-1] == "--enforce-eager"


def test_vllm_on_the_cpu_needs_no_gpu_and_sizes_itself_to_memory(monkeypatch, tmp_path, gpu_vllm):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    server = VllmServer("/models/qwen", command=gpu_vllm, device="cpu", cpu_kvcache_gib=3,
                        log_dir=tmp_path, extra_args=["--dtype", "bfloat16"])
    cmd = server.command()
    assert "--tensor-parallel-size" not in cmd  # tensor parallel 2 fails on one NUMA node
    assert flag(cmd, "--max-model-len") == "4096"  # vLLM would ask for 92% of RAM otherwise
    assert flag(cmd, "--dtype") == ("bfloat16" if cpu_has_bf16() else "float32")
    assert cmd[-2:] == ["--dtype", "bfloat16"]  # the user's own arguments come last and win
    # vLLM 0.32's CPU build crashes on a seeded request prefilled in chunks: whole prompts only
    assert "--no-enable-chunked-prefill" in cmd and flag(cmd, "--max-num-batched-tokens") == "4096"
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == "3"
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) <= 4:  # a small machine: every core computes, none is kept for the front end
        assert server.environment()["VLLM_CPU_OMP_THREADS_BIND"] == f"{cores[0]}-{cores[-1]}"
    hint = server.start_failure_hint("")
    assert "CPU" in hint and "vllm_cpu_kvcache_gib" in hint
    assert "GPU" not in hint and "nvidia-smi" not in hint
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "9")  # the environment wins over the default
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == "9"


@pytest.mark.parametrize(("version", "device"), [("0.32.0+cpu", "cpu"), ("0.11.2", "gpu")])
def test_the_vllm_build_is_read_from_its_metadata(version, device, tmp_path, monkeypatch):
    exe = vllm_install(tmp_path, version, monkeypatch)
    build = vllm_build(exe)
    assert (build.version, build.device) == (version, device)


def test_vllm_without_gpus_is_a_config_error_that_names_the_cpu_build(monkeypatch, tmp_path, gpu_vllm):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="GPU build") as caught:
        gpu_server("Qwen/QwQ-32B", gpu_vllm, tmp_path)
    assert "jupyter-qwq setup vllm-cpu" in str(caught.value)


def test_a_missing_vllm_command_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match="not an executable"):
        find_vllm(tmp_path / "nowhere" / "vllm")


@pytest.mark.parametrize(("value", "count"), [("", 0), ("-1", 0), ("0,1,-1,2", 2), ("3", 1),
                                              ("GPU-8f1c,GPU-77aa", 2)])
def test_visible_gpu_count_reads_cuda_visible_devices(value, count, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert visible_gpu_count() == count


def test_llamacpp_command_and_environment(default_model, tmp_path, monkeypatch):
    monkeypatch.setenv("PORT", "1")  # llama_cpp.server would let these override --port/--host
    monkeypatch.setenv("host", "0.0.0.0")
    server = LlamaCppServer(default_model, n_threads=2, log_dir=tmp_path)
    cmd = server.command()
    assert cmd[:3] == [sys.executable, "-m", "jupyter_qwq.engines.llamacpp_server"]
    assert "--extra_buffer_types" not in cmd
    assert "--extra_buffer_types" in LlamaCppServer(default_model, extra_buffer_types=True, log_dir=tmp_path).command()
    assert flag(cmd, "--model") == str(default_model)
    assert flag(cmd, "--host") == "127.0.0.1"
    assert flag(cmd, "--interrupt_requests") == "False"
    assert flag(cmd, "--n_ctx") == "8192" and flag(cmd, "--n_threads") == "2"
    assert flag(cmd, "--model_alias") == server.model_name
    env = server.environment()
    assert env["API_KEY"] == server.api_key and server.api_key not in cmd
    assert "PORT" not in env and "host" not in env


def test_stop_is_safe_when_never_started(default_model, tmp_path):
    server = LlamaCppServer(default_model, log_dir=tmp_path)
    server.stop()
    server.stop()
    assert not server.alive and server.uptime == 0.0


# -- the real llama.cpp server --------------------------------------------------------------


@pytest.mark.llamacpp
@pytest.mark.timeout(120)
async def test_llamacpp_serves_a_chat_completion_and_stops_its_group(default_model, tmp_path):
    server = LlamaCppServer(default_model, n_ctx=SMALL_CTX, log_dir=tmp_path)
    started = time.monotonic()
    await asyncio.gather(server.start(), server.start())  # concurrent callers: one process
    print(f"llama.cpp server ready in {time.monotonic() - started:.2f} s")
    pgid = server.pgid
    async with server:  # already running: entering is a no-op, leaving stops it
        assert server.alive and server in running_servers()
        assert group_members(pgid, zombies=True)
        assert server.pgid == pgid and server.uptime > 0
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            unauthorized = await client.get("/models")
            assert unauthorized.status_code == 401
            response = await client.post(
                "/chat/completions",
                headers={"Authorization": f"Bearer {server.api_key}"},
                json={"model": server.model_name, "max_tokens": 8, "temperature": 0,
                      "messages": [{"role": "user", "content": "What is 2+3?"}]},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["choices"][0]["message"]["content"].strip()
        assert body["usage"]["completion_tokens"] <= 8
        assert "jupyter_qwq.engines.llamacpp_server" in server.log_path.read_text(errors="replace")
        assert len(server.log_tail(5).splitlines()) == 5
        assert server.log_path.read_text(errors="replace").count("--- jupyter_qwq:") == 1
    assert not server.alive and server not in running_servers()
    assert group_members(pgid, zombies=True) == []
    assert not list(server_state_dir().glob(f"{server.server_id}.json"))
    server.stop()  # idempotent


@pytest.mark.llamacpp
@pytest.mark.timeout(60)
async def test_garbage_model_fails_fast_with_the_log_tail(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file\n" * 1000)
    server = LlamaCppServer(bogus, log_dir=tmp_path)
    started = time.monotonic()
    with pytest.raises(ServerStartError) as err:
        await server.start(timeout=60)
    assert time.monotonic() - started < 30
    message = str(err.value)
    assert "exited" in message and "last lines of" in message
    assert str(bogus) in message  # the tail and the hint both name the file
    assert not server.alive and server not in running_servers()


@pytest.mark.llamacpp
@pytest.mark.timeout(60)
async def test_start_timeout_stops_the_process_group(default_model, tmp_path):
    server = LlamaCppServer(default_model, n_ctx=SMALL_CTX, log_dir=tmp_path)
    with pytest.raises(ServerStartError, match="did not answer"):
        await server.start(timeout=0.3)
    assert not server.alive and server.returncode is not None


@pytest.mark.llamacpp
@pytest.mark.timeout(90)
async def test_port_taken_before_bind_is_retried_on_another_port(default_model, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        server = LlamaCppServer(default_model, n_ctx=SMALL_CTX, log_dir=tmp_path,
                                port_picker=lambda: next(ports, None) or pick_free_port())
        async with server:
            assert server.port != taken
            assert "address already in use" in server.log_path.read_text(errors="replace").lower()
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"{server.base_url}/models",
                                            headers={"Authorization": f"Bearer {server.api_key}"})
            assert response.json()["data"][0]["id"] == server.model_name


CHILD = """
import asyncio, os, signal, sys
from jupyter_qwq.engines.llamacpp import LlamaCppServer
server = LlamaCppServer(sys.argv[1], n_ctx={n_ctx}, log_dir=sys.argv[2])
asyncio.run(server.start())
print(server.pgid, flush=True)
if sys.argv[3] == "crash":
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit: the pid file is all that is left
if sys.argv[3] == "terminated":
    os.kill(os.getpid(), signal.SIGTERM)  # `kill PID`: no atexit either, unless handled
"""


def run_child(model: Path, tmp_path: Path, how: str) -> int:
    """Run CHILD, which starts a server and ends as `how` says; the server's pgid. Its pid files
    go under tmp_path/xdg."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(n_ctx=SMALL_CTX), str(model), str(tmp_path), how],
        capture_output=True, text=True, timeout=90, cwd=REPO, env=env,
    )
    assert result.stdout.strip(), result.stderr
    return int(result.stdout.split()[0])


@pytest.mark.llamacpp
@pytest.mark.timeout(120)
def test_interpreter_exit_stops_a_server_nobody_stopped(default_model, tmp_path):
    pgid = run_child(default_model, tmp_path, "exit")
    assert wait_until_gone(pgid, timeout=2) == []
    assert list((tmp_path / "xdg" / "jupyter_qwq" / "servers").glob("*.json")) == []


@pytest.mark.llamacpp
@pytest.mark.timeout(120)
def test_an_owner_killed_with_sigterm_stops_its_server_first(default_model, tmp_path):
    pgid = run_child(default_model, tmp_path, "terminated")
    assert wait_until_gone(pgid, timeout=2) == []
    assert list((tmp_path / "xdg" / "jupyter_qwq" / "servers").glob("*.json")) == []


@pytest.mark.llamacpp
@pytest.mark.timeout(120)
def test_cleanup_stale_servers_stops_a_dead_owners_server(default_model, tmp_path):
    pgid = run_child(default_model, tmp_path, "crash")
    try:
        state_dir = tmp_path / "xdg" / "jupyter_qwq" / "servers"
        [pid_file] = state_dir.glob("*.json")
        assert json.loads(pid_file.read_text())["pgid"] == pgid
        assert group_members(pgid, zombies=True), "the orphaned server should still be running"
        assert cleanup_stale_servers(state_dir) == [pgid]
        assert wait_until_gone(pgid) == []
        assert not pid_file.exists()
        assert cleanup_stale_servers(state_dir) == []
    finally:
        if group_members(pgid, zombies=True):
            os.killpg(pgid, signal.SIGKILL)
