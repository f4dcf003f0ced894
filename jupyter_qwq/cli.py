"""`jupyter-qwq`: the headless entry point.

    jupyter-qwq solve PROBLEM [flags]    solve one problem (PROBLEM '-' reads standard input)
    jupyter-qwq --version
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from rich.console import Console

from ._version import __version__
from .config import FlagError, build_parser, make_config, overrides_from_args
from .exceptions import ConfigError, QwqError
from .session import Session

USAGE = "usage: jupyter-qwq {solve} ... | jupyter-qwq --version"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stderr = Console(stderr=True, highlight=False)
    if argv in (["--version"], ["-V"]):
        print(f"jupyter-qwq {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command == "solve":
        return _solve_command(rest, stderr)
    _say(f"jupyter-qwq: unknown command {command!r}\n{USAGE}")
    return EXIT_USAGE


def _solve_command(argv: list[str], stderr: Console) -> int:
    parser = build_parser()
    parser.add_argument("--json", action="store_true", help="print only the record, as JSON, on stdout")
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
        problem = _read_stdin() if args.problem == "-" else args.problem
        config = make_config(None, **overrides_from_args(args))
    except (FlagError, ConfigError) as error:
        _say(f"jupyter-qwq solve: error: {error}")
        return EXIT_USAGE
    return _run(problem, config, as_json=args.json, stderr=stderr)


def _run(problem: str, config: Any, as_json: bool, stderr: Console) -> int:
    from .api import async_solve
    from .engines.runtime import stop_servers
    from .progress import LiveProgress, print_summary

    seen: dict[str, Session] = {}
    listeners: list[Any] = [lambda event: seen.__setitem__("session", event.session)]
    live = None
    if not as_json and stderr.is_terminal:
        live = LiveProgress(stderr)
        listeners.append(live)
    code = 0
    try:
        session = asyncio.run(async_solve(problem, config, listeners=listeners))
    except KeyboardInterrupt:
        _say("jupyter-qwq solve: interrupted; every branch and subkernel was stopped")
        code = EXIT_INTERRUPTED
    except QwqError as error:
        _say(f"jupyter-qwq solve: error: {error}")
        code = EXIT_USAGE if isinstance(error, ConfigError) else EXIT_FAILED
    else:
        if session.error:
            _say(f"jupyter-qwq solve: {session.error}")
    finally:
        if live is not None:
            live.stop()
        stop_servers()
    session = seen.get("session")
    if session is None:
        return code
    if as_json:
        print(session.to_json())
    else:
        print_summary(Console(highlight=False), session)
    return code


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("standard input is not UTF-8 text: is it a binary file? Pass the problem as text") from None


def _say(message: str) -> None:
    """Errors go out as plain lines: never wrapped, never a traceback."""
    print(message, file=sys.stderr, flush=True)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
