"""`jupyter-qwq` as a user runs it: exit codes, one-line errors, JSON on stdout."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from jupyter_qwq import __version__

from scripted_server import Reply, branch_and_round

pytestmark = pytest.mark.timeout(120)


def run_cli(*args: str, stdin: str | bytes = "") -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run([sys.executable, "-m", "jupyter_qwq.cli", *args], input=data,
                            capture_output=True, timeout=100)
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"))


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"jupyter-qwq {__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["solve", ""], "the problem is empty"),
        (["solve", "1+1", "--branches", "many"], "invalid int value"),
        (["solve", "1+1", "--branches", "0"], "branches must be at least 1"),
        (["solve", "1+1", "--min-p", "2"], "min_p must be between 0 and 1"),
        (["solve", "1+1", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["solve", "1+1", "--engine", "tpu"], "invalid choice"),
        (["solve", "1+1", "--engine", "endpoint"], "needs --endpoint"),
        (["solve"], "the following arguments are required: problem"),
        (["explode"], "unknown command"),
        (["setup"], "usage: jupyter-qwq setup vllm-cpu"),
        (["setup", "vllm-gpu"], "usage: jupyter-qwq setup vllm-cpu"),
        (["solve", "1+1", "--vllm-command", "/nowhere/vllm", "--engine", "vllm"], "not an executable"),
        (["solve", "1+1", "--prompts", "poetry"], "invalid choice"),
        (["solve", "1+1", "--top-logprobs", "50"], "top_logprobs must be between 0 and 20"),
        (["solve", "1+1", "--stop", "agree"], "use lossless, agree:K"),
        (["solve", "1+1", "--vote", "weighted"], "choose one with --score"),
        (["solve", "1+1", "--score", "prm"], "--score prm needs --prm-endpoint"),
        (["solve", "1+1", "--keep-top", "0"], "keep_top must be a percentage"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "stdin, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
        (b"problem \x00 with a NUL", "not text"),
        (("What is 1+1? " * 80_000).encode(), "characters long"),
    ],
    ids=["png-bytes", "nul-byte", "one-megabyte"],
)
def test_binary_garbage_and_huge_problems_are_refused(stdin, message):
    result = run_cli("solve", "-", "--endpoint", "http://127.0.0.1:9/v1", stdin=stdin)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_endpoint_exits_1_with_a_hint_and_no_traceback():
    result = run_cli("solve", "1+1", "--endpoint", "http://127.0.0.1:9/v1")
    assert result.returncode == 1
    assert "Nothing answers at http://127.0.0.1:9/v1" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_prints_only_the_record(scripted):
    def script(body):
        branch, _ = branch_and_round(body)
        return Reply(f"\\boxed{{{5 if branch < 2 else 6}}}")

    server = scripted(script)
    result = run_cli("solve", "-", "--endpoint", server.base_url, "--branches", "3", "--rounds", "0",
                     "--seed", "0", "--no-early-stop", "--json", stdin="What is 2+3?")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["problem"] == "What is 2+3?"
    assert record["vote"]["answer"] == "5"
    assert record["vote"]["tally"] == [{"answer": "5", "count": 2, "branches": [0, 1], "weight": 2.0},
                                       {"answer": "6", "count": 1, "branches": [2], "weight": 1.0}]
    assert [b["stop_reason"] for b in record["branches"]] == ["answered"] * 3
    assert record["config"]["early_stop"] is False and record["engine"]["kind"] == "endpoint"


def test_a_dying_server_still_prints_the_partial_record_with_json(scripted):
    server = scripted(lambda body: Reply("y" * 100, die_after=2))
    result = run_cli("solve", "1+1", "--endpoint", server.base_url, "--branches", "2", "--json")
    assert result.returncode == 1
    assert "closed the stream mid-reply" in result.stderr and "Traceback" not in result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "failed" and len(record["branches"]) == 2


def test_summary_without_json_shows_the_answer(scripted):
    server = scripted(lambda body: Reply("so \\boxed{\\frac{1}{2}}"))
    result = run_cli("solve", "half?", "--endpoint", server.base_url, "--branches", "2", "--rounds", "0")
    assert result.returncode == 0, result.stderr
    assert "answer: \\frac{1}{2}" in result.stdout


def test_the_summary_says_each_branch_s_score_why_it_stopped_and_each_answer_s_weight(scripted, monkeypatch):
    def script(body):
        branch, _ = branch_and_round(body)
        if branch == 3:  # still writing when two branches agree: stopped
            return Reply("wait " * 2000, delay=0.01, confidence=5.0)
        return Reply("\\boxed{12}", confidence=9.0) if branch == 0 else Reply("\\boxed{7}", confidence=2.0)

    server = scripted(script)
    monkeypatch.setenv("COLUMNS", "200")  # one line per branch
    result = run_cli("solve", "?", "--endpoint", server.base_url, "--branches", "4", "--rounds", "0",
                     "--seed", "0", "--score", "confidence", "--vote", "weighted", "--stop", "agree:2")
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert re.search(r"\n +0 .* 12 +lowest group confidence 9\.00", shown), shown
    assert re.search(r"\n +3 .*stopped .* stopped early: the vote was decided", shown), shown
    assert "vote: 12 ×1 (weight 9.00)   7 ×2 (weight 4.00)" in shown
    assert "weighted vote: an answer weighs the sum of its branches' scores (lowest group confidence)" in shown
    assert "ended early: 2 branches agreed (--stop agree:2); the rest were stopped" in shown
    assert "answer: 12" in shown


def test_a_missing_model_says_what_to_do():
    result = run_cli("solve", "1+1", "--engine", "llamacpp", "--model", "/nonexistent/model.gguf")
    assert result.returncode == 1
    assert "/nonexistent/model.gguf" in result.stderr and "GGUF" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_on_a_terminal_progress_is_shown_live(scripted, tmp_path):
    import os
    import pty

    def script(body):
        branch, _ = branch_and_round(body)
        return Reply("thinking " * 30 + f"\\boxed{{{branch % 2}}}", delay=0.02)

    server = scripted(script)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_qwq.cli", "solve", "parity?", "--endpoint", server.base_url,
         "--branches", "3", "--rounds", "0", "--seed", "0", "--no-early-stop"],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    process.wait(60)
    text = screen.decode(errors="replace")
    assert process.returncode == 0
    assert "running" in text  # the live table showed branches while they ran
    assert "answer: 0" in text and "vote: 0 ×2" in text


def test_sandbox_reports_what_is_in_force():
    result = run_cli("sandbox")
    assert result.returncode == 0
    for protection in ("no network", "private filesystem", "memory limit", "process limit"):
        assert protection in result.stdout
