"""Prompt variants: the system prompts, the rotating hints, and the messages of the TIR loop.

Branch i gets variant i. Which branches may run code is the `prompts` setting: all (tir), none
(cot), or two TIR for each CoT (mixed). With `hints`, branches 1, 2, ... each start from a
different hint (branch 0 from none).

A code block's output goes back in one of two ways (`tool_protocol`): appended to the assistant's
own turn as an ```output block, which the model then continues (Qwen2.5-Math's TIR format), or as
a new user message that also says how many runs are left (for endpoints that cannot continue a
turn).
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
TIR_CONTINUE_PROTOCOL = (
    "You can run Python: write a ```python code block; it is run, and its output appears right "
    "after it in an ```output block; then continue your answer from there. Variables persist "
    "between blocks; print() what you need to see. At most {rounds} code blocks are run."
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


def variant_for(branch: int, rounds: int, mix: str = "mixed", hints: bool = True,
                protocol: str = "continue") -> Variant:
    """The prompt variant of branch `branch`; CoT whenever no code round is allowed."""
    uses_code = rounds > 0 and (mix == "tir" or (mix == "mixed" and branch % 3 != 2))
    hint = HINTS[branch % len(HINTS)] if hints else ""
    base = "tir" if uses_code else "cot"
    name = base + (f"+hint{branch % len(HINTS)}" if hint else "")
    how = TIR_CONTINUE_PROTOCOL if protocol == "continue" else TIR_PROTOCOL
    system = TIR_SYSTEM + "\n" + how.format(rounds=rounds) if uses_code else COT_SYSTEM
    return Variant(name=name, system=system, hint=hint, uses_code=uses_code)


def initial_messages(problem: str, variant: Variant, constraint: str = "") -> list[dict[str, str]]:
    """The system prompt, then the problem, what its answer must be (e.g. "The answer is an
    integer from 0 to 99999.") and the variant's hint."""
    user = problem.strip() + "".join(f"\n\n{extra}" for extra in (constraint, variant.hint) if extra)
    return [{"role": "system", "content": variant.system}, {"role": "user", "content": user}]


def output_block(feedback: str) -> str:
    """A code block's output as it is appended to the assistant's own turn (Qwen2.5-Math's TIR)."""
    return f"\n```output\n{feedback}\n```\n"


def code_output_message(feedback: str, rounds_left: int) -> str:
    """What the model reads after its code ran: the output, then how many runs remain."""
    if rounds_left > 0:
        remaining = f"You have {rounds_left} code execution{'s' if rounds_left != 1 else ''} left."
    else:
        remaining = NO_MORE_CODE
    return f"```output\n{feedback}\n```\n{remaining}"


def conversation(opening: list[dict[str, str]], history: list[tuple], protocol: str
                 ) -> tuple[list[dict[str, str]], bool]:
    """The messages of the next request, and whether it continues the assistant's last turn.

    `history` is what happened since the opening, in order: ("reply", text) for what the model
    wrote, ("output", feedback, rounds_left) for a code block's output, ("nudge",) for the
    reminder to box an answer. With the continue protocol the replies and outputs of one turn
    are one assistant message, left open after an output; with chat, each is its own message.
    """
    messages = list(opening)
    turn = ""
    for event in history:
        kind = event[0]
        if kind == "reply" and protocol == "continue":
            turn += event[1]
        elif kind == "reply":
            messages.append({"role": "assistant", "content": event[1]})
        elif kind == "output" and protocol == "continue":
            turn += output_block(event[1])
        elif kind == "output":
            messages.append({"role": "user", "content": code_output_message(event[1], event[2])})
        elif kind == "nudge":
            if turn:
                messages.append({"role": "assistant", "content": turn})
                turn = ""
            messages.append({"role": "user", "content": NUDGE_FOR_ANSWER})
    if turn:
        messages.append({"role": "assistant", "content": turn})
    continues = protocol == "continue" and bool(history) and history[-1][0] == "output"
    return messages, continues
