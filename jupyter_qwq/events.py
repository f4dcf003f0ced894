"""What the solver tells its views. Views read the Session record; an event says what changed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """kind: started, branch_started, delta, code_started, code_finished, branch_finished, vote
    or finished; `branch` is the branch's index for the branch_* and code_* kinds and delta."""

    kind: str
    session: Session
    branch: int | None = None


Listener = Callable[[Event], Any]


class Emitter:
    """Calls every listener for every event; a failing listener is logged, never fatal."""

    def __init__(self, listeners: tuple[Listener, ...] | list[Listener] = ()) -> None:
        self._listeners = list(listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, kind: str, session: Session, branch: int | None = None) -> None:
        event = Event(kind, session, branch)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken view must not stop the solve
                log.exception("a jupyter_qwq view failed on the %r event", kind)
