"""One reasoning branch: stream a reply, run its code in the branch's subkernel, feed the output
back, repeat up to the round limit, and end with an answer. The branch writes into its record."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import TYPE_CHECKING, Protocol

from . import prompts
from .answers import extract_answer
from .answers.thread import in_answer_thread
from .codeblocks import first_complete_block
from .confidence import Trace
from .decisions.scoring import measure_confidence
from .engines.client import Delta, Sampling, Usage
from .exceptions import ContinuationRefused, EngineDied, EngineUnreachable, KernelError
from .session import Branch, BranchStatus, Step

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .config import Solve
    from .decisions.policy import Policy
    from .engines.client import EngineClient
    from .engines.runtime import Recovery
    from .kernels import KernelPool, Subkernel
    from .session import Session


class Shared(Protocol):
    """What a branch reads from its solve (solver.Solver): the record, the settings, the engine,
    the kernels, the recovery of a dead server, the clock and the events."""

    session: Session
    config: Solve
    client: EngineClient
    kernels: KernelPool
    recovery: Recovery | None
    policy: Policy
    threshold: float | None

    def now(self) -> float: ...

    def emit(self, kind: str, branch: int | None = None) -> None: ...

    def wrote(self) -> None: ...

    def keeps_going(self, branch: Branch, confidences: list[float]) -> bool: ...

    async def score_branch(self, branch: Branch) -> None: ...


class LowConfidence(Exception):
    """The branch's current confidence window fell below the solve's threshold (--stop confidence)."""

# Stop strings: Qwen2.5-Math-style models write the output fence themselves.
STOP = ["```output"]


class BranchRun:
    """One branch of a solve; what it shares with the others (the engine, the kernels, the record,
    the clock) it reads from its solver."""

    def __init__(self, solver: Shared, branch: Branch) -> None:
        self.solver = solver
        self.session = solver.session
        self.config = solver.config
        self.client = solver.client
        self.kernels = solver.kernels
        self.recovery = solver.recovery
        self.branch = branch
        self.variant = prompts.variant_for(branch.index, self.config.rounds, self.config.prompts,
                                           self.config.hints, branch.protocol or self.config.tool_protocol)
        self.kernel: Subkernel | None = None
        self._confidence_total = 0.0  # over every text step, for the branch's mean
        self._confidence_tokens = 0

    def now(self) -> float:
        return self.solver.now()

    def emit(self, kind: str) -> None:
        self.solver.emit(kind, self.branch.index)

    async def run(self) -> None:
        branch = self.branch
        branch.started = self.now()
        branch.status = BranchStatus.RUNNING
        self.emit("branch_started")
        try:
            await self._converse()
            self._settle_answer()
            await self._check_constraint()
            await self.solver.score_branch(branch)
            branch.stop_reason = "answered" if branch.answer is not None else "no-answer"
        except LowConfidence as cut:
            branch.status = BranchStatus.STOPPED  # a cut branch does not vote
            branch.stop_reason = "cut-low-confidence"
            branch.notes.append(str(cut))
        except asyncio.CancelledError:
            branch.status = BranchStatus.STOPPED  # its unfinished text gives no answer
            branch.stop_reason = branch.stop_reason or "cancelled"
            raise
        except Exception as error:
            branch.status = BranchStatus.FAILED
            branch.stop_reason = "error"
            branch.error = str(error) or type(error).__name__
            raise
        finally:
            branch.ended = self.now()
            if not branch.confidence_scores and branch.confidence is not None:
                measure_confidence(branch, self.solver.policy.window)
            if self.kernel is not None:
                kernel, self.kernel = self.kernel, None
                await self.kernels.release(kernel, wait=False)  # it stops while the vote goes on
            self.emit("branch_finished")

    async def _converse(self) -> None:
        opening = prompts.initial_messages(self.session.problem, self.variant,
                                           self.config.answer_constraint().describe())
        self.branch.messages = [dict(message) for message in opening]
        history: list[tuple] = []
        rounds_left = self.config.rounds if self.variant.uses_code else 0
        nudged = False
        while True:
            budget = self.config.max_tokens - self.branch.completion_tokens
            if budget <= 0:
                return
            step = await self._next_reply(opening, history, budget, may_run_code=rounds_left > 0)
            history.append(("reply", step.text))
            block = first_complete_block(step.text) if rounds_left > 0 else None
            if block is not None:
                rounds_left -= 1
                history.append(("output", await self._execute(block.code), rounds_left))
                continue
            if not nudged and step.text.strip() and not _has_boxed_answer(step.text):
                # One reminder, as a user would give: small models often forget the box.
                nudged = True
                history.append(("nudge",))
                continue
            return

    async def _next_reply(self, opening: list[dict[str, str]], history: list[tuple], budget: int,
                          may_run_code: bool) -> Step:
        """The model's next reply; an endpoint that cannot continue a turn gets chat turns."""
        messages, continues = prompts.conversation(opening, history, self.branch.protocol)
        try:
            return await self._stream_or_recover(messages, budget, may_run_code, continues)
        except ContinuationRefused as refusal:
            self.branch.steps.pop()
            self.branch.rounds -= 1
            self.branch.protocol = "chat"
            self.branch.notes.append(f"the endpoint cannot continue a turn ({refusal}); code "
                                     "output went back as chat messages instead")
            messages, continues = prompts.conversation(opening, history, "chat")
            return await self._stream_or_recover(messages, budget, may_run_code, continues)

    async def _stream_or_recover(self, messages: list[dict[str, str]], budget: int, may_run_code: bool,
                                 continues: bool = False) -> Step:
        """Stream a reply; if a managed server dies under it, restart the server and retry (the
        recovery allows one restart per solve; the next death ends the solve, saying how)."""
        while True:
            generation = self.recovery.generation if self.recovery else 0
            try:
                return await self._stream_reply(messages, budget, may_run_code, continues)
            except (EngineDied, EngineUnreachable) as error:
                if self.recovery is None:
                    raise
                restarted = await self.recovery(generation)
                crash = self.recovery.crash
                if restarted is None:
                    raise self.recovery.failure(error) from None
                lost = self.branch.steps.pop()
                self.branch.rounds -= 1
                how = crash.split(". ", 1)[0] if crash else f"closed the stream ({type(error).__name__})"
                self.branch.notes.append(
                    f"at {self.now():.1f} s, mid-reply: {how} ({len(lost.text)} characters lost); "
                    f"{self.recovery.retried(restarted)}"
                )

    async def _stream_reply(self, messages: list[dict[str, str]], budget: int, may_run_code: bool,
                            continues: bool) -> Step:
        step = Step(kind="text", started=self.now())
        self.branch.steps.append(step)
        self.branch.rounds += 1
        usage = Usage()
        counted = self.branch.completion_tokens
        sampling = self._sampling(budget)
        trace = Trace()
        stream = self.client.stream_chat(messages, sampling, usage, continue_turn=continues)
        try:
            async with aclosing(stream):
                await self._read_stream(stream, step, trace, usage, counted, may_run_code)
        finally:  # every way out, a cut or a lost stream included, leaves the whole trace encoded
            if len(trace):
                step.confidence = trace.encoded()
        step.tokens = usage.completion_tokens
        step.engine = usage.served_by
        step.duration = self.now() - step.started
        self.branch.completion_tokens = counted + usage.completion_tokens
        self.branch.prompt_tokens += usage.prompt_tokens
        return step

    async def _read_stream(self, stream: AsyncIterator[Delta], step: Step, trace: Trace, usage: Usage,
                           counted: int, may_run_code: bool) -> None:
        async for delta in stream:
            step.reasoning += delta.reasoning
            step.text += delta.content
            if delta.confidences:
                self._add_confidences(step, trace, delta.confidences)
            self.branch.completion_tokens = counted + usage.completion_tokens
            self.solver.wrote()
            self.emit("delta")
            if delta.confidences and not self.solver.keeps_going(self.branch, delta.confidences):
                step.tokens = usage.completion_tokens
                step.duration = self.now() - step.started
                raise LowConfidence(  # leaving closes the stream: the server stops writing
                    f"cut at {self.branch.completion_tokens} tokens: its last "
                    f"{self.solver.policy.window} tokens' confidence fell below the threshold "
                    f"{self.solver.threshold:.3f} set by the warm-up branches")
            if may_run_code and "`" in delta.content:
                block = first_complete_block(step.text)
                if block is not None:
                    step.text = step.text[: block.end]
                    return  # leaving closes the stream: the server stops writing

    def _sampling(self, budget: int) -> Sampling:
        seed = self.branch.seed
        return Sampling(
            **self.branch.sampling,
            max_tokens=budget,
            # A new seed each round, or a retried round would repeat itself word for word.
            seed=None if seed is None else seed + 1000 * (self.branch.rounds - 1),
            stop=STOP,
            top_logprobs=self.config.top_logprobs,
        )

    def _add_confidences(self, step: Step, trace: Trace, confidences: list[float]) -> None:
        trace.extend(confidences)
        # Re-encoding the whole trace at every token would cost the square of its length (2 s of
        # CPU for a 32k-token branch); a live view can lag by an eighth of the trace.
        shown = len(step.confidence) * 3 // 8  # tokens already encoded: 2 bytes each, base64
        if len(trace) - shown >= max(64, shown // 8):
            step.confidence = trace.encoded()
        self._confidence_total += sum(confidences)
        self._confidence_tokens += len(confidences)
        self.branch.confidence = round(self._confidence_total / self._confidence_tokens, 3)

    async def _execute(self, code: str) -> str:
        step = Step(kind="code", code=code, started=self.now())
        self.branch.steps.append(step)
        self.branch.status = BranchStatus.EXECUTING
        self.emit("code_started")
        try:
            if self.kernel is None:
                self.kernel = await self.kernels.acquire()
                self.branch.kernel = self.kernel.where
            execution = await self.kernel.execute(code, timeout=self.config.code_timeout)
        except KernelError as lost:  # the branch fails; the record keeps what it printed
            step.outputs, step.execution = lost.outputs, "lost" if self.kernel else "no-kernel"
            step.duration = self.now() - step.started
            raise
        step.outputs = execution.outputs
        step.execution = "restarted" if execution.restarted and execution.status == "ok" else execution.status
        step.feedback = execution.feedback(self.config.output_limit)
        step.duration = self.now() - step.started
        self.branch.status = BranchStatus.RUNNING
        self.emit("code_finished")
        return step.feedback

    def _settle_answer(self) -> None:
        found = _answer_of(self.branch.steps)
        if found is not None:
            self.branch.answer, self.branch.answer_source = found
        self.branch.status = BranchStatus.ANSWERED if found else BranchStatus.NO_ANSWER

    async def _check_constraint(self) -> None:
        """Mark an answer that breaks --answer-type/--answer-range: it stays, but does not vote."""
        constraint = self.config.answer_constraint()
        if self.branch.answer is not None and constraint.active:
            # reading "\\frac{84}{2}" may import and run SymPy
            self.branch.answer_outside = await in_answer_thread(constraint.violation, self.branch.answer)


def _answer_of(steps: list[Step]) -> tuple[str, str] | None:
    """The last answer in the replies: a boxed one first (the visible text, then the thinking),
    else a fallback, recorded as such."""
    text = "\n".join(s.text for s in steps if s.kind == "text")
    reasoning = "\n".join(s.reasoning for s in steps if s.kind == "text")
    found = [extract_answer(part) for part in (text, reasoning) if part.strip()]
    found = [f for f in found if f is not None]
    for candidate in sorted(found, key=lambda f: f.source != "boxed"):
        return candidate.answer, candidate.source
    return None


def _has_boxed_answer(text: str) -> bool:
    found = extract_answer(text)
    return found is not None and found.source == "boxed"
