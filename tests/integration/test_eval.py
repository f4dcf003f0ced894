"""`jupyter-qwq eval` over datasets: scoring by equivalence, real dataset formats, resuming."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripted_server import Reply

pytestmark = pytest.mark.timeout(180)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def run_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_qwq.cli", "eval", *args],
                          capture_output=True, text=True, timeout=150)


def answering(answers: dict[str, str]):
    """A model that answers each problem from a table, keyed by a phrase of the problem."""
    def script(body):
        text = body["messages"][1]["content"]
        for phrase, answer in answers.items():
            if phrase in text:
                return Reply(f"Therefore \\boxed{{{answer}}}.")
        return Reply("I do not know.")
    return script


def test_eval_scores_votes_by_equivalence_and_resumes(scripted, tmp_path):
    dataset = tmp_path / "tiny.jsonl"
    dataset.write_text("\n".join(json.dumps(row) for row in [
        {"question": "What is 2+3?", "answer": "Two plus three is five.\n#### 5", "idx": 0},
        {"question": "What is 10/4?", "answer": "#### 2.5", "idx": 1},
        {"problem": "Name the capital of France.", "answer": "Paris", "idx": 2},
    ]) + "\n")
    table = {"2+3": "5", "10/4": "\\frac{5}{2}", "capital": "London"}
    server = scripted(answering(table))
    flags = ["--endpoint", server.base_url, "--branches", "2", "--rounds", "0", "--seed", "0"]
    first = run_eval(str(dataset), *flags)
    requests = len(server.streams)
    again = run_eval(str(dataset), *flags)
    assert len(server.streams) == requests  # everything was already scored: nothing re-solved
    assert first.returncode == 0, first.stderr
    results = [json.loads(line) for line in (tmp_path / "tiny.results.jsonl").read_text().splitlines()]
    assert [(r["key"], r["answer"], r["correct"]) for r in results] == [
        ("0", "5", True), ("1", "\\frac{5}{2}", True), ("2", "London", False)]
    assert results[0]["record"]["problem"] == "What is 2+3?"
    for output in (first.stdout, again.stdout):
        assert "accuracy (vote)" in output and "66.7%" in output


@pytest.mark.parametrize("path, field", [("qwen25math/gsm8k/test.jsonl", "question"),
                                          ("simplerl_reason/math500/test.jsonl", "problem")])
def test_eval_reads_the_real_dataset_formats(scripted, tmp_path, path, field):
    rows = [json.loads(line) for line in (DATA / path).read_text().splitlines()[:2]]
    gold = [r["answer"].rsplit("####", 1)[-1].strip() for r in rows]
    table = {row[field][:40]: answer for row, answer in zip(rows, gold)}
    server = scripted(answering(table))
    result = run_eval(str(DATA / path), "--limit", "2", "--results", str(tmp_path / "out.jsonl"),
                      "--endpoint", server.base_url, "--branches", "1", "--rounds", "0")
    assert result.returncode == 0, result.stderr
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(scored) == 2 and all(s["correct"] for s in scored)
    assert "100.0%" in result.stdout


def test_eval_with_a_bad_dataset_says_what_to_do(tmp_path):
    missing = run_eval(str(tmp_path / "nope.jsonl"), "--endpoint", "http://127.0.0.1:9/v1")
    assert missing.returncode == 2 and "no dataset at" in missing.stderr
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"text": "What?", "solution": "1"}) + "\n")
    result = run_eval(str(odd), "--endpoint", "http://127.0.0.1:9/v1")
    assert result.returncode == 2 and "--problem-field" in result.stderr and "Traceback" not in result.stderr


def slow_on(phrase: str, answers: dict[str, str]):
    """Answers from a table at once, but crawls (a chunk every 0.5 s) on the problem with `phrase`."""
    quick = answering(answers)

    def script(body):
        reply = quick(body)
        if phrase in body["messages"][1]["content"]:
            return Reply("Let me think about this for a long while. " * 20, delay=0.5)
        return reply
    return script


def test_a_time_budget_answers_a_slow_problem_with_the_vote_so_far_and_leaves_unstarted_ones(scripted, tmp_path):
    dataset = tmp_path / "budget.jsonl"
    dataset.write_text("\n".join(json.dumps({"question": q, "answer": a, "idx": i}) for i, (q, a) in enumerate([
        ("What is 2+3?", "5"), ("What is a slow 7*6?", "42"), ("What is a slow 1+1?", "2"), ("What is 3+3?", "6"),
    ])) + "\n")
    server = scripted(slow_on("slow", {"2+3": "5", "1+1": "2", "3+3": "6"}))
    flags = [str(dataset), "--endpoint", server.base_url, "--branches", "1", "--rounds", "0"]
    result = run_eval(*flags, "--time-budget", "7", "--problem-time", "3:4")
    assert result.returncode == 0, result.stderr
    scored = {r["key"]: r for r in map(json.loads, (tmp_path / "budget.results.jsonl").read_text().splitlines())}
    # 7 s: the first slow problem gets the floor of 3 s (the two after it keep 3 s each in
    # reserve), the second at most 3 s of what is left, and the last one less than a second: none
    assert scored["0"]["correct"] and scored["1"]["status"] == "timed_out"
    assert 3 <= scored["1"]["elapsed"] < 4
    assert scored["2"]["status"] == "timed_out" and scored["2"]["elapsed"] < 3.5
    assert "3" not in scored and "before 1 problem started (the first: 3)" in result.stderr
    assert "out of time" in result.stderr and "out of time" in result.stdout
    again = run_eval(*flags)  # no budget now: the rest are solved, nothing re-solved
    rows = [json.loads(line) for line in (tmp_path / "budget.results.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == ["0", "1", "2", "3"], again.stderr


def test_eval_shows_its_progress_and_draws_accuracy_against_tokens(scripted, tmp_path):
    dataset = tmp_path / "tiny.jsonl"
    dataset.write_text("\n".join(json.dumps({"question": q, "answer": a, "idx": i}) for i, (q, a) in enumerate([
        ("What is 2+3?", "5"), ("What is 10/4?", "2.5"), ("What is 9-1?", "7"),
    ])) + "\n")
    server = scripted(answering({"2+3": "5", "10/4": "5/2", "9-1": "8"}))
    result = run_eval(str(dataset), "--endpoint", server.base_url, "--branches", "2", "--rounds", "0",
                      "--plot", str(tmp_path / "curve.png"))
    assert result.returncode == 0, result.stderr
    assert "accuracy 2/3 = 66.7%" in result.stderr and "tokens/s" in result.stderr and "3/3" in result.stderr
    from matplotlib import image

    picture = image.imread(tmp_path / "curve.png")
    assert picture.shape[0] > 300 and picture.shape[1] > 500  # a real PNG of the expected size
    assert f"plot: {tmp_path / 'curve.png'}" in result.stdout


def test_eval_flags_of_the_budget_are_checked(tmp_path):
    dataset = tmp_path / "one.jsonl"
    dataset.write_text(json.dumps({"question": "What?", "answer": "1"}) + "\n")
    alone = run_eval(str(dataset), "--problem-time", "1:2", "--endpoint", "http://127.0.0.1:9/v1")
    assert alone.returncode == 2 and "give --time-budget" in alone.stderr
    odd = run_eval(str(dataset), "--time-budget", "60", "--problem-time", "5", "--endpoint", "http://127.0.0.1:9/v1")
    assert odd.returncode == 2 and "LOW:HIGH" in odd.stderr
    backwards = run_eval(str(dataset), "--time-budget", "60", "--problem-time", "9:2", "--endpoint",
                         "http://127.0.0.1:9/v1")
    assert backwards.returncode == 2 and "0 < LOW <= HIGH" in backwards.stderr
