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
