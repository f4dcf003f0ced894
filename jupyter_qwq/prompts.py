"""Prompt variants: the system prompts, the rotating hints, and the messages of the TIR loop.

Branch i gets variant i: the system prompt alternates TIR / CoT (two TIR for each CoT, since code is
what makes a branch checkable), and a hint rotates through HINTS so branches start from different
angles. Diversity of prompts as well as of samples is what makes a vote worth taking.
"""

from __future__ import annotations

from dataclasses import dataclass

# The system prompts of Qwen2.5-Math (README and Qwen-Agent's examples/tir_math.py).
COT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
TIR_SYSTEM = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
# Tells a chat model the protocol of this harness: one python block at a time, output comes back.
TIR_PROTOCOL = (
    "You can run Python: write one ```python code block, then stop; its output will be sent "
    "back to you. Variables persist between blocks; print() what you need to see. You may run "
    "at most {rounds} code blocks."
)

HINTS = (
    "",
    "Hint: check small cases first, then generalise.",
    "Hint: it may help to compute the answer by brute force in Python and then confirm it.",
    "Hint: use sympy for exact arithmetic; avoid floating point where you can.",
    "Hint: restate what is asked precisely before computing.",
    "Hint: look for a symmetry or an invariant.",
    "Hint: work backwards from what the answer must satisfy.",
    "Hint: verify your final answer by an independent method before boxing it.",
)

NUDGE_FOR_ANSWER = "Please give your final answer within \\boxed{}."
NO_MORE_CODE = "You have no code executions left: finish the reasoning and give the final answer within \\boxed{}."


@dataclass(frozen=True)
class Variant:
    name: str
    system: str
    hint: str
    uses_code: bool


def variant_for(branch: int, rounds: int) -> Variant:
    """The prompt variant of branch `branch`; CoT only when no code round is allowed."""
    uses_code = rounds > 0 and branch % 3 != 2
    hint = HINTS[branch % len(HINTS)]
    base = "tir" if uses_code else "cot"
    name = base + (f"+hint{branch % len(HINTS)}" if hint else "")
    system = TIR_SYSTEM + "\n" + TIR_PROTOCOL.format(rounds=rounds) if uses_code else COT_SYSTEM
    return Variant(name=name, system=system, hint=hint, uses_code=uses_code)


def initial_messages(problem: str, variant: Variant) -> list[dict[str, str]]:
    user = problem.strip() + (f"\n\n{variant.hint}" if variant.hint else "")
    return [{"role": "system", "content": variant.system}, {"role": "user", "content": user}]


def code_output_message(feedback: str, rounds_left: int) -> str:
    """What the model reads after its code ran: the output, then how many runs remain."""
    if rounds_left > 0:
        remaining = f"You have {rounds_left} code execution{'s' if rounds_left != 1 else ''} left."
    else:
        remaining = NO_MORE_CODE
    return f"```output\n{feedback}\n```\n{remaining}"
