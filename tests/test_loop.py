"""The spine end to end: customer -> worker -> agent -> customer, over real HTTP and WebSocket,
with a real arq worker running beside the test."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from arq.worker import Worker

from contactcenter.api.app import create_app
from contactcenter.domain.enums import Role
from contactcenter.settings import Settings
from tests.helpers import bearer, eventually, make_agent, new_client_id, start_chat


async def _events_until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        event: dict[str, Any] = await ws.receive_json(timeout=10)
        if event["type"] == kind:
            return event


async def test_a_web_message_is_routed_answered_and_delivered(
    client: TestClient[Any, Any], db: asyncpg.Pool, running_worker: Worker
) -> None:
    alice_id, alice = await make_agent(db, name="Alice Chen")
    events = await client.ws_connect("/v1/events", headers=bearer(alice))
    assert (await events.receive_json(timeout=5))["type"] == "hello"

    chat = await start_chat(
        client, "My parcel is late", name="Wang Fang", email="Wang.Fang@Example.com"
    )
    conversation_id = chat["conversation_id"]
    visitor = await client.ws_connect(
        f"/v1/web/conversations/{conversation_id}/ws?token={chat['visitor_token']}"
    )

    # the worker assigns it to the only online agent, who hears of it at once
    assigned = await _events_until(events, "conversation.assigned")
    assert assigned["conversation_id"] == conversation_id
    assert assigned["assignee_id"] == alice_id
    inbox = await (await client.get("/v1/inbox?view=mine", headers=bearer(alice))).json()
    assert [item["id"] for item in inbox["items"]] == [conversation_id]
    assert inbox["items"][0]["preview"] == "My parcel is late"
    assert inbox["items"][0]["contact_name"] == "Wang Fang"

    # the agent answers from the inbox; the visitor's socket receives it
    answer = await client.post(
        f"/v1/conversations/{conversation_id}/replies",
        json={"text": "It left our warehouse today."},
        headers=bearer(alice),
    )
    assert answer.status == 202
    queued = await answer.json()
    assert queued["status"] == "queued"
    pushed = await visitor.receive_json(timeout=10)
    assert pushed == {
        "type": "message",
        "message": {
            "id": queued["message_id"],
            "direction": "outbound",
            "text": "It left our warehouse today.",
            "created_at": pushed["message"]["created_at"],
            "author_name": "Alice Chen",
        },
    }

    # the send job marked it sent, and the first response is recorded
    async def sent() -> bool:
        status = await db.fetchval(
            "SELECT status FROM messages WHERE id = $1", queued["message_id"]
        )
        return bool(status == "sent")

    await eventually(sent)
    assert await db.fetchval(
        "SELECT first_responded_at IS NOT NULL FROM conversations WHERE id = $1", conversation_id
    )

    # the visitor writes again: the agent hears of it; history has both sides, no notes
    note = await client.post(
        f"/v1/conversations/{conversation_id}/notes",
        json={"text": "VIP, be quick"},
        headers=bearer(alice),
    )
    assert note.status == 201
    follow_up = await client.post(
        f"/v1/web/conversations/{conversation_id}/messages",
        json={"text": "Thank you!", "client_message_id": new_client_id()},
        headers=bearer(chat["visitor_token"]),
    )
    assert follow_up.status == 201
    created = await _events_until(events, "message.created")
    while created["data"]["direction"] != "inbound":
        created = await _events_until(events, "message.created")
    assert created["data"]["message_id"] == (await follow_up.json())["message_id"]

    history = await client.get(
        f"/v1/web/conversations/{conversation_id}/messages",
        headers=bearer(chat["visitor_token"]),
    )
    texts = [(m["direction"], m["text"]) for m in (await history.json())["items"]]
    assert texts == [
        ("inbound", "My parcel is late"),
        ("outbound", "It left our warehouse today."),
        ("inbound", "Thank you!"),
    ]

    # the agent's view has everything, the note included, and the contact card
    detail = await (
        await client.get(f"/v1/conversations/{conversation_id}", headers=bearer(alice))
    ).json()
    assert [m["body_text"] for m in detail["messages"]] == [
        "My parcel is late",
        "It left our warehouse today.",
        "VIP, be quick",
        "Thank you!",
    ]
    assert detail["contact"]["name"] == "Wang Fang"
    # what the visitor typed is shown, marked as unproven; only the web visitor id identifies
    assert detail["contact"]["profile"] == {"claimed": {"email": "wang.fang@example.com"}}
    assert [i["kind"] for i in detail["contact"]["identities"]] == ["web"]

    # resolving frees the agent's slot
    resolved = await client.post(
        f"/v1/conversations/{conversation_id}/status",
        json={"status": "resolved"},
        headers=bearer(alice),
    )
    assert resolved.status == 200
    assert (await resolved.json())["status"] == "resolved"
    await visitor.close()
    await events.close()


async def test_a_visitor_socket_replays_replies_sent_while_it_was_away(
    client: TestClient[Any, Any], db: asyncpg.Pool, running_worker: Worker
) -> None:
    _, alice = await make_agent(db)
    chat = await start_chat(client)
    conversation_id = chat["conversation_id"]

    async def assigned_to_alice() -> bool:
        inbox = await (await client.get("/v1/inbox?view=mine", headers=bearer(alice))).json()
        return [item["id"] for item in inbox["items"]] == [conversation_id]

    await eventually(assigned_to_alice)
    replies = []
    for text in ("first", "second"):
        answer = await client.post(
            f"/v1/conversations/{conversation_id}/replies",
            json={"text": text},
            headers=bearer(alice),
        )
        assert answer.status == 202
        replies.append((await answer.json())["message_id"])

    visitor = await client.ws_connect(
        f"/v1/web/conversations/{conversation_id}/ws?token={chat['visitor_token']}"
        f"&after={replies[0]}"
    )
    replayed = await visitor.receive_json(timeout=10)
    assert (replayed["message"]["id"], replayed["message"]["text"]) == (replies[1], "second")
    await visitor.close()


async def test_the_same_client_message_id_gives_one_message(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    body = {"text": "Where is my refund?", "client_message_id": new_client_id(), "name": "Li"}
    first = await client.post("/v1/web/conversations", json=body)
    again = await client.post("/v1/web/conversations", json=body)
    assert (first.status, again.status) == (201, 200)
    first_body, again_body = await first.json(), await again.json()
    assert again_body["conversation_id"] == first_body["conversation_id"]
    assert again_body["message_id"] == first_body["message_id"]

    follow_up = {"text": "Any news?", "client_message_id": "retry-1"}
    token = bearer(first_body["visitor_token"])
    path = f"/v1/web/conversations/{first_body['conversation_id']}/messages"
    answers = [await client.post(path, json=follow_up, headers=token) for _ in range(3)]
    assert [a.status for a in answers] == [201, 200, 200]
    assert len({(await a.json())["message_id"] for a in answers}) == 1

    assert await db.fetchval("SELECT count(*) FROM messages") == 2
    assert await db.fetchval("SELECT count(*) FROM conversations") == 1
    assert await db.fetchval("SELECT count(*) FROM contacts") == 1

    # the same id with other words is a client bug, not a retry
    reused = await client.post(path, json={**follow_up, "text": "Different"}, headers=token)
    assert reused.status == 409
    assert (await reused.json())["error"]["code"] == "client_message_id_reused"


async def test_events_reach_sockets_on_another_web_process(
    aiohttp_client: Any, settings: Settings, db: asyncpg.Pool, client: TestClient[Any, Any]
) -> None:
    """Two web processes on one Redis: what happens on one is heard on the other."""
    other = await aiohttp_client(create_app(settings))
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    events = await other.ws_connect("/v1/events", headers=bearer(token))
    assert (await events.receive_json(timeout=5))["type"] == "hello"

    chat = await start_chat(client, "Written on the first process")
    created = await _events_until(events, "message.created")
    assert created["conversation_id"] == chat["conversation_id"]
    await events.close()
