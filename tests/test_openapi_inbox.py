"""The inbox's routes in the OpenAPI document. What the checking middleware cannot see for
itself: the frames of the GET /v1/events WebSocket fit the schema its 101 documents. What the
rest of the suite never asks for: stored JSON the views name key by key (an overflow, an
escalation and a recovery in the routing explanation, a merge's dropped rows, a full card),
checked by the middleware as these tests read it. And the inbox's ?tag= filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.services import assignment, reconcile, routing, sla
from contactcenter.settings import Settings
from tests.helpers import bearer, call, error_code, make_agent, start_chat
from tests.openapi_check import product_document
from tests.routing_helpers import Clock, clocked, customer_writes, default_team, team
from tests.test_contact_merge import merge, supervisor, two_full_contacts
from tests.test_sla_engine import make_desk, opened
from tests.test_sla_timers import a_while_ago, answer_in_an_hour
from tests.test_surveys import answer, resolved_conversation, sent_follow_up, survey_path

Client = TestClient[Any, Any]


def frame_problems(client: Client, frame: dict[str, Any]) -> list[str]:
    """Where the frame does not fit the schema of GET /v1/events' 101 response."""
    document = product_document(client.app)
    answer = document.document["paths"]["/v1/events"]["get"]["responses"]["101"]
    schema = answer["content"]["application/json"]["schema"]
    return [
        f"{frame.get('type')}: {error.message[:300]}"
        for error in document.validator(schema).iter_errors(frame)
    ]


async def receive_until(socket: Any, wanted: set[str]) -> list[dict[str, Any]]:
    """Frames until one of each wanted type has come."""
    frames: list[dict[str, Any]] = []
    while not wanted <= {frame["type"] for frame in frames}:
        frames.append(await socket.receive_json(timeout=10))
    return frames


async def test_the_event_frames_fit_the_documented_schema(
    client: Client, db: asyncpg.Pool, run_jobs: Any
) -> None:
    _, supervisor = await make_agent(db, name="Sue", role=Role.SUPERVISOR, online=False)
    _, agent = await make_agent(db, name="Ann", online=False)
    socket = await client.ws_connect("/v1/events", headers=bearer(supervisor))
    hello = await socket.receive_json(timeout=10)

    online = await call(
        client, "PUT", "/v1/agents/me/presence", bearer(agent), {"status": "online"}
    )
    assert online[0] == 200, online
    conversation = (await start_chat(client))["conversation_id"]
    await run_jobs()  # routed to Ann
    on = f"/v1/conversations/{conversation}"
    for path, body in [
        (f"{on}/notes", {"text": "VIP"}),
        (f"{on}/replies", {"text": "Hello, how can I help?"}),
        (f"{on}/tags", {"add": ["refund"]}),
        (f"{on}/status", {"status": "pending"}),
        (f"{on}/assign", {"team_id": await default_team(db)}),
    ]:
        status, answer = await call(client, "POST", path, bearer(supervisor), body)
        assert status in (200, 201, 202), answer
    await run_jobs()  # the reply is sent

    frames = [hello] + await receive_until(
        socket,
        {
            "agent.presence_changed",
            "message.created",
            "conversation.queued",
            "conversation.assigned",
            "conversation.tags_changed",
            "conversation.status_changed",
            "message.status_changed",
        },
    )
    await socket.close()
    # after an id newer than any the stream gave (Redis started again empty): hello, resync
    again = await client.ws_connect("/v1/events?after=99999999999999-0", headers=bearer(supervisor))
    frames += [await again.receive_json(timeout=10) for _ in range(2)]
    await again.close()

    assert [frames[0]["type"], *(f["type"] for f in frames[-2:])] == ["hello", "hello", "resync"]
    assert [problem for frame in frames for problem in frame_problems(client, frame)] == []


async def test_a_frame_the_schema_does_not_name_is_found(client: Client) -> None:
    assert frame_problems(client, {"type": "hello", "agent_id": 1, "last_event_id": None}) == []
    assert frame_problems(client, {"type": "hello", "agent_id": 1}) != []
    assert frame_problems(client, {"type": "note.test", "data": {}}) != []


async def test_the_inbox_filters_by_tag(client: Client, db: asyncpg.Pool, admin: Any) -> None:
    """?tag= gives the conversations with any of the tags, compared as tags are stored
    (trimmed, lowercased); a tag that could not be stored is invalid_query."""
    contact = await db.fetchval("INSERT INTO contacts (name) VALUES ('Wang Fang') RETURNING id")
    ids = {}
    for name, tags in [("refund", ["refund"]), ("both", ["vip", "refund"]), ("none", [])]:
        ids[name] = await db.fetchval(
            "INSERT INTO conversations (contact_id, channel, tags) VALUES ($1, 'web', $2)"
            " RETURNING id",
            contact,
            tags,
        )

    async def listed(query: str) -> set[int]:
        status, page = await call(client, "GET", f"/v1/inbox?{query}", admin)
        assert status == 200, page
        return {item["id"] for item in page["items"]}

    assert await listed("tag=%20Refund") == {ids["refund"], ids["both"]}
    assert await listed("tag=VIP,other") == {ids["both"]}
    assert await listed("tag=,") == set(ids.values())
    assert await listed("tag=nobody") == set()
    for bad in ["x" * 51, ",".join(f"t{i}" for i in range(51))]:
        status, answer = await call(client, "GET", f"/v1/inbox?tag={bad}", admin)
        assert (status, error_code(answer)) == (422, "invalid_query"), answer
        assert answer["error"]["details"] == {"field": "tag"}


