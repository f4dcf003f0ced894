"""What a piece of code did in a subkernel: its outputs as nbformat dicts, and the text the model
reads back (errors cut to the user's own frame, long output cut in the middle)."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Execution", "Outputs"]

MAX_OUTPUT_BYTES = 1_000_000
TRACEBACK_LINES = 8
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")



@dataclass
class Execution:
    """What one piece of code did in a subkernel."""

    status: str  # "ok" | "error" | "timeout" | "crashed"
    outputs: list[dict[str, Any]] = field(default_factory=list)  # nbformat v4 output dicts
    duration: float = 0.0
    restarted: bool = False  # the kernel was restarted afterwards, so its state is gone
    timeout: float = 0.0  # the limit the code ran under
    exit_code: int | None = None  # for "crashed": the process return code (-N: killed by signal N)
    replayed: int = 0  # after a restart: earlier successful blocks re-run to restore the state
    replay_total: int = 0  # how many there were to re-run (replayed < replay_total: some failed)

    def feedback(self, limit: int = 1000) -> str:
        """The plain text the model gets back, at most about `limit` characters."""
        pieces = [_output_text(o) for o in self.outputs if not self._is_our_interrupt(o)]
        note = self._status_note()
        text = _join_blocks([*pieces, note] if note else pieces)
        if not text.strip():
            text = "(no output; use print() to see values)"
        return _shorten(text, limit)

    def _is_our_interrupt(self, output: dict[str, Any]) -> bool:
        # The KeyboardInterrupt we caused on timeout is noise; the timeout note says it better.
        return self.status == "timeout" and output.get("ename") == "KeyboardInterrupt"

    def _status_note(self) -> str:
        seconds = f"{self.timeout:g}"
        if self.status == "timeout" and self.restarted:
            return (
                f"Execution timed out after {seconds} seconds and did not stop when interrupted, "
                f"so {self._restart_note()}"
            )
        if self.status == "timeout":
            return f"Execution timed out after {seconds} seconds and was interrupted."
        if self.status == "crashed":
            return f"The kernel crashed ({_describe_exit(self.exit_code)}); {self._restart_note()}"
        return ""

    def _restart_note(self) -> str:
        blocks = "block was" if self.replayed == 1 else "blocks were"
        if self.replay_total and self.replayed == self.replay_total:
            return (
                f"the kernel was restarted and {self.replayed} earlier {blocks} re-run; the "
                "state they built is back (this block's effects are not)."
            )
        if self.replayed:
            return (
                f"the kernel was restarted and {self.replayed} earlier {blocks} re-run, but "
                f"{self.replay_total - self.replayed} could not be; the state from those was "
                "lost (re-run the missing definitions)."
            )
        return (
            "the kernel was restarted; its state was lost (re-run imports and definitions)."
        )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped unexpectedly"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _output_text(output: dict[str, Any]) -> str:
    kind = output["output_type"]
    if kind == "stream":
        return _strip_ansi(_as_text(output["text"]))
    if kind == "error":
        return _error_text(output)
    data = output.get("data", {})
    if any(mime.startswith("image/") for mime in data):
        return "[image]"
    if "text/plain" in data:
        return _strip_ansi(_as_text(data["text/plain"]))
    return f"[{next(iter(data), 'empty')} output]"


def _error_text(output: dict[str, Any]) -> str:
    """The user's own frame (the last `Cell In[...]` entry) and the error line; library frames
    in between are mostly noise to the model."""
    headline = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    entries = [_strip_ansi(entry).strip("\n") for entry in output.get("traceback", [])]
    cells = [entry for entry in entries if entry.lstrip().startswith("Cell In[")]
    text = cells[-1] if cells else "\n".join(entries)
    lines = [line for line in text.splitlines() if line.strip()][-TRACEBACK_LINES:]
    if not lines or lines[-1].strip() != headline:
        lines.append(headline)
    return "\n".join(lines)


def _as_text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _join_blocks(blocks: list[str]) -> str:
    text = ""
    for block in blocks:
        if text and not text.endswith("\n"):
            text += "\n"
        text += block
    return text.strip("\n")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    cut = len(text) - limit
    return f"{text[:head]}\n... ({cut} characters cut) ...\n{text[-tail:]}"




def _to_nbformat(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    if msg_type == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if msg_type == "display_data":
        return {
            "output_type": "display_data",
            "data": content["data"],
            "metadata": content.get("metadata", {}),
        }
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "data": content["data"],
            "metadata": content.get("metadata", {}),
            "execution_count": content.get("execution_count"),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": list(content["traceback"]),
        }
    return None  # status, execute_input, comm messages: not outputs


def _size(output: dict[str, Any]) -> int:
    if output["output_type"] == "stream":
        return len(output["text"])
    return sum(len(v) for v in output.get("data", {}).values() if isinstance(v, str))


class Outputs:
    """Builds the outputs of one execution, keeping at most `max_bytes` characters of them."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: list[dict[str, Any]] = []
        self.size = 0
        self.truncated = False
        self._clear_before_next = False

    @property
    def has_error(self) -> bool:
        return any(o["output_type"] == "error" for o in self.items)

    def add(self, msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "clear_output":
            self._clear_before_next = bool(content.get("wait"))
            if not self._clear_before_next:
                self._clear()
            return
        output = _to_nbformat(msg["msg_type"], content)
        if output is None:
            return
        if self._clear_before_next:
            self._clear()
        if output["output_type"] == "error":
            self.items.append(output)  # always kept: it is what the model needs most
        else:
            self._add_capped(output)

    def result(self) -> list[dict[str, Any]]:
        for output in self.items:
            if output["output_type"] == "stream" and isinstance(output["text"], list):
                output["text"] = "".join(output["text"])
        return self.items

    def _add_capped(self, output: dict[str, Any]) -> None:
        if self.truncated:
            return
        room = self.max_bytes - self.size
        if _size(output) <= room:
            self._append(output)
            return
        if output["output_type"] == "stream" and room > 0:
            self._append({**output, "text": output["text"][:room]})
        self.truncated = True
        marker = f"\n[output truncated: more than {self.max_bytes} characters]\n"
        self._append_stream("stderr", marker)

    def _append(self, output: dict[str, Any]) -> None:
        self.size += _size(output)
        if output["output_type"] == "stream":
            self._append_stream(output["name"], output["text"])
        else:
            self.items.append(output)

    def _append_stream(self, name: str, text: str) -> None:
        # Chunks are kept as a list and joined once in result(): floods of small writes stay linear.
        last = self.items[-1] if self.items else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["text"].append(text)
        else:
            self.items.append({"output_type": "stream", "name": name, "text": [text]})

    def _clear(self) -> None:
        self.items.clear()
        self.size = 0
        self.truncated = False
        self._clear_before_next = False

