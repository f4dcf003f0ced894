"""A branch's kernel on a Jupyter Kernel Gateway or Enterprise Gateway, through jupyter_server's
gateway client (GatewayKernelManager: REST to start, interrupt, restart and stop; a websocket for
the channels).

The gateway owns the kernel's process and its confinement (Enterprise Gateway can run each in a
Kubernetes pod); timeouts, interrupts, restarts and replay work as for a local subkernel. Kernels
a process started on a gateway are deleted when it stops them, and at its exit.

A gateway that stops answering (it died, or hangs, or the network to it went) costs only the
branches whose kernels were there: their code raises GatewayUnreachable, with what the block had
printed, within `gateway_timeout` seconds at most. Their kernels and state are gone with it;
nothing runs their code anywhere else, since a gateway is chosen on purpose, often to keep code
off this machine.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Coroutine
from queue import Empty
from typing import Any

import httpx

from ..exceptions import GatewayUnreachable, KernelError
from .execution import Execution, Outputs
from .subkernel import Subkernel

__all__ = ["GatewaySubkernel"]

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.005  # seconds between looks at a channel's queue while waiting for a message

_started: set[str] = set()  # the URLs of the kernels this process runs on a gateway


class GatewaySubkernel(Subkernel):
    """A Subkernel whose kernel runs on the gateway at `gateway` (http(s)://host:port), which
    has `gateway_timeout` seconds to answer each liveness check, interrupt and stop."""

    def __init__(self, gateway: str, kernel_name: str = "python3", startup_timeout: float = 60,
                 gateway_timeout: float = 10.0, **settings: Any) -> None:
        super().__init__(kernel_name, startup_timeout, **settings)
        self.gateway = gateway.rstrip("/")
        self.gateway_timeout = gateway_timeout
        self._gone = False  # the gateway stopped answering: this kernel is lost

    @property
    def where(self) -> str:
        return f"gateway {self.gateway}"

    @property
    def alive(self) -> bool:
        """Started and not shut down, and its websocket open (it closes when the gateway dies)."""
        router = getattr(self._client, "response_router", None)
        return super().alive and not self._gone and router is not None and router.is_alive()

    async def start(self) -> None:
        try:
            await super().start()
        except KernelError as error:
            if error.__cause__ is None:  # ours, not the gateway's: e.g. one gateway at a time
                raise
            raise GatewayUnreachable(str(error)) from error.__cause__

    async def execute(self, code: str, timeout: float) -> Execution:
        if super().alive and not self.alive:
            raise self._lost(ConnectionError("its websocket closed"))  # it went while we waited
        try:
            return await super().execute(code, timeout)
        except GatewayUnreachable:
            raise
        except Exception as error:  # sending the block, an interrupt or a restart
            lost = self._lost(error)
            if lost is None:
                raise
            raise lost from error

    async def _collect(self, msg_id: str, outputs: Outputs, deadline: float) -> str:
        try:
            return await super()._collect(msg_id, outputs, deadline)
        except Exception as error:
            lost = self._lost(error)
            if lost is None:
                raise
            self._read_what_came(msg_id, outputs)
            lost.outputs = outputs.result()
            raise lost from error

    def _lost(self, error: Exception) -> GatewayUnreachable | None:
        """The branch's error, if `error` says the gateway stopped answering; else None."""
        why = _unanswered(error, self.gateway_timeout)
        if why is None:
            return None
        self._gone = True
        return GatewayUnreachable(
            f"The kernel gateway at {self.gateway} stopped answering ({why}); the kernel there and "
            "its state are lost. Restart the gateway (or check the network to it) and solve "
            "again; the branches that did not need it went on.")

    def _read_what_came(self, msg_id: str, outputs: Outputs) -> None:
        """The block's output that had arrived before the gateway went, but was not read yet."""
        channel = self._client.iopub_channel
        while not channel.empty():
            msg = channel.get_nowait()
            if msg["parent_header"].get("msg_id") == msg_id:
                outputs.add(msg)

    def _stop_client(self) -> None:
        client = self._client
        if self._gone and client is not None:
            # No closing handshake with a gateway that does not answer: websocket-client would
            # wait for the reader thread's lock, held by a read that never returns.
            with contextlib.suppress(OSError, AttributeError):
                client.channel_socket.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
            for channel in (client._channel_queues or {}).values():
                channel.queue.clear()  # what is left there went with the kernel
        super()._stop_client()

    async def _launch(self) -> None:
        from jupyter_server.gateway.gateway_client import GatewayClient

        client = GatewayClient.instance()
        if client.url and client.url.rstrip("/") != self.gateway and _started:
            raise KernelError(f"This process already runs kernels on the gateway {client.url}; "
                              f"one gateway at a time (stop those solves first).")
        client.url = self.gateway  # its token, if it needs one: $JUPYTER_GATEWAY_AUTH_TOKEN
        client.ws_url = "ws" + self.gateway.removeprefix("http")
        self._km = _manager(self.gateway_timeout, self.startup_timeout, kernel_name=self.kernel_name,
                            log=log)
        # cancelled, not left running: a kernel it started after all would be left on the gateway
        await asyncio.wait_for(self._km.start_kernel(kernel_name=self.kernel_name), self.startup_timeout)
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
            # A gateway that stopped answering was reported with the branch's error already.
            level = logging.INFO if _unanswered(error, self.gateway_timeout) else logging.WARNING
            log.log(level, "The gateway did not stop kernel %s (%s).", km.kernel_id, error)
        _started.discard(km.kernel_url)

    def _remember_process_group(self) -> None:
        """The gateway owns the kernel's process: nothing local to own."""

    def _start_failure(self, error: Exception) -> str:
        status = getattr(error, "status_code", None)  # jupyter_server answers with tornado's HTTPError
        why = ("nothing answers there" if status == 503 else
               f"it answered {status}: {getattr(error, 'log_message', '') or error}" if status else
               f"no answer within {self.startup_timeout:g} s" if isinstance(error, TimeoutError) else
               f"{type(error).__name__}: {error}")
        return (f"No kernel could be started on the gateway at {self.gateway} ({why}). Start one "
                "(jupyter kernelgateway --KernelGatewayApp.port=8888), or check --kernel-gateway.")


def _unanswered(error: BaseException | None, timeout: float) -> str | None:
    """Why the gateway stopped answering, if `error` (or what caused it) says it did; else None."""
    from tornado.web import HTTPError
    from websocket import WebSocketException

    while error is not None:
        status = getattr(error, "status_code", 0) if isinstance(error, HTTPError) else 0
        if status == 503:
            return "nothing answers there any more"
        if status == 404:
            return "it no longer knows this kernel"
        if status >= 500:
            return f"it answered {status}"
        if isinstance(error, TimeoutError):
            return f"no answer within {timeout:g} s"
        if isinstance(error, (OSError, WebSocketException)):
            return str(error) or type(error).__name__
        error = error.__cause__
    return None


def _manager(answer_timeout: float, restart_timeout: float, **settings: Any) -> Any:
    """jupyter_server's GatewayKernelManager with every REST call bounded in time, and a client
    that waits for messages without spinning."""
    manager_class, client_class = _classes()
    manager = manager_class(client_factory=client_class, **settings)
    manager.answer_timeout, manager.restart_timeout = answer_timeout, restart_timeout
    return manager


@functools.cache
def _classes() -> tuple[type, type]:
    import websocket
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_server.gateway.gateway_client import GatewayClient
    from jupyter_server.gateway.managers import GatewayKernelClient, GatewayKernelManager
    from jupyter_server.utils import url_path_join
    from tornado.escape import url_escape

    class Client(GatewayKernelClient):
        async def start_channels(self, shell: bool = True, iopub: bool = True, stdin: bool = True,
                                 hb: bool = True, control: bool = True) -> None:
            """The websocket, with the gateway's token, and a daemon thread reading it:
            jupyter_server's reader is not one, so a process that ended without stopping its
            kernels waited for it forever (and never reached the atexit DELETE)."""
            gateway = GatewayClient.instance()
            # the REST calls' headers (its token among them): jupyter_server's own sends none
            headers = gateway.load_connection_args().get("headers") or {}
            self.channel_socket = websocket.create_connection(
                url_path_join(gateway.ws_url or "", gateway.kernels_endpoint,
                              url_escape(self.kernel_id), "channels"),
                header=[f"{key}: {value}" for key, value in headers.items()],
                timeout=gateway.KERNEL_LAUNCH_TIMEOUT, enable_multithread=True,
                sslopt={"ca_certs": gateway.ca_certs, "certfile": gateway.client_cert,
                        "keyfile": gateway.client_key})
            AsyncKernelClient.start_channels(self, shell=shell, iopub=iopub, stdin=stdin, hb=hb,
                                             control=control)
            self.response_router = threading.Thread(target=self._route_responses, daemon=True,
                                                    name=f"gateway-kernel-{self.kernel_id}")
            self.response_router.start()

        async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
            return await self._next(self.iopub_channel, timeout)

        async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
            return await self._next(self.shell_channel, timeout)

        async def _next(self, channel: Any, timeout: float | None) -> dict[str, Any]:
            """The channel's next message, Empty after `timeout`, ConnectionError once the
            websocket has closed. (jupyter_server's own get_msg spins the event loop meanwhile.)"""
            deadline = time.monotonic() + (math.inf if timeout is None else timeout)
            while True:
                try:
                    msg = channel.get_nowait()
                except Empty:
                    if channel.response_router_finished:
                        raise ConnectionError("its websocket closed") from None
                    if time.monotonic() >= deadline:
                        raise
                    await asyncio.sleep(POLL_INTERVAL)
                else:
                    channel.task_done()
                    return msg

    class Manager(GatewayKernelManager):
        answer_timeout = 10.0
        restart_timeout = 60.0

        async def is_alive(self) -> bool:
            if not self.has_kernel:
                return False
            if await _within(self.refresh_model(), self.answer_timeout) is None:  # a 404
                raise ConnectionError("it no longer knows this kernel")
            return True

        async def interrupt_kernel(self) -> None:
            await _within(super().interrupt_kernel(), self.answer_timeout)

        async def restart_kernel(self, **kw: Any) -> None:
            await _within(super().restart_kernel(**kw), self.restart_timeout)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            await _within(super().shutdown_kernel(now=now, restart=restart), self.answer_timeout)

    return Manager, Client


async def _within(request: Coroutine[Any, Any, Any], timeout: float) -> Any:
    """A gateway request's result, or TimeoutError after `timeout` seconds. The request is left to
    end on its own: cancelled, tornado would log an error when its own timeout fires later."""
    task = asyncio.ensure_future(request)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen, if late
    return await asyncio.wait_for(asyncio.shield(task), timeout)


@atexit.register
def _delete_started_kernels() -> None:
    """Kernels left on a gateway by a process that ends without stopping them."""
    token = os.environ.get("JUPYTER_GATEWAY_AUTH_TOKEN")
    headers = {"Authorization": f"token {token}"} if token else {}
    for kernel_url in list(_started):
        try:
            httpx.delete(kernel_url, headers=headers, timeout=5)
        except httpx.HTTPError:
            break  # the gateway does not answer: the rest would wait as long for nothing
    _started.clear()