# --- what the suite's other tests leave unseen: the checking middleware validates each answer


async def test_an_overflow_in_the_routing_explanation_fits(
    client: Client, conns: Conns, db: asyncpg.Pool, admin: Any
) -> None:
    clock = Clock()
    timed = clocked(conns, clock)
    seniors = await team(db, "Seniors")
    await db.execute(
        "UPDATE teams SET overflow_team_id = $1, overflow_after_seconds = 300 WHERE is_default",
        seniors,
    )
    senior, _ = await make_agent(db, team="Seniors")
    conversation, _ = await customer_writes(timed, "anyone there?")
    await routing.route_conversation(timed, conversation)
    clock.advance(300)
    assert (await reconcile.reconcile(timed)).overflowed == 1
    await assignment.assign_waiting(timed, seniors)

    status, detail = await call(client, "GET", f"/v1/conversations/{conversation}", admin)
    assert status == 200, detail
    assert detail["routing"]["overflows"][0]["to_team_id"] == seniors
    assert detail["routing"]["assignment"]["agent_id"] == senior


async def test_an_escalated_breach_fits(client: Client, conns: Conns, db: asyncpg.Pool) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    escalations = await team(db, "Escalations")
    await answer_in_an_hour(conns, escalation={"raise_priority_to": 5, "team_id": escalations})
    conversation = await opened(desk)
    desk.at(base + timedelta(minutes=60, seconds=1))
    assert len(await sla.fire(desk.conns, conversation)) == 1
    _, token = await make_agent(db, name="Sam", role=Role.SUPERVISOR, online=False)

    status, detail = await call(client, "GET", f"/v1/conversations/{conversation}", bearer(token))
    assert status == 200, detail
    [escalated] = detail["routing"]["escalations"]
    assert escalated["team"][1] == escalations
    [event] = detail["sla"]["events"]
    assert event["escalation"]["priority"] == [0, 5]
    status, page = await call(client, "GET", "/v1/inbox?sla=breached", bearer(token))
    assert [item["id"] for item in page["items"]] == [conversation], page


async def test_a_recovery_and_the_card_of_its_customer_fit(
    client: Client, conns: Conns, db: asyncpg.Pool, settings: Settings
) -> None:
    await db.execute(
        "UPDATE care_settings SET recovery_threshold = 2, recovery_priority = 9,"
        " survey_valid_days = 14, default_locale = 'en'"
    )
    timed = clocked(conns, Clock(datetime.now(UTC)))
    support = await team(db, "Support")
    agent_id, _ = await make_agent(db, name="Agent", team="Support")
    _, boss = await make_agent(db, name="Boss", role=Role.SUPERVISOR, team="Support")
    conversation, _ = await resolved_conversation(timed, team_id=support, agent_id=agent_id)
    care_send = await sent_follow_up(db, conversation, datetime.now(UTC) - timedelta(days=1))
    status, _ = await answer(client, survey_path(settings, care_send), "2", "still broken")
    assert status == 200
    recovery = await db.fetchval("SELECT recovery_conversation_id FROM satisfaction_scores")

    status, detail = await call(client, "GET", f"/v1/conversations/{recovery}", bearer(boss))
    assert status == 200, detail
    assert detail["routing"]["recovery"]["from_conversation_id"] == conversation
    assert detail["routing"]["assignment"]["reason"] == "recovery_supervisor"
    assert detail["contact"]["last_satisfaction"]["score"] == 2


async def test_a_merge_with_dropped_rows_and_a_full_card_fit(
    client: Client, conns: Conns, db: asyncpg.Pool
) -> None:
    into_id, from_id, conversations = await two_full_contacts(db, conns)
    headers = await supervisor(db)
    status, merged = await merge(client, headers, into_id, from_id)
    assert status == 200, merged

    status, page = await call(client, "GET", f"/v1/contacts/{into_id}/merges", headers)
    assert status == 200, page
    dropped = page["items"][0]["from_snapshot"]["dropped"]
    assert (len(dropped["care_sends"]), len(dropped["consents"])) == (1, 1)
    path = f"/v1/conversations/{conversations['from']}"
    status, detail = await call(client, "GET", path, headers)
    assert status == 200, detail
    assert detail["contact"]["consent"]["email"]["granted"] is True
    assert detail["contact"]["account_manager"]["name"] == "Li Wei"
