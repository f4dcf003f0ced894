"""Runs N branches concurrently, votes as they finish (weighing them as the settings say), and
stops the rest once the stop rule says so, the token budget or the time limit runs out."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .answers.thread import in_answer_thread
from .branch import BranchRun
from .decisions.policy import Policy
from .decisions.scoring import Scorer, measure_confidence
from .decisions.stops import Window, should_stop, threshold
from .decisions.votes import tally
from .events import Emitter, Listener
from .exceptions import ConfigError, KernelError, QwqError
from .prompts import variant_for
from .sampling import resolve as resolve_sampling
from .session import Branch, BranchStatus, EngineInfo, Session, SolveStatus, Vote

if TYPE_CHECKING:
    from .config import Solve
    from .engines.client import EngineClient
    from .engines.runtime import Recovery
    from .kernels import KernelPool

# A problem longer than this is almost surely a mistake (a pasted file), not a problem.
MAX_PROBLEM_CHARS = 200_000


def check_problem(problem: object) -> str:
    if not isinstance(problem, str):
        raise ConfigError(f"the problem must be text, not {type(problem).__name__}")
    text = problem.strip()
    if not text:
        raise ConfigError("the problem is empty: write the problem to solve (in the cell, or as an argument)")
    if "\x00" in text or not _is_utf8(text):
        raise ConfigError("the problem is not text (NUL bytes or invalid UTF-8): is it a binary file? "
                          "Pass the problem as UTF-8 text")
    if len(text) > MAX_PROBLEM_CHARS:
        raise ConfigError(
            f"the problem is {len(text):,} characters long (at most {MAX_PROBLEM_CHARS:,}); "
            "shorten it to the problem itself"
        )
    return text


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")  # undecodable bytes from argv come back as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def new_session(problem: str, config: Solve, engine: EngineInfo) -> Session:
    """The record of a solve about to start: the problem (checked by the caller, see
    check_problem), the settings as they will be used (sampling resolved for the model), and one
    pending branch per variant."""
    options = config.options()
    base_seed = config.seed if config.seed >= 0 else random.randrange(2**31 - 2**20)
    sampling, family = resolve_sampling(config, engine.model)
    options.update(sampling, seed=base_seed, sampling_defaults=f"{family.name} ({family.source})")
    session = Session(
        problem=problem,
        config=options,
        engine=replace(engine),  # this solve's copy: it records what the engine gave
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    greedy = config.greedy_branch and family.greedy and config.temperature is None
    session.branches = [
        Branch(
            index=i,
            prompt=variant_for(i, config.rounds, config.prompts, config.hints).name,
            seed=base_seed + i,
            sampling={**sampling, "temperature": 0.0} if greedy and i == 0 else dict(sampling),
            protocol=config.tool_protocol,
        )
        for i in range(config.branches)
    ]
    return session


class Solver:
    """One solve: its branches run concurrently, the vote is taken as they finish, and the rest
    are stopped once it is decided. The branches read what they share from here."""

    def __init__(self, session: Session, config: Solve, client: EngineClient, kernels: KernelPool,
                 listeners: Sequence[Listener] = (), recovery: Recovery | None = None) -> None:
        self.session = session
        self.config = config
        self.client = client
        self.kernels = kernels
        self.recovery = recovery
        self.emitter = Emitter(listeners)
        self.started = time.monotonic()
        self.policy = Policy.from_config(config)
        self.scorer = Scorer(config, client)
        self.threshold: float | None = None  # --stop confidence: set once the warm-up has ended
        self._windows: dict[int, Window] = {}
        self._over_budget = asyncio.Event()
        self._later: list[BranchRun] = []  # branches not started yet (--stop confidence)

    def now(self) -> float:
        """Seconds since the solve started."""
        return time.monotonic() - self.started

    def emit(self, kind: str, branch: int | None = None) -> None:
        self.emitter.emit(kind, self.session, branch)

    def wrote(self) -> None:
        """A branch wrote more tokens: past the solve's token budget, the supervisor stops all."""
        budget = self.config.token_budget
        if budget and self.session.completion_tokens >= budget:
            self._over_budget.set()

    def keeps_going(self, branch: Branch, confidences: list[float]) -> bool:
        """False when a branch after the warm-up falls below the confidence threshold."""
        if not self.policy.cuts or branch.index < self.policy.warmup:
            return True
        window = self._windows.setdefault(branch.index, Window(self.policy.window))
        current = window.add(confidences)
        return self.threshold is None or current is None or current >= self.threshold

    async def score_branch(self, branch: Branch) -> None:
        """Its confidence measures, and its score when it answered (a PRM or critic is asked)."""
        measure_confidence(branch, self.policy.window)
        if branch.answer is not None and self.policy.score != "none":
            await self.scorer.score(branch, self.session.problem)

    async def run(self) -> Session:
        """Solve, filling the record as it goes; the record, also on an error (as `.session`)."""
        session = self.session
        self.started = time.monotonic()
        self.emit("started")
        runs = [BranchRun(self, branch) for branch in session.branches]
        # Every branch that may run code gets a kernel warming up while its first tokens stream.
        await self.kernels.fill(sum(run.variant.uses_code for run in runs))
        # DeepConf online: the branches after the warm-up start once it has set the threshold.
        first = runs[: self.policy.warmup] if self.policy.cuts and self.policy.warmup else runs
        self._later = runs[len(first):]
        tasks = {_start(run): run.branch for run in first}
        try:
            await self._supervise(session, tasks, self.started)
        except BaseException as error:
            await self._stop_rest(tasks, set(tasks), "cancelled")
            session.status = _status_for(error)
            session.ended_by = "cancelled" if session.status is SolveStatus.CANCELLED else "error"
            if isinstance(error, QwqError):
                session.error = str(error)
                error.session = session
            elif isinstance(error, Exception):
                session.error = f"{type(error).__name__}: {error}"
            raise
        finally:
            await self.scorer.aclose()
            session.elapsed = self.now()
            if self.config.top_logprobs and session.completion_tokens:
                session.engine.logprobs = any(b.confidence is not None for b in session.branches)
            self.emit("finished")
        return session

    def _tally(self) -> Vote:
        session = self.session
        answers = {b.index: _voting(b, self.config.vote_fallbacks) for b in session.branches}
        scores = {b.index: b.score for b in session.branches}
        return tally(answers, scores, self.policy.vote, self.policy.keep_top)

    def _warmed_up(self) -> bool:
        """The warm-up branches have ended; the first time, the cut threshold is set from them."""
        warmup = self.session.branches[: self.policy.warmup]
        if not all(b.status.finished for b in warmup):
            return False
        if self.policy.cuts and self.threshold is None:
            self.threshold = threshold((b.confidence_scores.get("lowest_group") for b in warmup),
                                       self.policy.percentile)
        return True

    async def _stop_rest(self, tasks: dict[asyncio.Task, Branch], pending: set[asyncio.Task],
                         reason: str) -> None:
        """Stop the running branches and those not started, recording why."""
        for run in self._later:
            run.branch.status = BranchStatus.STOPPED
            run.branch.stop_reason = reason
        self._later = []
        await _stop({t: tasks[t] for t in pending}, reason)

    async def _supervise(self, session: Session, tasks: dict[asyncio.Task, Branch], started: float) -> None:
        deadline = started + self.config.time_limit if self.config.time_limit else None
        pending = set(tasks)
        over_budget = asyncio.create_task(self._over_budget.wait())
        session.ended_by = "finished"
        lost: list[KernelError] = []  # branches whose kernel could not start or was lost
        try:
            while pending:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, _ = await asyncio.wait(pending | {over_budget}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                pending -= done
                if not done:  # the wall-clock budget ran out
                    await self._stop_rest(tasks, pending, "time-limit")
                    session.status = SolveStatus.TIMED_OUT
                    session.ended_by = "time-limit"
                    session.error = (
                        f"the time limit of {self.config.time_limit:g} s ran out; "
                        f"{len(pending)} branch(es) were stopped (raise --time-limit to give them longer)"
                    )
                    break
                for task in done - {over_budget}:
                    error = None if task.cancelled() else task.exception()
                    if isinstance(error, KernelError):
                        lost.append(error)  # that branch failed, with its kernel; the others go on
                    elif error is not None:
                        raise error
                session.vote = await in_answer_thread(self._tally)
                warmed_up = self._warmed_up()
                session.vote.threshold = self.threshold
                self.emit("vote")
                if pending and self._over_budget.is_set():
                    # their partial text gives no answer; the answers so far vote
                    await self._stop_rest(tasks, pending, "budget")
                    session.ended_by = "token-budget"
                    break
                if should_stop(self.policy, session.vote, len(pending) + len(self._later), warmed_up):
                    await self._stop_rest(tasks, pending, "stopped-decided")  # the vote stands
                    session.ended_by = "decided"
                    break
                if warmed_up and self._later:
                    for run in self._later:
                        task = _start(run)
                        tasks[task] = run.branch
                        pending.add(task)
                    self._later = []
            if lost and session.vote.answer is None and session.ended_by == "finished":
                raise lost[0]  # nothing to show but what went wrong
        finally:
            over_budget.cancel()
        session.vote.decided_early = session.ended_by == "decided"
        if session.status is SolveStatus.RUNNING:
            session.status = SolveStatus.DONE
        self.emit("vote")


def _voting(branch: Branch, with_fallbacks: bool) -> str | None:
    if branch.stop_reason != "answered":
        return None  # still being scored, or stopped: only an ended, weighed branch votes
    return branch.voting_answer(with_fallbacks)  # a fallback, or one outside the constraint: no


def _start(run: BranchRun) -> asyncio.Task:
    return asyncio.create_task(run.run(), name=f"branch-{run.branch.index}")


async def _stop(tasks: dict[asyncio.Task, Branch], reason: str) -> None:
    """Cancel the branches still running, recording why (the first reason given stands)."""
    for task, branch in tasks.items():
        if not task.done():
            branch.stop_reason = branch.stop_reason or reason
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _status_for(error: BaseException) -> SolveStatus:
    if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
        return SolveStatus.CANCELLED
    return SolveStatus.FAILED
