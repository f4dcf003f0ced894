"""The flags of `jupyter-qwq solve`, `jupyter-qwq eval` and `%%solve`, derived from Solve's traits.

Every configurable trait is a flag: `--name-with-dashes VALUE`, with the trait's type and its help;
a boolean is `--name` / `--no-name`; a choice lists its values. The CLI and the magic parse with
the same `build_parser()`.
"""

from __future__ import annotations

import argparse
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, List, Union

from .config import Solve
from .exceptions import ConfigError

# Spellings kept from before the flags were derived, beside the derived ones.
ALIASES = {"vllm_cpu_kvcache_gib": ["--vllm-cpu-kvcache"]}


class FlagError(ConfigError):
    """A flag the parser does not know, or a value of the wrong type."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print and exit
        raise FlagError(f"{message}\n{self.format_usage().strip()}")


def build_parser(prog: str = "jupyter-qwq solve", with_problem: bool = True) -> argparse.ArgumentParser:
    """The solve flags, shared by the CLI and the %%solve magic."""
    parser = _Parser(prog=prog, description="Solve a problem with reasoning branches.")
    if with_problem:
        parser.add_argument("problem", help="the problem text ('-' reads it from standard input)")
    for name, trait in sorted(Solve.class_traits(config=True).items()):
        names = ["--" + name.replace("_", "-"), *ALIASES.get(name, [])]
        options: dict[str, Any] = {"dest": name, "default": None, "help": trait.help.replace("%", "%%")}
        if isinstance(trait, Bool):
            options["action"] = argparse.BooleanOptionalAction
        elif isinstance(trait, CaselessStrEnum):
            options["choices"] = list(trait.values)
        elif isinstance(trait, List):
            options.update(action="append", metavar=trait.metadata.get("metavar", "DIR"))
        elif isinstance(trait, Union):  # a value, or a list of them: the flag may be repeated
            options.update(action="append", metavar=name.upper())
        else:
            options.update(type=_type_of(trait), metavar=name.upper())
        parser.add_argument(*names, **options)
    return parser


def _type_of(trait: Any) -> Any:
    kind = int if isinstance(trait, Int) else float if isinstance(trait, Float) else str
    if not trait.allow_none:
        return kind
    return lambda text: None if text.lower() == "none" else kind(text)  # "none" lifts a limit


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (unset flags are left to the configuration)."""
    names = set(Solve.class_trait_names(config=True))
    return {name: value for name, value in vars(args).items() if name in names and value is not None}
