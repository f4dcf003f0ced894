"""Fixtures shared by the tests.

Tests are grouped by what they start: unit/ (nothing but the code under test; a scripted HTTP
server thread at most), integration/ (real subkernels, the real llama.cpp and vLLM servers, real
notebooks run by nbclient), browser/ (a real JupyterLab in Debian's chromium). The helpers they
share (the scripted server, the process checks, the browser, a vLLM stand-in) are modules here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from scripted_server import ScriptedServer


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Start a scripted OpenAI-compatible server: `server = scripted(script, **options)`.

    Each server this test started is stopped when it ends.
    """
    started: list[ScriptedServer] = []

    def start(script, **options) -> ScriptedServer:
        server = ScriptedServer(script, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
