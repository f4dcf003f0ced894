"""What the live view costs: redraws per second beside the stream's events, and the saved size.

1. The LiveView is fed a real solve (scripted server, 8 branches streaming fast) and counts the
   widget updates it sends, beside the stream events it received.
2. An 8-branch `%%solve` notebook is executed by nbclient in a real kernel and saved: the file's
   size, the widget state's share of it, and the record's.

    python benchmarks/notebook_view.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scripted_server import Reply, ScriptedServer, branch_and_round, last_output  # noqa: E402

from jupyter_qwq import async_solve  # noqa: E402
from jupyter_qwq.session import MIME_TYPE  # noqa: E402
from jupyter_qwq.views.widgets import LiveView  # noqa: E402


def script(body):
    branch, round_ = branch_and_round(body)
    prose = "Let me reason about this carefully, step by step. " * 12
    if round_ == 1:
        return Reply(f"{prose}\n```python\nprint(sum(i*i for i in range({branch + 10})))\n```", delay=0.005)
    return Reply(f"{prose} The program printed {last_output(body)}. \\boxed{{{last_output(body)}}}", delay=0.005)


async def redraw_rates() -> tuple[int, int, float]:
    view = LiveView()
    events: Counter[str] = Counter()
    with ScriptedServer(script) as server:
        started = time.monotonic()
        await async_solve("Sum of squares?", engine="endpoint", endpoint=server.base_url, branches=8, seed=0,
                          early_stop=False, listeners=[lambda event: events.update([event.kind]), view])
        elapsed = time.monotonic() - started
    return sum(events.values()), view.redraws, elapsed


def saved_sizes() -> tuple[int, int, int]:
    with ScriptedServer(script) as server, tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("%load_ext jupyter_qwq"),
                    nbformat.v4.new_code_cell(f"%%solve --endpoint {server.base_url} --branches 8 --seed 0 "
                                              "--no-early-stop\nSum of squares?")]
        NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True).execute()
        path = Path(tmp) / "solved.ipynb"
        nbformat.write(nb, path)
        state = json.dumps(nb.metadata.get("widgets", {}))
        record = next(json.dumps(o["data"][MIME_TYPE]) for o in nb.cells[1].outputs if MIME_TYPE in o.get("data", {}))
        return path.stat().st_size, len(state), len(record)


def main() -> None:
    deltas, redraws, elapsed = asyncio.run(redraw_rates())
    table = Table(title="live view, 8 branches, scripted server")
    for column in ("measure", "value"):
        table.add_column(column, justify="right")
    table.add_row("solver events received", str(deltas))
    table.add_row("view redraws sent (all branches each)", str(redraws))
    table.add_row("redraws / events", f"{redraws / max(deltas, 1):.3f}")
    table.add_row("redraws per second", f"{redraws / elapsed:.2f}")
    size, state, record = saved_sizes()
    table.add_row("saved .ipynb, 8 branches (bytes)", f"{size:,}")
    table.add_row("  of which widget state", f"{state:,} ({state / size:.0%})")
    table.add_row("  of which the record (JSON)", f"{record:,} ({record / size:.0%})")
    Console().print(table)


if __name__ == "__main__":
    main()
