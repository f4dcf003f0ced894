"""A branch's kernel on a Jupyter Kernel Gateway or Enterprise Gateway, through jupyter_server's
gateway client (GatewayKernelManager: REST to start, interrupt, restart and stop; a websocket for
the channels).

The gateway owns the kernel's process and its confinement (Enterprise Gateway can run each in a
Kubernetes pod); timeouts, interrupts, restarts and replay work as for a local subkernel. Kernels
a process started on a gateway are deleted when it stops them, and at its exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from typing import Any

import httpx

from ..exceptions import KernelError
from .subkernel import Subkernel

__all__ = ["GatewaySubkernel"]

log = logging.getLogger(__name__)

_started: set[str] = set()  # the URLs of the kernels this process runs on a gateway


class GatewaySubkernel(Subkernel):
    """A Subkernel whose kernel runs on the gateway at `gateway` (http(s)://host:port)."""

    def __init__(self, gateway: str, kernel_name: str = "python3", startup_timeout: float = 60,
                 **settings: Any) -> None:
        super().__init__(kernel_name, startup_timeout, **settings)
        self.gateway = gateway.rstrip("/")

    @property
    def where(self) -> str:
        return f"gateway {self.gateway}"

    async def _launch(self) -> None:
        from jupyter_server.gateway.gateway_client import GatewayClient
        from jupyter_server.gateway.managers import GatewayKernelManager

        client = GatewayClient.instance()
        if client.url and client.url.rstrip("/") != self.gateway and _started:
            raise KernelError(f"This process already runs kernels on the gateway {client.url}; "
                              f"one gateway at a time (stop those solves first).")
        client.url = self.gateway  # its token, if it needs one: $JUPYTER_GATEWAY_AUTH_TOKEN
        client.ws_url = "ws" + self.gateway.removeprefix("http")
        self._km = GatewayKernelManager(kernel_name=self.kernel_name, log=log)
        await self._km.start_kernel(kernel_name=self.kernel_name)
        _started.add(self._km.kernel_url)
        await self._connect()

    async def _connect(self) -> None:
        self._client = self._km.client()
        await self._client.start_channels(stdin=False, hb=False)
        # not jupyter_client's wait_for_ready: it asks the local provisioner whether the kernel lives
        await self._wait_for_ready(time.monotonic() + self.startup_timeout)

    async def _stop_kernel(self) -> None:
        km = self._km
        if km is None or not km.has_kernel:
            return
        try:
            await km.shutdown_kernel(now=True)
        except Exception as error:
            log.warning("The gateway did not stop kernel %s (%s).", km.kernel_id, error)
        _started.discard(km.kernel_url)

    def _remember_process_group(self) -> None:
        """The gateway owns the kernel's process: nothing local to own."""

    def _start_failure(self, error: Exception) -> str:
        status = getattr(error, "status_code", None)  # jupyter_server answers with tornado's HTTPError
        why = ("nothing answers there" if status == 503 else
               f"it answered {status}: {getattr(error, 'log_message', '') or error}" if status else
               f"{type(error).__name__}: {error}")
        return (f"No kernel could be started on the gateway at {self.gateway} ({why}). Start one "
                "(jupyter kernelgateway --KernelGatewayApp.port=8888), or check --kernel-gateway.")


@atexit.register
def _delete_started_kernels() -> None:
    """Kernels left on a gateway by a process that ends without stopping them."""
    token = os.environ.get("JUPYTER_GATEWAY_AUTH_TOKEN")
    headers = {"Authorization": f"token {token}"} if token else {}
    for kernel_url in list(_started):
        try:
            httpx.delete(kernel_url, headers=headers, timeout=5)
        except httpx.HTTPError:
            pass
    _started.clear()
