"""Issue 8, item 2: tags on conversations. POST /v1/conversations/{id}/tags adds and removes
(normalised as contacts' tags are), tells the agents who see the conversation, changes nothing
when nothing would, refuses bad tags with nothing written, and hides another team's
conversation exactly as a missing one."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from contactcenter import events
from contactcenter.domain.enums import Role
from tests.helpers import bearer, call, error_code, make_agent, table_digests
from tests.routing_helpers import team

Client = TestClient[Any, Any]


@pytest.fixture
async def desk(db: asyncpg.Pool) -> dict[str, Any]:
    """A conversation in team A, an agent of team A and one of team B."""
    team_a = await team(db, "Team A")
    await team(db, "Team B")
    _, agent = await make_agent(db, name="Ann", team="Team A", online=False)
    _, outsider = await make_agent(db, name="Bob", team="Team B", online=False)
    contact = await db.fetchval("INSERT INTO contacts (name) VALUES ('Wang Fang') RETURNING id")
    conversation = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel, team_id, tags)"
        " VALUES ($1, 'web', $2, '{vip}') RETURNING id",
        contact,
        team_a,
    )
    return {"conversation": conversation, "agent": agent, "outsider": outsider}


def tags_path(desk: dict[str, Any]) -> str:
    return f"/v1/conversations/{desk['conversation']}/tags"


async def stored_tags(db: asyncpg.Pool, conversation_id: int) -> list[str]:
    return list(await db.fetchval("SELECT tags FROM conversations WHERE id = $1", conversation_id))


async def test_an_agent_adds_and_removes_tags_and_their_team_hears_of_it(
    client: Client, db: asyncpg.Pool, desk: dict[str, Any]
) -> None:
    socket = await client.ws_connect("/v1/events", headers=bearer(desk["agent"]))
    assert (await socket.receive_json(timeout=10))["type"] == "hello"
    status, answer = await call(
        client,
        "POST",
        tags_path(desk),
        bearer(desk["agent"]),
        {"add": [" Refund ", "refund", "CALL-back"], "remove": ["VIP"]},
    )
    assert status == 200, answer
    assert answer == {"conversation_id": desk["conversation"], "tags": ["refund", "call-back"]}
    assert await stored_tags(db, desk["conversation"]) == ["refund", "call-back"]
    event = await socket.receive_json(timeout=10)
    assert event["type"] == "conversation.tags_changed"
    assert event["conversation_id"] == desk["conversation"]
    assert event["data"] == {
        "tags": ["refund", "call-back"],
        "added": ["refund", "call-back"],
        "removed": ["vip"],
    }
    await socket.close()


async def test_nothing_to_change_writes_and_tells_nothing(
    client: Client, db: asyncpg.Pool, redis: ArqRedis, desk: dict[str, Any]
) -> None:
    before = await table_digests(db)
    published = await redis.xlen(events.agent_events_stream(redis))
    status, answer = await call(
        client, "POST", tags_path(desk), bearer(desk["agent"]), {"add": ["vip"], "remove": ["x"]}
    )
    assert (status, answer["tags"]) == (200, ["vip"])
    assert await table_digests(db) == before
    assert await redis.xlen(events.agent_events_stream(redis)) == published


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"add": ["refund"], "remove": ["Refund"]}, 422, "conflicting_tags"),
        ({"add": ["   "]}, 422, "invalid_tag"),
        ({"add": ["x" * 101]}, 422, "invalid_tag"),
        ({"add": [f"t{i}" for i in range(50)]}, 422, "too_many_tags"),  # 50 and the vip one
        ({"add": [1]}, 422, "validation_error"),
        ({"add": "refund"}, 422, "validation_error"),
        ({"tags": ["refund"]}, 422, "validation_error"),
    ],
)
async def test_bad_tags_are_refused_and_nothing_is_written(
    client: Client,
    db: asyncpg.Pool,
    desk: dict[str, Any],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = await table_digests(db)
    got, answer = await call(client, "POST", tags_path(desk), bearer(desk["agent"]), body)
    assert (got, error_code(answer)) == (status, code), answer
    assert await table_digests(db) == before


async def test_another_teams_conversation_is_not_found_and_untouched(
    client: Client, db: asyncpg.Pool, desk: dict[str, Any]
) -> None:
    body = {"add": ["spam"]}
    hidden = await call(client, "POST", tags_path(desk), bearer(desk["outsider"]), body)
    missing = await call(
        client, "POST", "/v1/conversations/999999/tags", bearer(desk["outsider"]), body
    )
    assert hidden == missing
    assert (hidden[0], error_code(hidden[1])) == (404, "conversation_not_found")
    assert await stored_tags(db, desk["conversation"]) == ["vip"]
    # a supervisor sees every conversation
    _, supervisor = await make_agent(db, name="Sue", role=Role.SUPERVISOR, online=False)
    status, answer = await call(client, "POST", tags_path(desk), bearer(supervisor), body)
    assert (status, answer["tags"]) == (200, ["vip", "spam"])
