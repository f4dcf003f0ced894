"""Engines: the OpenAI-compatible client, and the servers jupyter_qwq starts and stops.

Import from the submodules (``engines.client``, ``engines.runtime``, ``engines.models``, ...);
this package stays empty so that importing it never pulls in httpx or a server.
"""
