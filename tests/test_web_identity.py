"""What a web visitor says about themselves is not proof: it never links them to a customer,
and nothing an agent can read lets anyone take over a visitor's conversation."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.domain.enums import IdentityKind, Role
from contactcenter.domain.messages import Identity
from contactcenter.store import contacts
from tests.helpers import bearer, make_agent, new_client_id, start_chat


async def test_a_typed_email_does_not_attach_the_chat_to_the_customer_who_owns_it(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        victim = await contacts.create(conn, "Wang Fang")
        await contacts.add_identities(
            conn, victim, (Identity(IdentityKind.EMAIL, "wang.fang@example.com"),)
        )
    chat = await start_chat(client, "Send my invoices here", email="Wang.Fang@example.com")
    owner = await db.fetchval(
        "SELECT contact_id FROM conversations WHERE id = $1", chat["conversation_id"]
    )
    assert owner != victim
    # and the address stays the customer's: the visitor did not claim it
    assert (
        await db.fetchval("SELECT contact_id FROM contact_identities WHERE kind = 'email'")
        == victim
    )


async def test_what_an_agent_sees_cannot_mint_a_visitor_token(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    client_id = new_client_id()
    started = await client.post(
        "/v1/web/conversations", json={"text": "My secret order", "client_message_id": client_id}
    )
    conversation_id = (await started.json())["conversation_id"]
    detail = await (
        await client.get(f"/v1/conversations/{conversation_id}", headers=bearer(admin))
    ).json()
    stored = detail["messages"][0]["external_id"]
    assert client_id not in stored

    # replaying what the agent could read opens a new conversation, not the customer's
    replay = await client.post(
        "/v1/web/conversations",
        json={"text": "My secret order", "client_message_id": stored.removeprefix("new:")},
    )
    assert replay.status == 201
    assert (await replay.json())["conversation_id"] != conversation_id
