"""Faults of the real embedded server: it dies mid-solve, and the solve goes on or says why."""

from __future__ import annotations

import os
import re
import signal

import pytest

from jupyter_qwq import async_solve
from jupyter_qwq.engines import runtime
from jupyter_qwq.exceptions import EngineCrashed, EngineError

pytestmark = [pytest.mark.llamacpp, pytest.mark.timeout(600)]

PROBLEM = "What is 7 + 8? Answer briefly."


def killer(after_deltas: int, times: int, sig: int = signal.SIGKILL):
    """A listener that signals the server's process group once the stream is under way."""
    state = {"deltas": 0, "kills": 0, "pids": []}

    def listen(event):
        if event.kind != "delta" or state["kills"] >= times:
            return
        state["deltas"] += 1
        if state["deltas"] % after_deltas == 0:
            (server,) = runtime.running_servers()
            state["pids"].append(server.pid)
            state["log"] = str(server.log_path)
            os.killpg(server.pgid, sig)
            state["kills"] += 1

    return listen, state


async def test_a_server_killed_mid_solve_is_restarted_once_and_the_solve_goes_on():
    listen, state = killer(after_deltas=5, times=1)
    try:
        session = await async_solve(PROBLEM, branches=2, rounds=0, max_tokens=60, seed=1,
                                    early_stop=False, listeners=[listen])
        (server,) = runtime.running_servers()
        assert server.pid != state["pids"][0]  # a new process, on the same URL
    finally:
        runtime.stop_servers()
    assert state["kills"] == 1
    assert session.status.value == "done"
    notes = [note for b in session.branches for note in b.notes]
    assert notes and "restarted" in notes[0]
    assert all(b.status.value in ("answered", "no_answer") for b in session.branches)


async def test_a_second_death_ends_the_solve_with_a_clear_error_and_the_record():
    listen, state = killer(after_deltas=5, times=2)
    try:
        with pytest.raises(EngineError) as caught:
            await async_solve(PROBLEM, branches=2, rounds=0, max_tokens=80, seed=1,
                              early_stop=False, listeners=[listen])
    finally:
        runtime.stop_servers()
    assert state["kills"] == 2
    session = caught.value.session
    assert session.status.value == "failed" and "killed with SIGKILL" in session.error
    assert any(b.notes for b in session.branches)


@pytest.mark.parametrize("sig, what_to_do", [
    # SIGSEGV is how the AMX repacking fault looked: the message says so, not "check the log"
    (signal.SIGSEGV, r"SIGSEGV \(signal 11\)\. This is the engine failing"),
    # SIGILL is how a llama.cpp built for another machine (AVX-512, AMX) dies on this one
    (signal.SIGILL, 'it ran an instruction this CPU does not have.*CMAKE_ARGS="-DGGML_NATIVE=OFF" '
                    "pip install --force-reinstall --no-deps"),
])
async def test_a_crashed_server_is_named_as_the_engine_failing_with_its_signal_and_log(sig, what_to_do):
    listen, state = killer(after_deltas=5, times=2, sig=sig)
    try:
        with pytest.raises(EngineCrashed) as caught:
            await async_solve(PROBLEM, branches=2, rounds=0, max_tokens=80, seed=1,
                              early_stop=False, listeners=[listen])
    finally:
        runtime.stop_servers()
    message = str(caught.value)
    name = signal.Signals(sig).name
    assert f"The llama.cpp server crashed with {name} (signal {int(sig)})" in message
    assert re.search(what_to_do, message, re.DOTALL), message
    assert "engine failing, not your code or your network" in message
    assert state["log"] in message and "--- last lines of" in message
    session = caught.value.session
    assert session.error == message  # the record keeps it
    notes = [note for b in session.branches for note in b.notes]
    assert any(f"crashed with {name}" in note and "restarted" in note for note in notes)
