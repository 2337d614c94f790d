"""/v1/events resumes after a reconnect: the events of the agent's conversations published
while its socket was away are replayed once, in order, and then the live ones follow."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import asyncpg
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from contactcenter import events
from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from tests.helpers import bearer, error_code, make_agent, start_chat
from tests.routing_helpers import team

Client = TestClient[Any, Any]

WEBSOCKET_HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
}


async def team_of(db: asyncpg.Pool, agent_id: int) -> int:
    return int(await db.fetchval("SELECT team_id FROM team_members WHERE agent_id = $1", agent_id))


async def publish(
    conns: Conns,
    number: int,
    *,
    team_id: int | None,
    assignee_id: int | None = None,
    conversation_id: int | None = 1,
) -> None:
    """A note.test event whose data says which one it is."""
    await events.publish_agent_event(
        conns,
        "note.test",
        conversation_id=conversation_id,
        team_id=team_id,
        assignee_id=assignee_id,
        data={"n": number},
    )


async def receive(socket: Any) -> dict[str, Any]:
    event: dict[str, Any] = await socket.receive_json(timeout=10)
    return event


async def connect(client: Client, token: str, query: str = "") -> tuple[Any, dict[str, Any]]:
    socket = await client.ws_connect("/v1/events" + query, headers=bearer(token))
    hello = await receive(socket)
    assert hello["type"] == "hello"
    return socket, hello


def numbers(received: list[dict[str, Any]]) -> list[int]:
    return [event["data"]["n"] for event in received]


@pytest.fixture
async def desk(db: asyncpg.Pool) -> dict[str, Any]:
    """An agent of one team, and another team it may not see."""
    await team(db, "North")
    await team(db, "South")
    agent_id, token = await make_agent(db, name="Mei Lin", team="North")
    other_id, _ = await make_agent(db, name="Ravi Kumar", team="South")
    return {
        "agent_id": agent_id,
        "token": token,
        "team": await team_of(db, agent_id),
        "other": other_id,
        "other_team": await team_of(db, other_id),
    }


async def test_a_reconnect_gets_exactly_what_was_missed_and_then_live_events(
    client: Client, conns: Conns, desk: dict[str, Any]
) -> None:
    socket, _ = await connect(client, desk["token"])
    await publish(conns, 1, team_id=desk["team"])
    first = await receive(socket)
    assert (first["type"], first["data"]["n"]) == ("note.test", 1)
    await socket.close()

    # while the socket is away: its team's, its own, and two it may not see
    await publish(conns, 2, team_id=desk["team"])
    await publish(conns, 3, team_id=desk["other_team"], assignee_id=desk["other"])
    await publish(conns, 4, team_id=desk["other_team"], assignee_id=desk["agent_id"])
    await publish(conns, 5, team_id=desk["other_team"], conversation_id=None)  # team news
    await publish(conns, 6, team_id=desk["team"], conversation_id=None)

    again, hello = await connect(client, desk["token"], f"?after={first['id']}")
    assert hello["last_event_id"] == first["id"]
    replayed = [await receive(again) for _ in range(3)]
    assert numbers(replayed) == [2, 4, 6]
    ids = [first["id"], *(event["id"] for event in replayed)]
    assert ids == sorted(ids, key=events.event_key) and len(set(ids)) == 4

    # then live, and nothing in between: the next event is the next one published
    await publish(conns, 7, team_id=desk["other_team"])
    await publish(conns, 8, team_id=desk["team"])
    live = await receive(again)
    assert numbers([live]) == [8]
    assert events.event_key(live["id"]) > events.event_key(replayed[-1]["id"])
    await again.close()


async def test_events_published_while_reconnecting_arrive_once_and_in_order(
    client: Client, conns: Conns, desk: dict[str, Any]
) -> None:
    """The replay and the live feed overlap while the socket opens: each event is sent once."""
    socket, _ = await connect(client, desk["token"])
    await publish(conns, 0, team_id=desk["team"])
    last = await receive(socket)
    await socket.close()

    some_published = asyncio.Event()

    async def publish_many() -> None:
        for number in range(1, 301):
            await publish(conns, number, team_id=desk["team"])
            if number == 50:
                some_published.set()

    publishing = asyncio.create_task(publish_many())
    # the first 50 go out before the socket opens, the rest while it replays and goes live
    await asyncio.wait_for(some_published.wait(), 10)
    again, _ = await connect(client, desk["token"], f"?after={last['id']}")
    received = [await receive(again) for _ in range(300)]
    await publishing
    assert numbers(received) == list(range(1, 301))
    await publish(conns, 301, team_id=desk["team"])
    assert numbers([await receive(again)]) == [301]
    await again.close()


async def test_the_last_event_id_header_resumes_too(
    client: Client, conns: Conns, desk: dict[str, Any]
) -> None:
    _, hello = await connect(client, desk["token"])
    await publish(conns, 1, team_id=desk["team"])
    socket = await client.ws_connect(
        "/v1/events", headers={**bearer(desk["token"]), "Last-Event-ID": hello["last_event_id"]}
    )
    assert (await receive(socket))["last_event_id"] == hello["last_event_id"]
    assert numbers([await receive(socket)]) == [1]
    await socket.close()


async def test_the_hello_id_resumes_a_socket_that_heard_nothing(
    client: Client, conns: Conns, desk: dict[str, Any]
) -> None:
    await publish(conns, 1, team_id=desk["team"])
    socket, hello = await connect(client, desk["token"])
    await socket.close()
    await publish(conns, 2, team_id=desk["team"])
    again, _ = await connect(client, desk["token"], f"?after={hello['last_event_id']}")
    assert numbers([await receive(again)]) == [2]
    await again.close()


async def test_an_id_the_stream_no_longer_holds_gets_a_resync_then_live_events(
    client: Client, conns: Conns, redis: ArqRedis, desk: dict[str, Any]
) -> None:
    socket, _ = await connect(client, desk["token"])
    for number in (1, 2, 3):
        await publish(conns, number, team_id=desk["team"])
    seen = [await receive(socket) for _ in range(3)]
    await socket.close()
    # the stream is trimmed past the first: what came after it is no longer all there
    await redis.xtrim(events.agent_events_stream(redis), minid=seen[2]["id"], approximate=False)

    again, _ = await connect(client, desk["token"], f"?after={seen[0]['id']}")
    assert await receive(again) == {"type": "resync"}
    await publish(conns, 4, team_id=desk["team"])
    assert numbers([await receive(again)]) == [4]
    await again.close()

    # an id still held is replayed from as usual
    held, _ = await connect(client, desk["token"], f"?after={seen[2]['id']}")
    assert numbers([await receive(held)]) == [4]
    await held.close()


@pytest.mark.parametrize(
    "after", ["99999999999999-0", "1-0"], ids=["newer-than-any", "events-lost-with-redis"]
)
async def test_an_id_from_before_redis_lost_its_events_gets_a_resync(
    client: Client, conns: Conns, redis: ArqRedis, desk: dict[str, Any], after: str
) -> None:
    if after == "1-0":  # Redis started again empty: the stream is gone
        await redis.delete(events.agent_events_stream(redis))
    else:
        await publish(conns, 1, team_id=desk["team"])
    socket, _ = await connect(client, desk["token"], f"?after={after}")
    assert await receive(socket) == {"type": "resync"}
    await publish(conns, 2, team_id=desk["team"])
    assert numbers([await receive(socket)]) == [2]
    await socket.close()


@pytest.mark.parametrize(
    "after",
    [
        "",
        "abc",
        "1",
        "1-",
        "-1-0",
        "1-0-0",
        " 1-0",
        "1.5-0",
        "18446744073709551616-0",
        "1-18446744073709551616",
        "١٢-0",
        "$",
        "+",
    ],
)
async def test_a_bad_event_id_is_refused_before_the_upgrade(
    client: Client, desk: dict[str, Any], after: str
) -> None:
    response = await client.get(
        "/v1/events",
        params={"after": after},
        headers={**bearer(desk["token"]), **WEBSOCKET_HANDSHAKE},
    )
    assert response.status == 400
    body = await response.json()
    assert error_code(body) == "invalid_event_id"
    assert "after" in body["error"]["message"]
    with pytest.raises(WSServerHandshakeError) as handshake:
        await client.ws_connect(
            "/v1/events", params={"after": after}, headers=bearer(desk["token"])
        )
    assert handshake.value.status == 400


async def test_a_bad_last_event_id_header_is_refused(client: Client, desk: dict[str, Any]) -> None:
    headers = {**bearer(desk["token"]), **WEBSOCKET_HANDSHAKE, "Last-Event-ID": "yesterday"}
    response = await client.get("/v1/events", headers=headers)
    assert response.status == 400
    assert error_code(await response.json()) == "invalid_event_id"


async def test_the_token_is_checked_before_the_event_id(client: Client) -> None:
    response = await client.get("/v1/events?after=abc", headers=WEBSOCKET_HANDSHAKE)
    assert response.status == 401
    assert error_code(await response.json()) == "missing_token"


async def test_live_events_without_after_carry_increasing_ids(
    client: Client, db: asyncpg.Pool
) -> None:
    _, token = await make_agent(db, role=Role.SUPERVISOR)
    socket, hello = await connect(client, token)
    assert events.parse_event_id(hello["last_event_id"]) is not None
    chat = await start_chat(client, "Where is my parcel?")
    created = await receive(socket)
    while created["type"] != "message.created":
        created = await receive(socket)
    assert created["conversation_id"] == chat["conversation_id"]
    assert events.event_key(created["id"]) > events.event_key(hello["last_event_id"])
    await socket.close()


async def test_a_publish_never_fails_when_redis_is_away(conns: Conns) -> None:
    away = ArqRedis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        await events.publish_agent_event(
            Conns(db=conns.db, redis=away, settings=conns.settings),
            "note.test",
            conversation_id=1,
            team_id=None,
            assignee_id=None,
        )
    finally:
        await away.aclose()
