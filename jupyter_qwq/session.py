"""The Session record: the single source of truth of a solve.

Every view (terminal progress, JSON output, widgets, exports; jupyter_qwq/views) is a function of
this record, which imports none of them. It serialises to a versioned JSON document;
`Session.from_dict(s.to_dict()) == s`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1
MIME_TYPE = "application/vnd.jupyter-qwq.session+json"


class BranchStatus(str, enum.Enum):
    PENDING = "pending"  # not started yet
    RUNNING = "running"  # the model is writing
    EXECUTING = "executing"  # its code is running in the subkernel
    ANSWERED = "answered"  # ended with an answer
    NO_ANSWER = "no_answer"  # ended without any answer the extractor could find
    STOPPED = "stopped"  # cancelled: early stop, budget, or the user
    FAILED = "failed"  # the engine or the kernel failed under it

    @property
    def finished(self) -> bool:
        return self not in (BranchStatus.PENDING, BranchStatus.RUNNING, BranchStatus.EXECUTING)


class SolveStatus(str, enum.Enum):
    RUNNING = "running"
    DONE = "done"  # every branch ended, or the vote was decided early
    TIMED_OUT = "timed_out"  # the wall-clock budget ran out
    CANCELLED = "cancelled"  # stopped by the user
    FAILED = "failed"  # an error ended it; see Session.error


@dataclass
class Step:
    """One part of a branch: model text (with its thinking), or a code block and its outputs.

    `outputs` are nbformat output dicts (stream, execute_result, display_data, error), so they can
    go straight into a notebook cell.
    """

    kind: str  # "text" or "code"
    text: str = ""
    reasoning: str = ""
    code: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution: str = ""  # for code: ok | error | timeout | restarted | crashed; on a gateway, lost | no-kernel
    feedback: str = ""  # for code: exactly what was sent back to the model
    confidence: str = ""  # for text: each token's confidence, encoded (see confidence.py)
    tokens: int = 0
    engine: str = ""  # for text: the endpoint that wrote it, when several serve the solve
    started: float = 0.0  # seconds since the solve started
    duration: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class StepScore:
    """The score of one step of a branch's solution (a paragraph of a text step, or a code
    step's output): `text[start:end]` of record step `step` (its `feedback` for code)."""

    step: int
    start: int
    end: int
    score: float  # prm: probability the step is right; critic: 1 before the first wrong step, 0 at it


@dataclass
class Branch:
    index: int
    prompt: str  # name of the prompt variant (e.g. "tir", "cot+hint-2")
    seed: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, top_k, min_p
    messages: list[dict[str, str]] = field(default_factory=list)  # the exact opening: system, user
    protocol: str = ""  # how code output went back: "continue" (same turn) or "chat" (a new message)
    status: BranchStatus = BranchStatus.PENDING
    answer: str | None = None
    answer_source: str = ""  # "boxed" or "fallback:<rule>"
    steps: list[Step] = field(default_factory=list)
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = 0.0
    ended: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)  # what happened to it, e.g. a server restart
    confidence: float | None = None  # mean token confidence; None when the engine gave none
    kernel: str = ""  # where its code ran: a local sandboxed subkernel, or a gateway's URL
    answer_outside: str = ""  # why the answer breaks the answer constraint, e.g. "not an integer"
    # -- how it was weighed and why it ended (decisions/) --
    stop_reason: str = ""  # answered | no-answer | cut-low-confidence | stopped-decided | budget
    #                        | time-limit | cancelled | error
    score: float | None = None  # its weight in the vote (--score); None: not scored
    confidence_scores: dict[str, float] = field(default_factory=dict)  # DeepConf's measures
    step_scores: list[StepScore] = field(default_factory=list)  # prm / critic: per step

    @property
    def elapsed(self) -> float:
        return max(0.0, self.ended - self.started) if self.ended else 0.0

    def voting_answer(self, with_fallbacks: bool) -> str | None:
        """The answer this branch votes with. A fallback answer (unless `with_fallbacks`) or
        one outside the answer constraint stays in the record, marked, but does not vote."""
        if self.answer_outside or (self.answer_source.startswith("fallback") and not with_fallbacks):
            return None
        return self.answer

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Branch:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["status"] = BranchStatus(values.get("status", "pending"))
        values["steps"] = [Step.from_dict(s) for s in values.get("steps", [])]
        values["step_scores"] = [StepScore(**s) for s in values.get("step_scores", [])]
        return cls(**values)


@dataclass
class TallyItem:
    answer: str
    count: int
    branches: list[int]
    weight: float | None = None  # what the group weighed in the vote (count, score sum or best)


@dataclass
class Vote:
    answer: str | None = None
    tally: list[TallyItem] = field(default_factory=list)
    agreement: float = 0.0  # share of answered branches in the winning group
    tie: bool = False  # the top groups had equal counts; the tie rule picked one
    decided_early: bool = False  # the stop rule ended the solve before every branch did
    method: str = "majority"  # majority | weighted | best (--vote)
    share: float = 0.0  # the leader's weight over all weights (the confidence stop's consensus)
    dropped: list[int] = field(default_factory=list)  # answered, but outside --keep-top
    threshold: float | None = None  # --stop confidence: the cut threshold the warm-up set

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vote:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["tally"] = [TallyItem(**t) for t in values.get("tally", [])]
        return cls(**values)


@dataclass
class EngineInfo:
    kind: str = ""  # llamacpp | vllm | endpoint
    model: str = ""
    endpoint: str = ""  # base URL; never an API key
    endpoints: list[str] = field(default_factory=list)  # all of them, when several served the solve
    logprobs: bool | None = None  # True: it sent log-probabilities; False: asked, none came

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineInfo:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class Session:
    problem: str
    config: dict[str, Any] = field(default_factory=dict)
    engine: EngineInfo = field(default_factory=EngineInfo)
    branches: list[Branch] = field(default_factory=list)
    vote: Vote = field(default_factory=Vote)
    status: SolveStatus = SolveStatus.RUNNING
    error: str = ""
    created: str = ""  # ISO 8601, UTC
    elapsed: float = 0.0
    ended_by: str = ""  # finished | decided | token-budget | time-limit | error | cancelled
    schema_version: int = SCHEMA_VERSION

    @property
    def answer(self) -> str | None:
        return self.vote.answer

    @property
    def completion_tokens(self) -> int:
        return sum(b.completion_tokens for b in self.branches)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_enum_value))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"This record has schema version {version!r}; this jupyter_qwq reads version "
                f"{SCHEMA_VERSION}. Upgrade jupyter_qwq to read it."
            )
        return cls(
            problem=data["problem"],
            config=dict(data.get("config", {})),
            engine=EngineInfo.from_dict(data.get("engine", {})),
            branches=[Branch.from_dict(b) for b in data.get("branches", [])],
            vote=Vote.from_dict(data.get("vote", {})),
            status=SolveStatus(data.get("status", "running")),
            error=data.get("error", ""),
            created=data.get("created", ""),
            elapsed=data.get("elapsed", 0.0),
            ended_by=data.get("ended_by", ""),
            schema_version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> Session:
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        return (
            f"<Session answer={self.answer!r} status={self.status.value} "
            f"branches={len(self.branches)} elapsed={self.elapsed:.1f}s>"
        )


def _enum_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")
