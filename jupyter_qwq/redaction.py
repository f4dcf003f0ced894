"""Keeping API keys out of what is shown and saved.

The record never holds the key (Solve.options() leaves it out), but a key typed on a command
line (`%%solve --api-key KEY`, `%config Solve.api_key = "KEY"`) travels with that line: into
error messages, tracebacks, and the cells an export keeps. Everything that echoes such a line,
or text that may quote a key, passes it through here first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

HIDDEN = "***"
KEY_VARIABLES = ("JUPYTER_QWQ_API_KEY", "OPENAI_API_KEY")
# `--api-key KEY`, `--api-key=KEY`, `api_key = "KEY"` (%config, ipython_config.py, a keyword).
_KEY_SETTING = re.compile(r"""(--api-key(?:=|\s+)|\bapi_key\s*=\s*)(["']?)([^\s"']+)\2""")


def hide_key_settings(text: str) -> str:
    """`text` with the value of every API key setting in it replaced by ***."""
    return _KEY_SETTING.sub(lambda m: f"{m.group(1)}{m.group(2)}{HIDDEN}{m.group(2)}", text)


def keys_in(text: str) -> list[str]:
    """The API keys set in `text` (a command line, a cell)."""
    return [m.group(3) for m in _KEY_SETTING.finditer(text) if m.group(3) != HIDDEN]


def known_keys(*more: str) -> list[str]:
    """The keys from the environment, with `more` (a configured key, keys typed in a line)."""
    return [key for key in (*more, *(os.environ.get(name, "") for name in KEY_VARIABLES)) if key]


def redact(text: str, keys: Iterable[str]) -> str:
    """`text` with every key setting hidden and every one of `keys` replaced by ***."""
    text = hide_key_settings(text)
    for key in sorted(set(keys), key=len, reverse=True):
        if len(key) >= 4:  # a shorter "key" would hide ordinary words
            text = text.replace(key, HIDDEN)
    return text
