"""`%%solve` in real notebooks, executed by nbclient in a real kernel, against the scripted server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_qwq.cli import main as cli_main
from jupyter_qwq.session import MIME_TYPE, Session

from processes import alive, wait_until
from scripted_server import Reply, branch_and_round, last_output
from vllm_stand_in import vllm_install

pytestmark = pytest.mark.timeout(240)


def code_then_box(body):
    _, round_ = branch_and_round(body)
    if round_ == 1:
        return Reply("Compute it.\n```python\nprint(6 * 7)\n```", delay=0.005)
    return Reply(f"So \\boxed{{{last_output(body)}}}.", delay=0.005)


def slow(body):
    return Reply("still thinking " * 2000, delay=0.01)  # far longer than any test waits


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(s).lstrip()) for s in sources]
    return nb


def execute(nb, tmp_path: Path, allow_errors: bool = False) -> nbformat.NotebookNode:
    client = NotebookClient(nb, timeout=180, kernel_name="python3", store_widget_state=True,
                            allow_errors=allow_errors, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


def outputs(cell) -> list:
    return cell.get("outputs", [])


def text_of(cell, name: str = "stdout") -> str:
    return "".join(o.get("text", "") for o in outputs(cell) if o["output_type"] == "stream" and o["name"] == name)


def session_in(cell) -> Session:
    for output in outputs(cell):
        if MIME_TYPE in output.get("data", {}):
            return Session.from_dict(output["data"][MIME_TYPE])
    raise AssertionError(f"no session output in {[o.get('data', {}).keys() for o in outputs(cell)]}")


def test_a_solve_cell_streams_a_widget_then_leaves_only_the_record(scripted, tmp_path):
    server = scripted(code_then_box)
    nb = notebook(
        "%load_ext jupyter_qwq",
        f"%%solve --endpoint {server.base_url} --branches 8 --seed 0 --no-early-stop\nWhat is 6*7?",
        "print(_.answer, type(_).__name__)",
    )
    execute(nb, tmp_path)
    cell = nb.cells[1]
    # The live view was there while it ran (its widgets synced, and kept small: the transcript
    # lives in the record)...
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state and len(json.dumps(state)) < 60_000
    # ...and then gave way to the record: a reloaded notebook has no widget to look for.
    assert [o["output_type"] for o in outputs(cell)] == ["execute_result"]
    result = outputs(cell)[0]["data"]
    assert set(result) == {MIME_TYPE, "text/html", "text/plain"}
    assert result["text/plain"].startswith("42")
    shown = re.sub(r"<[^>]+>", "", result["text/html"])  # the code is highlighted: text in spans
    assert "print(6 * 7)" in shown and "42" in shown
    session = session_in(cell)
    assert session.answer == "42" and len(session.branches) == 8
    assert text_of(nb.cells[2]).strip() == "42 Session"
    path = tmp_path / "solved.ipynb"
    nbformat.write(nb, path)
    print(f"8-branch solved notebook: {path.stat().st_size} bytes, widget state {len(json.dumps(state))} bytes")


def test_an_error_after_the_record_exists_is_shown_once_in_the_record(scripted, tmp_path):
    server = scripted(lambda body: Reply("I will now " * 50, die_after=5))
    nb = notebook("%load_ext jupyter_qwq",
                  f"%%solve --endpoint {server.base_url} --branches 2 --rounds 0 --seed 0\nDie?")
    execute(nb, tmp_path)
    cell = nb.cells[1]
    session = session_in(cell)
    assert session.status.value == "failed" and "closed the stream mid-reply" in session.error
    assert [o["output_type"] for o in outputs(cell)] == ["execute_result"]  # no widget, no stderr
    result = outputs(cell)[0]["data"]
    assert result["text/html"].count("closed the stream mid-reply") == 1
    assert result["text/plain"].count("closed the stream mid-reply") == 1


def test_no_api_key_on_screen_or_on_disk(scripted, tmp_path, monkeypatch):
    """A key typed as a flag or set with %config reaches no output, traceback, record, export or
    log: the saved notebook holds it only where the user typed it."""
    key = "sk-never-save-me-4242"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # where logs would go
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fast, stalled = scripted(code_then_box, api_key=key), scripted(slow, api_key=key)
    nb = notebook(
        "%load_ext jupyter_qwq",
        f"%%solve --endpoint {fast.base_url} --api-key {key} --branches 2 --seed 0\nWhat is 6*7?",
        f"%%solve --endpoint {stalled.base_url} --api-key={key} --branches 2 --rounds 0\nSlow?",
        f"%%solve --endpoint http://127.0.0.1:9/v1 --api-key {key}\nWhat is 1+1?",
        f"%%solve --api-key {key} --branches many\nWhat is 1+1?",
        f'%config Solve.api_key = "{key}"\nprint("configured")',
        "%qwq config",
        f"%%solve --endpoint {fast.base_url} --branches 1 --seed 0\nWhat is 6*7?",
    )
    run_interrupting(nb, index=2, after=3.0)  # Jupyter's interrupt, mid-solve
    assert session_in(nb.cells[1]).answer == "42"  # the flag's key reached the server
    assert session_in(nb.cells[2]).status.value == "cancelled"
    assert text_of(nb.cells[2]).startswith("stopped: 2 branches cancelled")
    assert "Nothing answers" in text_of(nb.cells[3], "stderr")
    assert "invalid int value" in text_of(nb.cells[4], "stderr")
    assert "(set)" in text_of(nb.cells[6])
    assert session_in(nb.cells[7]).answer == "42"  # so did the configured key
    records = [session_in(cell).to_json() for cell in (nb.cells[1], nb.cells[2], nb.cells[7])]
    assert not [o for cell in nb.cells for o in outputs(cell) if o["output_type"] == "error"]

    path = tmp_path / "solved.ipynb"
    nbformat.write(nb, path)
    exports = []
    for to, suffix in (("ipynb", ".ipynb"), ("html", ".html"), ("markdown", ".md")):
        exports.append(tmp_path / f"exported{suffix}")
        assert cli_main(["export", str(path), "--to", to, "-o", str(exports[-1])]) == 0
    logs = [f for d in ("state", "cache") for f in (tmp_path / d).rglob("*") if f.is_file()]

    typed = sum(cell.source.count(key) for cell in nb.cells)
    assert path.read_text().count(key) == typed == 5  # only in the cells' own text
    leaks = [str(f) for f in [*exports, *logs] if key in f.read_text(errors="replace")]
    leaks += [f"record {n}" for n, record in enumerate(records) if key in record]
    assert leaks == []
    exported = "".join(cell.source for cell in nbformat.read(exports[0], as_version=4).cells)
    assert '# %config Solve.api_key = "***"' in exported and "--api-key ***" in exported


def prints_the_keys(body):
    _, round_ = branch_and_round(body)
    if round_ == 1:
        return Reply("```python\nimport os\n"
                     "print([os.environ.get(k) for k in ('JUPYTER_QWQ_API_KEY', 'OPENAI_API_KEY')])\n```")
    return Reply(f"It printed {last_output(body).strip()}, so \\boxed{{1}}.")


def test_the_key_from_the_environment_works_and_the_models_code_cannot_read_it(scripted, tmp_path,
                                                                              monkeypatch):
    key = "sk-from-the-environment-4242"
    monkeypatch.setenv("JUPYTER_QWQ_API_KEY", key)  # the notebook's kernel inherits them
    monkeypatch.setenv("OPENAI_API_KEY", key)
    server = scripted(prints_the_keys, api_key=key)
    nb = notebook("%load_ext jupyter_qwq",
                  f"%%solve --endpoint {server.base_url} --branches 1 --seed 0\nKeys?",
                  f"%%solve --endpoint {server.base_url} --branches 1 --seed 0 --no-sandbox\nKeys?")
    execute(nb, tmp_path)
    for cell in nb.cells[1:]:
        session = session_in(cell)
        assert session.answer == "1"  # the key reached the server
        (code,) = [step for step in session.branches[0].steps if step.kind == "code"]
        assert "".join(o.get("text", "") for o in code.outputs).strip() == "[None, None]", code
        assert key not in json.dumps(outputs(cell))


def test_bad_flags_and_empty_cells_print_a_usage_line_not_a_traceback(tmp_path):
    nb = notebook(
        "%load_ext jupyter_qwq",
        "%%solve --frobnicate\nWhat is 1+1?",
        "%%solve --branches zero\nWhat is 1+1?",
        "%%solve --endpoint http://127.0.0.1:9/v1\n   \n",
        "%%solve --endpoint http://127.0.0.1:9/v1\nWhat is 1+1?",
        "%qwq dance",
    )
    execute(nb, tmp_path)
    errors = [text_of(cell, "stderr") for cell in nb.cells[1:]]
    assert "unrecognized arguments: --frobnicate" in errors[0] and "usage: %%solve" in errors[0]
    assert "invalid int value" in errors[1]
    assert "the problem is empty" in errors[2]
    assert "Nothing answers at http://127.0.0.1:9/v1" in errors[3]
    assert "usage: %qwq" in errors[4]
    for cell in nb.cells[1:]:  # one line each, and the live view is gone
        assert [o["output_type"] for o in outputs(cell)] == ["stream"]


def test_a_server_that_died_names_its_log_and_qwq_server_logs_shows_it(tmp_path, monkeypatch):
    kept = os.environ.get("PYTHONPATH", "")  # the kernel must still find this jupyter_qwq
    vllm = vllm_install(tmp_path / "vllm", "0.32.0+cpu", monkeypatch)  # a CPU build that exits at once
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (os.environ["PYTHONPATH"], kept) if p))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    nb = notebook(
        "%load_ext jupyter_qwq",
        "%qwq server logs",
        f"%%solve --engine vllm --vllm-command {vllm} --model {model}\nWhat is 1+1?",
        "%qwq server logs",
    )
    execute(nb, tmp_path)
    assert "no managed server was started in this kernel" in text_of(nb.cells[1])
    error = text_of(nb.cells[2], "stderr")
    log = re.search(r"--- last lines of (\S+) ---", error)
    assert error.count("exited with status 1 before it was ready") == 1 and log
    logs = text_of(nb.cells[3])
    assert logs.startswith(f"== vLLM server, exited with status 1: {log.group(1)}")
    assert "a stand-in: it serves nothing" in logs


def test_config_and_ipython_config_reach_the_solver(scripted, tmp_path, monkeypatch):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text("c.Solve.branches = 3\nc.Solve.temperature = 0.3\n")
    server = scripted(lambda body: Reply("\\boxed{1}"))
    nb = notebook(
        "%load_ext jupyter_qwq",
        "%config Solve.rounds = 0",
        f"%%solve --endpoint {server.base_url} --no-early-stop\nOne?",
        f"%%solve --endpoint {server.base_url} --branches 2 --temperature 0.9\nOne?",
        "%qwq config",
        "%qwq sandbox",
    )
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # the kernel inherits it
    execute(nb, tmp_path)
    first, second = session_in(nb.cells[2]), session_in(nb.cells[3])
    assert (len(first.branches), first.config["rounds"], first.config["temperature"]) == (3, 0, 0.3)
    assert (len(second.branches), second.config["rounds"], second.config["temperature"]) == (2, 0, 0.9)
    table = {line.split()[0]: line.split()[-1] for line in text_of(nb.cells[4]).splitlines()[1:]}
    assert table["branches"] == "ipython_config.py" and table["rounds"] == "%config"
    assert table["top_p"] == "default"
    assert "no network" in text_of(nb.cells[5]) and "memory limit" in text_of(nb.cells[5])


KERNEL_STATE = """
import asyncio, threading, jupyter_qwq
wb = jupyter_qwq._workbench
pool = wb.kernels
branches = [t.get_name() for t in asyncio.all_tasks(wb.loop._loop) if t.get_name().startswith("branch-")]
print(json.dumps({"kernels": len(pool.kernels) if pool else 0, "warm": pool.warm if pool else 0,
                  "branch_tasks": branches,
                  "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("jupyter-qwq"))}))
"""


def assert_nothing_left(state: dict) -> None:
    """Only fresh warm subkernels, no branch task, and the one loop thread remain."""
    assert state["kernels"] == state["warm"]
    assert state["branch_tasks"] == []
    assert state["threads"] == ["jupyter-qwq-loop"]


async def _interrupt_after(client: NotebookClient, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await client.km.interrupt_kernel()


def run_interrupting(nb, index: int, after: float) -> None:
    """Run every cell of `nb`, interrupting the kernel `after` seconds into cell `index`."""
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True)

    async def run() -> None:
        async with client.async_setup_kernel():
            for number, cell in enumerate(nb.cells):
                interrupt = asyncio.create_task(_interrupt_after(client, after)) if number == index else None
                await client.async_execute_cell(cell, number)
                if interrupt is not None:
                    await interrupt

    asyncio.run(run())


def test_interrupt_stops_everything_in_one_line_and_keeps_the_partial_record(scripted, tmp_path):
    server = scripted(slow)
    nb = notebook(
        "import json\n%load_ext jupyter_qwq",
        f"%%solve --endpoint {server.base_url} --branches 4 --rounds 0 --seed 0 --out partial\nSlow?",
        KERNEL_STATE,
        "print(partial.status.value, sorted({b.status.value for b in partial.branches}), _ is partial)",
    )
    started = time.monotonic()
    run_interrupting(nb, index=1, after=3.0)
    elapsed = time.monotonic() - started
    assert wait_until(lambda: server.open_streams() == 0, timeout=5), server.outcomes()
    cell = nb.cells[1]
    assert [o["output_type"] for o in outputs(cell)] == ["stream", "execute_result"]  # no traceback
    assert text_of(cell) == "stopped: 4 branches cancelled, partial record in `_` and `partial`\n"
    partial = session_in(cell)
    assert partial.status.value == "cancelled" and partial.branches[0].completion_tokens > 0
    assert_nothing_left(json.loads(text_of(nb.cells[2])))
    assert text_of(nb.cells[3]).strip() == "cancelled ['stopped'] True"
    assert elapsed < 60


def test_background_solve_returns_at_once_and_stop_works(scripted, tmp_path):
    server = scripted(slow)
    nb = notebook(
        "import json, time\n%load_ext jupyter_qwq",
        f"%%solve --background --endpoint {server.base_url} --branches 3 --rounds 0 --out kept\nSlow?",
        "handle = _\ntime.sleep(2)\nprint(handle.done(), handle.session.completion_tokens > 0)",
        "handle.view.stop_button.click()\nsession = handle.result(30)\n"
        "print(handle.done(), session.status.value, kept is session)",
        KERNEL_STATE,
    )
    started = time.monotonic()
    execute(nb, tmp_path)
    elapsed = time.monotonic() - started
    assert wait_until(lambda: server.open_streams() == 0, timeout=5), server.outcomes()
    assert text_of(nb.cells[2]).strip() == "False True"
    assert text_of(nb.cells[3]).strip() == "True cancelled True"
    assert_nothing_left(json.loads(text_of(nb.cells[4])))
    assert elapsed < 90


def test_kernels_and_state_do_not_leak_between_solves(scripted, tmp_path):
    def script(body):
        _, round_ = branch_and_round(body)
        if round_ == 1:
            return Reply("```python\nprint('leak' in globals()); leak = 1\n```")
        return Reply(f"\\boxed{{{last_output(body)}}}")

    server = scripted(script)
    nb = notebook(
        "import json\n%load_ext jupyter_qwq",
        f"%%solve --endpoint {server.base_url} --branches 2 --seed 0\nLeak?",
        f"%%solve --endpoint {server.base_url} --branches 2 --seed 0\nLeak?",
        KERNEL_STATE + "import time\nfor _ in range(600):  # the warm kernels start in the background\n"
        "    if all(k.pid for k in pool.kernels): break\n    time.sleep(0.1)\n"
        "print([k.pid for k in pool.kernels])",
    )
    execute(nb, tmp_path)
    assert session_in(nb.cells[1]).answer == "False"
    assert session_in(nb.cells[2]).answer == "False"  # fresh kernels for the second solve
    lines = text_of(nb.cells[3]).splitlines()
    pids = json.loads(lines[1])
    assert json.loads(lines[0])["warm"] == 2 and len(pids) == 2
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10), \
        "warm subkernels outlived their notebook kernel"


def reasoned_code_then_box(body):
    """Like code_then_box, with a page of prose per round and log-probabilities for every token."""
    _, round_ = branch_and_round(body)
    prose = "Let me reason about this carefully, step by step. " * 40
    if round_ == 1:
        return Reply(f"{prose}\n```python\nprint(6 * 7)\n```", chunk_chars=4, confidence=9.5)
    return Reply(f"{prose} So \\boxed{{{last_output(body)}}}.", chunk_chars=4, confidence=11.0)


def test_a_saved_8_branch_notebook_with_confidence_stays_small(scripted, tmp_path):
    server = scripted(reasoned_code_then_box)
    nb = notebook("%load_ext jupyter_qwq",
                  f"%%solve --endpoint {server.base_url} --branches 8 --seed 0 --no-early-stop\nWhat is 6*7?")
    execute(nb, tmp_path)
    session = session_in(nb.cells[1])
    tokens = sum(s.tokens for b in session.branches for s in b.steps if s.kind == "text")
    assert tokens > 8 * 2 * 500  # every branch wrote two pages, a token a chunk
    assert all(b.confidence is not None and 9.5 < b.confidence < 11.0 for b in session.branches)
    kept = sum(len(json.dumps(s.confidence)) for b in session.branches for s in b.steps)
    assert kept / tokens <= 8  # bytes of saved JSON per generated token
    path = tmp_path / "solved.ipynb"
    nbformat.write(nb, path)
    assert path.stat().st_size < 200_000, path.stat().st_size
