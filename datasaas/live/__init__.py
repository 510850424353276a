"""Live data and push (CONTRACT §14): each worker's hub and webhook dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

from datasaas.live.hub import LiveHub
from datasaas.live.webhooks import WebhookDispatcher
from datasaas.storage.engine import Database


@dataclass(slots=True)
class Live:
    """This worker's live machinery."""

    hub: LiveHub
    dispatcher: WebhookDispatcher

    @classmethod
    async def start(cls, database: Database, *, redis_url: str | None) -> Live:
        """Start listening for committed events and dispatching webhooks."""
        hub = LiveHub(database, redis_url=redis_url)
        await hub.start()
        dispatcher = WebhookDispatcher(database)
        await dispatcher.start()
        return cls(hub, dispatcher)

    async def stop(self) -> None:
        """Stop both (deliveries in flight are retried by the next process)."""
        await self.dispatcher.stop()
        await self.hub.stop()
