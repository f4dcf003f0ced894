"""Several endpoints serving one model, used as one: the least loaded takes each request.

An endpoint that stops answering is taken out for a while (`rest` seconds) and the request goes
to another one; one that dies mid-reply fails that round, which the branch retries elsewhere
(FleetRecovery). The record names the endpoint that served each round (Step.engine).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator

from ..exceptions import EngineDied, EngineUnreachable
from .client import Delta, EngineClient, Sampling, Usage

log = logging.getLogger(__name__)


class EngineFleet:
    """The EngineClient interface over several EngineClients."""

    def __init__(self, clients: list[EngineClient], rest: float = 30.0) -> None:
        if not clients:
            raise ValueError("a fleet needs at least one engine client")
        self.clients = clients
        self.rest = rest
        self.load = {client.base_url: 0 for client in clients}  # open streams per endpoint
        self.out: dict[str, tuple[float, str]] = {}  # endpoint → (taken out at, why)
        self._turn = itertools.count()  # breaks ties between equally loaded endpoints in turn

    @property
    def base_url(self) -> str:
        return self.clients[0].base_url

    @property
    def model(self) -> str:
        return self.clients[0].model

    @property
    def refuses_logprobs(self) -> bool:
        return all(client.refuses_logprobs for client in self.clients)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients), return_exceptions=True)

    async def reset_connections(self) -> None:
        await asyncio.gather(*(client.reset_connections() for client in self.clients))

    async def resolve_model(self) -> str:
        """Every endpoint's model; those that do not answer are taken out. The first one's name
        is the record's; EngineUnreachable if none answers."""
        results = await asyncio.gather(*(client.resolve_model() for client in self.clients),
                                       return_exceptions=True)
        for client, result in zip(self.clients, results):
            if isinstance(result, (EngineUnreachable, EngineDied)):
                self.take_out(client, str(result))
            elif isinstance(result, BaseException):
                raise result
        answering = [c for c, r in zip(self.clients, results) if not isinstance(r, BaseException)]
        if not answering:
            raise EngineUnreachable(self.none_left())
        return answering[0].model

    async def stream_chat(self, messages: list[dict[str, str]], sampling: Sampling,
                          usage: Usage | None = None, continue_turn: bool = False) -> AsyncIterator[Delta]:
        """Stream from the least loaded endpoint; one that cannot be reached is taken out and the
        request sent to the next. A stream that breaks after it began is not retried here."""
        while True:
            client = self.pick()
            if client is None:
                raise EngineUnreachable(self.none_left())
            if usage is not None:
                usage.served_by = client.base_url
            self.load[client.base_url] += 1
            began = False
            try:
                async for delta in client.stream_chat(messages, sampling, usage, continue_turn):
                    began = True
                    yield delta
                return
            except (EngineUnreachable, EngineDied) as error:
                self.take_out(client, str(error))
                if began or isinstance(error, EngineDied):
                    raise  # the branch retries the round (FleetRecovery)
            finally:
                self.load[client.base_url] -= 1

    def pick(self) -> EngineClient | None:
        """The endpoint with the fewest open streams, among those not resting."""
        now = time.monotonic()
        for url, (since, _) in list(self.out.items()):
            if now - since >= self.rest:
                del self.out[url]  # rested: it gets another chance
        ready = [(i, c) for i, c in enumerate(self.clients) if c.base_url not in self.out]
        if not ready:
            return None
        turn = next(self._turn)
        _, client = min(ready, key=lambda ic: (self.load[ic[1].base_url], (ic[0] - turn) % len(self.clients)))
        return client

    def take_out(self, client: EngineClient, why: str) -> None:
        if client.base_url not in self.out:
            log.warning("Taking %s out for %.0f s: %s", client.base_url, self.rest, why)
        self.out[client.base_url] = (time.monotonic(), why)

    def none_left(self) -> str:
        reasons = "; ".join(f"{url}: {why}" for url, (_, why) in self.out.items())
        return (f"None of the {len(self.clients)} endpoints answers ({reasons}). Start them, or "
                "check --endpoint.")


class FleetRecovery:
    """A round lost with an endpoint is retried on another, while one answers (the Recovery
    interface the branch uses for a managed server's restart)."""

    def __init__(self, fleet: EngineFleet) -> None:
        self.fleet = fleet
        self.generation = 0
        self.crash: str | None = None

    async def __call__(self, seen_generation: int) -> int | None:
        if self.fleet.pick() is None:
            return None
        self.generation += 1
        return self.generation

    def retried(self, generation: int) -> str:
        return "the round was retried on another endpoint"

    def failure(self, error: Exception) -> EngineUnreachable:
        return EngineUnreachable(self.fleet.none_left())
