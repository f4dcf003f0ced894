"""A saved solve whose branches hold what people read: display math `\\[..\\]`, inline `\\(..\\)`
and `$..$`, a bare `\\boxed{}`, markdown, a ```python block, dollar amounts, and hostile markup
that must show as text. Shared by the view, export and browser tests."""

from __future__ import annotations

from jupyter_qwq.session import (Branch, BranchStatus, EngineInfo, Session, SolveStatus, Step,
                                 TallyItem, Vote)

HOUSE = "Josh buys a house for $80,000 and then puts in $50,000 in repairs. What did he spend?"
DISPLAY = "\\[ 80{,}000 + 50{,}000 = 130{,}000 \\]"
INLINE = "\\(x \\cdot 2\\)"
REASONING = (
    f"**First** add the costs:\n\n{DISPLAY}\n\nso the spend is {INLINE} halved, and $x^2$ is not "
    "needed. He paid $80,000 and then $50,000.\n\nCheck it:\n\n```python\ntotal = 80_000 + 50_000\n"
    "print(total)\n```\n"
)
FINAL = "The code agrees, so he spent \\boxed{130000}."
HOSTILE = "<img src=x onerror=\"window.__qwq_pwned=1\"><script>window.__qwq_pwned=2</script>"
MATH = [DISPLAY, INLINE, "$x^2$", "\\boxed{130000}"]
MONEY = ["$80,000 and then puts in $50,000", "$80,000 and then $50,000"]


def reading_session(hostile: bool = False) -> Session:
    """Two branches that answer 130000; with `hostile`, markup in the problem and the text."""
    problem = HOUSE + (f" {HOSTILE}" if hostile else "")
    code = "total = 80_000 + 50_000\nprint(total)"
    steps = [
        Step(kind="text", text=REASONING + (HOSTILE if hostile else ""),
             reasoning="Two amounts; the sum is $130,000 or so."),
        Step(kind="code", code=code, execution="ok", duration=0.1,
             outputs=[{"output_type": "stream", "name": "stdout", "text": "130000\n"}]),
        Step(kind="text", text=FINAL),
    ]
    messages = [{"role": "system", "content": "Please reason step by step, and put your final "
                 "answer within \\boxed{}."}, {"role": "user", "content": problem}]
    branches = [
        Branch(index=i, prompt=prompt, seed=i, sampling={"temperature": 0.7, "top_p": 0.8},
               protocol="continue", messages=messages, status=BranchStatus.ANSWERED,
               answer="130000", answer_source="boxed", steps=list(steps), completion_tokens=120,
               started=0.0, ended=2.0)
        for i, prompt in enumerate(["tir", "cot+hint1"])
    ]
    return Session(
        problem=problem, config={"temperature": 0.7, "top_p": 0.8, "seed": 0},
        engine=EngineInfo(kind="endpoint", model="reading-model"), branches=branches,
        vote=Vote(answer="130000", tally=[TallyItem("130000", 2, [0, 1])], agreement=1.0),
        status=SolveStatus.DONE, created="2026-12-01T00:00:00Z", elapsed=2.0,
    )  # fmt: skip
