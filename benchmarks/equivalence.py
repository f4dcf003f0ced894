"""Answer equivalence on real graded answers: Math-Verify alone against jupyter_qwq's `equivalent`.

    python benchmarks/equivalence.py [--data DIR] [--show-misses CLASS]

Pairs, from ProcessBench's GSM8K and MATH splits (real model output graded by people); a
solution's final answer is what `extract_answer` finds in its steps (the last \\boxed{}, else a
fallback):
- gold against answer: every solution whose problem has a gold answer in ../shared/data: GSM8K
  from the full GSM8K test set (the text after "####"), MATH from MATH-500 and from
  math_cot_100.jsonl (`gt`). Only 126 of the 1000 MATH solutions have one there (ProcessBench
  draws on all 5000 MATH test problems and ships no gold).
- answer against answer, as the vote compares them: two solutions of the same problem at least
  one of which is right (same answer if both are right, different if one is wrong); this needs
  no gold.

Ground truth: ProcessBench's `final_answer_correct`, the annotators' verdict on the final answer.
(`label` is the first wrong *step*: label == -1 always has a correct final answer, but 101
solutions with a wrong step still end on the right answer, so `label` alone would mislabel them.)

Each pair (reference first) is compared two ways, and a way "agrees" when its verdict equals the ground truth:
- math-verify: the plain call, `verify(parse(gold), parse(answer))`, each side given as
  `$...$` (without the dollars Math-Verify's LaTeX extraction finds nothing in most answers);
- ours: `jupyter_qwq.answers.equivalent(gold, answer)`, what the vote groups by.
Pairs are classed by the shape of gold and answer (the first class that fits either side).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jupyter_qwq.answers import equivalent, extract_answer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CLASSES = (
    "function",
    "equation-with-lhs",
    "list/tuple/set",
    "interval",
    "percent",
    "units",
    "text",
    "plain number",
    "expression",
)


@dataclass(frozen=True)
class Pair:
    id: str
    gold: str  # the gold answer, or a right answer to the same problem
    answer: str
    correct: bool  # the human verdict: the answer is the same as gold


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data folder")
    parser.add_argument("--show-misses", metavar="CLASS", help="list the pairs ours gets wrong")
    args = parser.parse_args(argv)

    pairs = build_pairs(args.data)
    agree: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # pairs, math-verify, ours
    misses = []
    started = time.perf_counter()
    for pair in pairs:
        kind = classify(pair.gold, pair.answer)
        mv_ok = math_verify_alone(pair.gold, pair.answer) == pair.correct
        ours_ok = equivalent(pair.gold, pair.answer) == pair.correct
        for key in (kind, "all"):
            agree[key][0] += 1
            agree[key][1] += mv_ok
            agree[key][2] += ours_ok
        if not ours_ok and args.show_misses in (kind, "all"):
            misses.append((kind, pair, mv_ok))
    elapsed = time.perf_counter() - started

    table = Table(title=f"Agreement with the human verdict on {len(pairs)} pairs of ProcessBench answers")
    for column in ("class", "pairs", "math-verify alone", "ours (equivalent)", "difference"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for key in (*CLASSES, "all"):
        n, mv, ours = agree.get(key, [0, 0, 0])
        if n:
            table.add_row(
                key, str(n), f"{100 * mv / n:.1f}%", f"{100 * ours / n:.1f}%",
                f"{100 * (ours - mv) / n:+.1f}",
            )
    console = Console(width=100)
    console.print(table)
    console.print(f"{len(pairs)} pairs compared both ways in {elapsed:.1f} s (cold caches).")
    for kind, pair, mv_ok in misses:
        console.print(
            f"[{kind}] {pair.id} gold={pair.gold!r} answer={pair.answer!r} "
            f"human={'right' if pair.correct else 'wrong'} math-verify {'ok' if mv_ok else 'wrong'}",
            markup=False, highlight=False,
        )


def build_pairs(data: Path) -> list[Pair]:
    """(reference, final answer, whether they are the same answer) from ProcessBench."""
    gold = _gold_answers(data)
    pairs = []
    for split in ("gsm8k", "math"):
        by_problem: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
        for record in json.loads((data / "processbench" / f"{split}.json").read_text()):
            found = extract_answer("\n\n".join(record["steps"]))
            if found is None:
                continue
            right = record["final_answer_correct"]
            reference = gold.get(_key(record["problem"]))
            if reference is not None:
                pairs.append(Pair(record["id"], reference, found.answer, right))
            by_problem[_key(record["problem"])].append((record["id"], found.answer, right))
        for solutions in by_problem.values():
            for (id_a, a, right_a), (id_b, b, right_b) in combinations(solutions, 2):
                if right_a or right_b:  # two wrong answers may or may not be the same
                    first, second = (a, b) if right_a else (b, a)
                    pairs.append(Pair(f"{id_a}~{id_b}", first, second, right_a and right_b))
    return pairs


def _gold_answers(data: Path) -> dict[str, str]:
    gold = {}
    for row in _jsonl(data / "qwen25math" / "gsm8k" / "test.jsonl"):
        gold[_key(row["question"])] = row["answer"].rsplit("####", 1)[1].strip()
    for row in _jsonl(data / "qwen25math" / "eval_rm_maj_example" / "math_cot_100.jsonl"):
        gold[_key(row["question"])] = row["gt"]
    for row in _jsonl(data / "simplerl_reason" / "math500" / "test.jsonl"):
        gold[_key(row["problem"])] = row["answer"]
    return gold


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(problem: str) -> str:
    return " ".join(problem.split())


def math_verify_alone(gold: str, answer: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(f"${answer}$")))
    except Exception:  # Math-Verify raises on some malformed LaTeX: that answer is not equal
        return False


_UNIT_WORD = re.compile(
    r"\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z .]*\}|\b(?:cm|m|km|inches|feet|units|degrees|"
    r"dollars|cents|hours|minutes|seconds|days|years|mph)\b"
)


def classify(gold: str, answer: str) -> str:
    """The first class, in CLASSES order, that the gold or the answer belongs to."""
    sides = (gold, answer)
    if any(re.search(r"\b[a-zA-Z]\s*\(\s*[a-zA-Z]\s*\)\s*=", s) for s in sides):
        return "function"
    if any(re.search(r"[^<>!\\]=|\\(?:neq|leq|geq|le|ge)\b|[<>]", s) for s in sides):
        return "equation-with-lhs"
    if any(_is_list(s) for s in sides):
        return "list/tuple/set"
    if any(re.fullmatch(r"\s*[\[(].*,.*[\])]\s*", s) and s.strip()[0] + s.strip()[-1] in
           ("[)", "(]") for s in sides) or any("\\infty" in s for s in sides):
        return "interval"
    if any("%" in s or "percent" in s for s in sides):
        return "percent"
    if any(_UNIT_WORD.search(s) and re.search(r"\d", s) for s in sides):
        return "units"
    if any(re.search(r"[a-zA-Z]{3,}", re.sub(r"\\[a-zA-Z]+", "", s)) for s in sides):
        return "text"
    if all(re.fullmatch(r"\s*-?[\d,]*\.?\d+\s*", s) for s in sides):
        return "plain number"
    return "expression"


def _is_list(s: str) -> bool:
    depth = 0
    body = s.strip()
    for opener, closer in (("\\{", "\\}"), ("\\left(", "\\right)"), ("(", ")"), ("[", "]")):
        if body.startswith(opener) and body.endswith(closer):
            body = body[len(opener) : -len(closer)]
            break
    for char in body:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0 and not re.fullmatch(r"\s*-?\d{1,3}(,\d{3})+\s*", s):
            return True
    return False


if __name__ == "__main__":
    main()
