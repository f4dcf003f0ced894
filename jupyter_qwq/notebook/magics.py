"""`%%solve` and `%qwq`: thin adapters from IPython to the Workbench.

Flags are parsed by the same parser as `jupyter-qwq solve`; a bad flag prints a usage line.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from ..engines import runtime
from ..exceptions import ConfigError, QwqError
from ..flags import build_parser, overrides_from_args
from ..redaction import keys_in, known_keys, redact
from .workbench import Workbench

QWQ_USAGE = ("usage: %qwq server start|stop|status|logs [LINES]  |  %qwq config  |  %qwq sandbox  |  "
             "%qwq export [NOTEBOOK] [--to ipynb|html|markdown] [-o OUT] [--branch winner|all]")


def solve_parser():
    parser = build_parser(prog="%%solve", with_problem=False)
    parser.add_argument("--background", action="store_true",
                        help="return at once; the view keeps updating and has a Stop button")
    parser.add_argument("--out", metavar="NAME", help="also store the Session in this variable")
    parser.add_argument("--side-by-side", action="store_true", help="show the branches in columns")
    return parser


@magics_class
class SolveMagics(Magics):
    def __init__(self, shell: Any, workbench: Workbench) -> None:
        super().__init__(shell)
        self.workbench = workbench

    @cell_magic
    def solve(self, line: str, cell: str) -> Any:
        """%%solve [flags]: solve the problem in the cell body. `%%solve --help` lists the flags."""
        keys = known_keys(self.workbench.settings.api_key, *keys_in(line))
        try:
            return self._solve(line, cell)
        except (QwqError, ValueError) as error:  # before the record exists: one line
            _say(redact(f"%%solve: error: {error}", keys))
        except KeyboardInterrupt:
            _say("%%solve: stopped before the solve began")
        except Exception as error:  # noqa: BLE001 - a bug: shown, with the key hidden
            self._show_unexpected(error, keys)
        return None

    def _solve(self, line: str, cell: str) -> Any:
        parser = solve_parser()
        words = shlex.split(line)
        if "-h" in words or "--help" in words:
            parser.print_help()
            return None
        args = parser.parse_args(words)
        if args.out is not None and not args.out.isidentifier():
            raise ConfigError(f"--out needs a Python name, not {args.out!r}")
        return self.workbench.solve(cell, overrides_from_args(args), args.background, args.out,
                                    args.side_by_side)

    def _show_unexpected(self, error: Exception, keys: list[str]) -> None:
        """A bug's traceback, as IPython shows one, but from this magic down: IPython's own
        would start at the cell's line, flags and all, and the key with them."""
        lines = self.shell.InteractiveTB.structured_traceback(type(error), error, error.__traceback__)
        self.shell._showtraceback(type(error), redact(str(error), keys), [redact(x, keys) for x in lines])

    @line_magic
    def qwq(self, line: str) -> None:
        """%qwq server start|stop|status|logs [LINES] · config · sandbox · export [NOTEBOOK] [flags]"""
        words = shlex.split(line)
        try:
            if words[:1] == ["config"]:
                self._config()
            elif words[:1] == ["export"]:
                self._export(words[1:])
            elif words == ["sandbox"]:
                from ..kernels.sandbox_check import format_report

                print(format_report())
            elif words[:1] == ["server"] and len(words) >= 2:
                self._server(words[1], words[2:])
            else:
                _say(QWQ_USAGE)
        except QwqError as error:
            _say(f"%qwq: error: {error}")

    def _export(self, words: list[str]) -> None:
        from ..views.export import export_command, export_parser

        if "-h" in words or "--help" in words:
            export_parser("%qwq export").print_help()
            return
        print(f"exported to {export_command(words, prog='%qwq export')}")

    def _config(self) -> None:
        settings = self.workbench.settings
        from_files = self.workbench.from_files
        changed = settings.config.get("Solve", {})
        print(f"{'option':<22}{'value':<28}from")
        for name in sorted(settings.trait_names(config=True)):
            value = getattr(settings, name)
            shown = "(set)" if name == "api_key" and value else repr(value)
            if name in changed and (name not in from_files or changed[name] != from_files[name]):
                source = "%config"
            elif name in from_files:
                source = "ipython_config.py"
            else:
                source = "default"
            print(f"{name:<22}{shown:<28}{source}")

    def _server(self, action: str, rest: list[str]) -> None:
        if action == "start":
            engine = self.workbench.start_server()
            print(f"{engine.info.kind} serving {engine.info.model} at {engine.info.endpoint}")
        elif action == "stop":
            count = len(runtime.running_servers())
            runtime.stop_servers()
            print(f"stopped {count} server(s)")
        elif action == "status":
            self._status()
        elif action == "logs":
            self._logs(int(rest[0]) if rest and rest[0].isdigit() else 40)
        else:
            _say(QWQ_USAGE)

    def _logs(self, lines: int) -> None:
        """The running servers' logs; else the last server's, which tells why it stopped."""
        from ..engines.managed import describe_exit

        last = runtime.last_server()
        servers = runtime.running_servers() or ([last] if last is not None else [])
        if not servers:
            print("no managed server was started in this kernel (%qwq server start starts one)")
        for server in servers:
            state = "running" if server.alive else describe_exit(server.exit_status())
            print(f"== {server.label} server, {state}: {server.log_path}\n{server.log_tail(lines)}")

    def _status(self) -> None:
        from ..engines.vllm import visible_gpu_count

        servers = runtime.running_servers()
        if not servers:
            print("no managed server is running; the next %%solve starts "
                  f"{runtime.choose_kind(self.workbench.settings)} (%qwq server start starts it now)")
            return
        gpus = visible_gpu_count()
        device = f"{gpus} GPU(s)" if gpus else "CPU"
        for server in servers:
            print(f"engine  {server.kind}\nmodel   {server.model_name}\nurl     {server.base_url}\n"
                  f"uptime  {server.uptime:.0f} s\ndevice  {device}\nlog     {server.log_path}\n"
                  f"{server.log_tail(5)}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load(shell: Any) -> Workbench:
    from ..engines.managed import cleanup_stale_servers

    try:
        cleanup_stale_servers()  # left by a kernel that crashed before it could stop them
    except Exception:
        pass
    workbench = Workbench(shell)
    shell.register_magics(SolveMagics(shell, workbench))
    return workbench


def unload(workbench: Workbench) -> None:
    workbench.close()
