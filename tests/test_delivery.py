"""Delivery of replies: bounded attempts, out-of-order sends, and a Redis that hangs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from channels.registry import build_senders
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, IdentityKind
from contactcenter.domain.messages import DeliveryFailed, Identity, InboundMessage, OutboundMessage
from contactcenter.services import delivery
from contactcenter.services.ingest import ingest
from contactcenter.settings import Settings
from tests.helpers import (
    bearer,
    eventually,
    make_agent,
    make_worker,
    new_client_id,
    start_chat,
)


class AlwaysBusy:
    """A provider that answers every send with a passing failure (a 503, say)."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, message: OutboundMessage) -> None:
        self.calls += 1
        raise DeliveryFailed("provider_busy", "try later", permanent=False)


async def queued_reply(client: TestClient[Any, Any], db: asyncpg.Pool, text: str) -> int:
    _, token = await make_agent(db)
    chat = await start_chat(client)
    await db.execute(
        "UPDATE conversations SET team_id = (SELECT id FROM teams WHERE is_default) WHERE id = $1",
        chat["conversation_id"],
    )
    answer = await client.post(
        f"/v1/conversations/{chat['conversation_id']}/replies",
        json={"text": text},
        headers=bearer(token),
    )
    assert answer.status == 202
    message_id: int = (await answer.json())["message_id"]
    return message_id


async def test_a_send_that_keeps_failing_is_marked_failed_after_the_last_attempt(
    client: TestClient[Any, Any], db: asyncpg.Pool, conns: Conns
) -> None:
    message_id = await queued_reply(client, db, "Are you there?")
    provider = AlwaysBusy()
    senders = {Channel.WEB: provider}
    for attempt in range(1, delivery.MAX_SEND_ATTEMPTS):
        with pytest.raises(delivery.SendAgain) as again:
            await delivery.deliver(conns, message_id, senders)
        assert again.value.attempt == attempt
    # the last attempt fails for good, whoever enqueues the job again afterwards
    assert await delivery.deliver(conns, message_id, senders) is delivery.Outcome.FAILED
    assert await delivery.deliver(conns, message_id, senders) is delivery.Outcome.SKIPPED
    row = await db.fetchrow(
        "SELECT status, error_code, send_attempts FROM messages WHERE id = $1", message_id
    )
    assert dict(row) == {
        "status": "failed",
        "error_code": "provider_busy",
        "send_attempts": delivery.MAX_SEND_ATTEMPTS,
    }
    assert provider.calls == delivery.MAX_SEND_ATTEMPTS


async def test_replies_sent_out_of_order_all_reach_the_visitor(
    client: TestClient[Any, Any], db: asyncpg.Pool, conns: Conns
) -> None:
    _, token = await make_agent(db)
    chat = await start_chat(client)
    conversation_id = chat["conversation_id"]
    await db.execute(
        "UPDATE conversations SET team_id = (SELECT id FROM teams WHERE is_default) WHERE id = $1",
        conversation_id,
    )
    visitor = await client.ws_connect(
        f"/v1/web/conversations/{conversation_id}/ws?token={chat['visitor_token']}"
    )
    ids = []
    for text in ("one", "two"):
        answer = await client.post(
            f"/v1/conversations/{conversation_id}/replies",
            json={"text": text},
            headers=bearer(token),
        )
        ids.append((await answer.json())["message_id"])
    # the socket may already have replayed them from the database; either way, each arrives
    # exactly once, even when the later one is sent first
    senders = build_senders(conns)
    for message_id in reversed(ids):
        assert await delivery.deliver(conns, message_id, senders) is delivery.Outcome.SENT
    received = [(await visitor.receive_json(timeout=5))["message"]["id"] for _ in ids]
    assert sorted(received) == ids
    with pytest.raises(asyncio.TimeoutError):
        await visitor.receive_json(timeout=0.3)  # and nothing twice
    await visitor.close()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word (a wedged Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_redis_that_does_not_answer_does_not_hold_up_the_acknowledgement(
    db: asyncpg.Pool, settings: Settings
) -> None:
    async with silent_server() as port:
        wedged = ArqRedis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        try:
            conns = Conns(db=db, redis=wedged, settings=settings)
            inbound = InboundMessage(
                channel=Channel.WEB,
                external_id=f"new:{new_client_id()}",
                text="hello",
                identities=(Identity(IdentityKind.WEB, new_client_id()),),
            )
            async with asyncio.timeout(10):
                result = await ingest(conns, inbound)
        finally:
            await wedged.aclose()
    # stored, and due for routing: the reconciler will route it once Redis answers
    assert await db.fetchval(
        "SELECT route_requested_at IS NOT NULL FROM conversations WHERE id = $1",
        result.conversation_id,
    )


async def test_a_plain_agent_hears_of_new_work_in_their_team(
    client: TestClient[Any, Any], db: asyncpg.Pool, settings: Settings
) -> None:
    _, token = await make_agent(db, online=False)  # offline: nothing is assigned to them
    events = await client.ws_connect("/v1/events", headers=bearer(token))
    assert (await events.receive_json(timeout=5))["type"] == "hello"
    chat = await start_chat(client)
    worker = make_worker(settings, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    async def queued() -> dict[str, Any] | None:
        event: dict[str, Any] = await events.receive_json(timeout=5)
        return event if event["type"] == "conversation.queued" else None

    event = await eventually(queued)
    assert event["conversation_id"] == chat["conversation_id"]
    await events.close()
