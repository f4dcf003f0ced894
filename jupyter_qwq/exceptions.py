"""Every error jupyter_qwq raises on purpose, as one small tree.

    QwqError
    ├── ConfigError            (ValueError)       a bad option value or an empty problem
    ├── ModelNotFound          (FileNotFoundError) the model file or package is missing
    ├── EngineError            (ConnectionError)
    │   ├── EngineUnreachable                      nothing answers at the endpoint
    │   ├── ContinuationRefused                    the endpoint cannot continue an assistant turn
    │   ├── EngineDied                             the server stopped mid-request
    │   │   └── EngineCrashed                      a managed server's process died (how, and its log)
    │   └── ServerStartError                       a managed server never became ready
    ├── KernelError            (RuntimeError)     a subkernel could not be started or used: only
    │   │                                          the branches whose code needed it fail
    │   └── GatewayUnreachable (ConnectionError)  the kernel gateway stopped answering
    └── SolveTimeout           (TimeoutError)     the whole-solve wall-clock budget ran out

Every message says what to do next: it is printed to the user as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session


class QwqError(Exception):
    """Root of jupyter_qwq's errors.

    An error that ends a solve carries the solve's record so far as `.session`.
    """

    session: Session | None = None


class ConfigError(QwqError, ValueError):
    """An option has a value that cannot work, or the problem is empty."""


class ModelNotFound(QwqError, FileNotFoundError):
    """The model to serve cannot be found on disk or in the installed packages."""


class EngineError(QwqError, ConnectionError):
    """The engine could not be reached, started, or kept alive."""


class EngineUnreachable(EngineError):
    """No OpenAI-compatible server answers at the endpoint."""


class ContinuationRefused(EngineError):
    """The endpoint refused to continue the assistant's turn (continue_final_message)."""


class EngineDied(EngineError):
    """The server closed the connection or exited in the middle of a request."""


class EngineCrashed(EngineDied):
    """A server jupyter_qwq started died under a request: a crash, a signal, the OOM killer.

    The message says how it ended and quotes its log: the engine failed, not the user's code.
    """


class ServerStartError(EngineError):
    """A managed server exited or timed out before it was ready."""


class KernelError(QwqError, RuntimeError):
    """A subkernel could not be started, or died in a way that cannot be recovered.

    Only the branch that needed that kernel fails; the others go on, and the solve fails only if
    no branch answered. `outputs`: what the lost block had printed (nbformat dicts).
    """

    def __init__(self, message: str, outputs: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs or []


class GatewayUnreachable(KernelError, ConnectionError):
    """The kernel gateway (--kernel-gateway) did not answer: a kernel could not be started there,
    or the one running a branch's code was lost with it."""


class SolveTimeout(QwqError, TimeoutError):
    """The wall-clock budget of a solve ran out."""
