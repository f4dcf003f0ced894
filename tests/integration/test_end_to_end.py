"""End to end on the embedded default: the real llama.cpp server, the real model, real subkernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from processes import running

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(900)]

PROBLEM = "What is 123 * 45? Write a short Python program that prints it, then give the answer."


@pytest.fixture(scope="module")
def cli_record() -> tuple[subprocess.CompletedProcess, dict]:
    before = set(running(b"llama_cpp.server"))
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_qwq.cli", "solve", PROBLEM, "--branches", "3", "--rounds", "2",
         "--max-tokens", "400", "--seed", "7", "--temperature", "0.3", "--json"],
        capture_output=True, text=True, timeout=800, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    leftover = set(running(b"llama_cpp.server")) - before
    assert not leftover, f"the CLI left llama.cpp servers running: {leftover}"
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout)


def test_the_embedded_default_solves_with_zero_configuration(cli_record):
    _, record = cli_record
    assert record["engine"]["kind"] == "llamacpp"
    assert record["engine"]["model"] and record["engine"]["endpoint"].startswith("http://127.0.0.1:")
    assert record["status"] == "done"
    branches = record["branches"]
    assert len(branches) == 3
    for branch in branches:
        assert branch["status"] in ("answered", "no_answer", "stopped")
        if branch["status"] != "stopped":
            assert branch["completion_tokens"] > 0 and branch["steps"][0]["text"]


def test_code_the_model_wrote_ran_in_a_subkernel_with_real_output(cli_record):
    _, record = cli_record
    code_steps = [s for b in record["branches"] for s in b["steps"] if s["kind"] == "code"]
    assert code_steps, "no branch wrote a python block"
    ran = [s for s in code_steps if s["execution"] in ("ok", "error")]
    assert ran and all(s["feedback"] for s in ran)
    # What came back is what Python printed, not what the model guessed.
    printed = "".join(o.get("text", "") for s in ran for o in s["outputs"] if o["output_type"] == "stream")
    assert "5535" in printed or any(s["execution"] == "error" for s in ran)


def test_the_vote_counts_the_answers_the_branches_gave(cli_record):
    _, record = cli_record
    answered = [b for b in record["branches"] if b["answer"] is not None and b["status"] == "answered"
                and not b["answer_source"].startswith("fallback")]  # unboxed answers do not vote
    assert sum(item["count"] for item in record["vote"]["tally"]) == len(answered)
    if answered:
        assert record["vote"]["answer"] == record["vote"]["tally"][0]["answer"]
