"""/v1/admin/teams and /v1/admin/agents over the real app: admins write, supervisors read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.domain.enums import Role
from tests.helpers import bearer, call, error_code, make_agent, start_chat

RunJobs = Callable[..., Awaitable[int]]
OVERFLOW = {"overflow_after_seconds": 60}
Client = TestClient[Any, Any]


async def new_team(client: Client, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
    status, body = await call(client, "POST", "/v1/admin/teams", admin, fields)
    assert status == 201, body
    result: dict[str, Any] = body
    return result


async def general_id(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT id FROM teams WHERE name = 'General'"))


# ---- teams ----


async def test_an_admin_creates_reads_and_changes_a_team(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    team = await new_team(
        client,
        admin,
        name="  Billing ",
        skills=[" Invoices", "vip", "VIP"],
        strategy="round_robin",
        sticky_wait_seconds=120,
        sticky_last_agent=False,
    )
    assert team["name"] == "Billing"
    assert team["skills"] == ["invoices", "vip"]
    assert (team["strategy"], team["sticky_wait_seconds"], team["sticky_last_agent"]) == (
        "round_robin",
        120,
        False,
    )
    assert (team["agent_ids"], team["waiting_count"], team["is_default"]) == ([], 0, False)
    assert team["overflow_team_id"] is None and team["overflow_after_seconds"] is None

    status, listed = await call(client, "GET", "/v1/admin/teams", admin)
    assert status == 200
    assert [t["name"] for t in listed["items"]] == ["General", "Billing"]

    status, changed = await call(
        client, "PATCH", f"/v1/admin/teams/{team['id']}", admin, {"strategy": "least_loaded"}
    )
    assert status == 200
    assert (changed["strategy"], changed["skills"], changed["name"]) == (
        "least_loaded",
        ["invoices", "vip"],
        "Billing",
    )
    status, read = await call(client, "GET", f"/v1/admin/teams/{team['id']}", admin)
    assert (status, read["strategy"]) == (200, "least_loaded")

    status, body = await call(client, "POST", "/v1/admin/teams", admin, {"name": "Billing"})
    assert (status, error_code(body)) == (409, "team_exists")
    status, body = await call(
        client, "PATCH", f"/v1/admin/teams/{team['id']}", admin, {"name": "General"}
    )
    assert (status, error_code(body)) == (409, "team_exists")
    status, body = await call(client, "GET", "/v1/admin/teams/999999", admin)
    assert (status, error_code(body)) == (404, "team_not_found")


async def test_team_views_count_the_waiting_work(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], run_jobs: RunJobs
) -> None:
    for n in range(2):
        await start_chat(client, f"question {n}")
    await run_jobs()  # nobody is online: both wait in the default team
    status, team = await call(client, "GET", f"/v1/admin/teams/{await general_id(db)}", admin)
    assert (status, team["waiting_count"]) == (200, 2)


async def test_supervisors_read_teams_and_agents_and_agents_see_neither(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    _, supervisor_token = await make_agent(db, role=Role.SUPERVISOR)
    agent_id, agent_token = await make_agent(db)
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    team = await new_team(client, admin, name="Sales")
    team_path = f"/v1/admin/teams/{team['id']}"
    agent_path = f"/v1/admin/agents/{agent_id}"

    for path in ("/v1/admin/teams", team_path, "/v1/admin/agents", agent_path):
        assert (await call(client, "GET", path, supervisor))[0] == 200
        status, body = await call(client, "GET", path, agent)
        assert (status, error_code(body)) == (403, "forbidden")

    writes = [
        ("POST", "/v1/admin/teams", {"name": "Mine"}),
        ("PATCH", team_path, {"name": "Renamed"}),
        ("PUT", f"{team_path}/members", {"agent_ids": [agent_id]}),
        ("DELETE", team_path, None),
        ("POST", "/v1/admin/agents", {"name": "X", "email": "x@example.com", "role": "admin"}),
        ("PATCH", agent_path, {"role": "admin"}),
    ]
    for method, path, body in writes:
        for who in (supervisor, agent):
            status, answer = await call(client, method, path, who, body)
            assert (status, error_code(answer)) == (403, "forbidden"), (method, path)
    # nothing was written
    assert await db.fetchval("SELECT count(*) FROM teams") == 2
    assert await db.fetchval("SELECT role FROM agents WHERE id = $1", agent_id) == "agent"
    assert (await call(client, "GET", "/v1/admin/teams", {}))[0] == 401


async def test_overflow_targets_must_exist_and_never_form_a_cycle(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    a, b, c = [(await new_team(client, admin, name=n))["id"] for n in ("A", "B", "C")]

    async def overflow(team: int, target: int | None, after: int | None = 60) -> tuple[int, Any]:
        body = {"overflow_team_id": target, "overflow_after_seconds": after}
        return await call(client, "PATCH", f"/v1/admin/teams/{team}", admin, body)

    status, body = await overflow(a, b)
    assert (status, body["overflow_team_id"], body["overflow_after_seconds"]) == (200, b, 60)
    status, body = await overflow(b, a)
    assert (status, error_code(body)) == (422, "overflow_cycle")
    assert body["error"]["details"]["cycle"] == [b, a, b]
    assert (await overflow(b, c))[0] == 200
    status, body = await overflow(c, a)  # A -> B -> C -> A
    assert (status, error_code(body)) == (422, "overflow_cycle")
    assert body["error"]["details"]["cycle"] == [c, a, b, c]
    status, body = await overflow(c, c)
    assert (status, error_code(body)) == (422, "overflow_cycle")
    status, body = await overflow(c, 987654)
    assert (status, error_code(body)) == (422, "unknown_team")
    # both or neither
    status, body = await call(
        client, "PATCH", f"/v1/admin/teams/{c}", admin, {"overflow_team_id": await general_id(db)}
    )
    assert (status, error_code(body)) == (422, "invalid_overflow")
    status, body = await call(
        client, "POST", "/v1/admin/teams", admin, {"name": "D", "overflow_after_seconds": 30}
    )
    assert (status, error_code(body)) == (422, "invalid_overflow")
    status, body = await call(
        client,
        "PATCH",
        f"/v1/admin/teams/{a}",
        admin,
        {"overflow_after_seconds": 0},
    )
    assert (status, error_code(body)) == (422, "validation_error")
    # a new team may overflow to an existing one
    d = await new_team(client, admin, name="D", overflow_team_id=a, overflow_after_seconds=300)
    assert (d["overflow_team_id"], d["overflow_after_seconds"]) == (a, 300)

    graph = {r["id"]: r["overflow_team_id"] for r in await db.fetch("SELECT * FROM teams")}
    assert (graph[a], graph[b], graph[c]) == (b, c, None)

    # null removes an overflow, and its wait with it
    status, body = await call(
        client, "PATCH", f"/v1/admin/teams/{a}", admin, {"overflow_team_id": None}
    )
    assert (status, body["overflow_team_id"], body["overflow_after_seconds"]) == (200, None, None)
    assert (await overflow(c, a))[0] == 200  # no cycle any more: C -> A, A -> nothing


async def test_two_overflows_saved_at_once_cannot_close_a_cycle(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    for _ in range(5):
        await db.execute("UPDATE teams SET overflow_team_id = NULL, overflow_after_seconds = NULL")
        a, b = [(await new_team(client, admin, name=uuid.uuid4().hex))["id"] for _ in range(2)]
        answers = await asyncio.gather(
            call(
                client, "PATCH", f"/v1/admin/teams/{a}", admin, OVERFLOW | {"overflow_team_id": b}
            ),
            call(
                client, "PATCH", f"/v1/admin/teams/{b}", admin, OVERFLOW | {"overflow_team_id": a}
            ),
        )
        assert sorted(status for status, _ in answers) == [200, 422]
        rows = await db.fetch("SELECT id FROM teams WHERE overflow_team_id IS NOT NULL")
        assert len(rows) == 1


async def test_the_default_team_changes_hands_and_cannot_be_deleted(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    general = await general_id(db)
    support = await new_team(client, admin, name="Support", is_default=True)
    assert support["is_default"] is True
    defaults = await db.fetch("SELECT id FROM teams WHERE is_default")
    assert [r["id"] for r in defaults] == [support["id"]]

    status, body = await call(
        client, "PATCH", f"/v1/admin/teams/{support['id']}", admin, {"is_default": False}
    )
    assert (status, error_code(body)) == (409, "default_team")
    status, body = await call(client, "DELETE", f"/v1/admin/teams/{support['id']}", admin)
    assert (status, error_code(body)) == (409, "default_team")

    status, body = await call(
        client, "PATCH", f"/v1/admin/teams/{general}", admin, {"is_default": True}
    )
    assert (status, body["is_default"]) == (200, True)
    assert await db.fetchval("SELECT id FROM teams WHERE is_default") == general
    assert (await call(client, "DELETE", f"/v1/admin/teams/{support['id']}", admin))[0] == 204


async def test_a_team_in_use_is_not_deleted(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], run_jobs: RunJobs
) -> None:
    routed = await new_team(client, admin, name="Routed")
    named = await new_team(client, admin, name="Named by a rule")
    target = await new_team(client, admin, name="Overflow target")
    spare = await new_team(client, admin, name="Spare")
    await new_team(
        client, admin, name="Source", overflow_team_id=target["id"], overflow_after_seconds=60
    )

    chat = await start_chat(client)
    await run_jobs()
    await db.execute(
        "UPDATE conversations SET team_id = $1 WHERE id = $2",
        routed["id"],
        chat["conversation_id"],
    )
    rule_id = await db.fetchval(
        "INSERT INTO routing_rules (name, position, conditions, actions) "
        "VALUES ('to named', 1, $1, $2) RETURNING id",
        {"match": "all", "conditions": []},
        [{"type": "team", "team_id": named["id"]}],
    )

    status, body = await call(client, "DELETE", f"/v1/admin/teams/{routed['id']}", admin)
    assert (status, error_code(body)) == (409, "team_in_use")
    assert body["error"]["details"]["conversations"] is True
    status, body = await call(client, "DELETE", f"/v1/admin/teams/{named['id']}", admin)
    assert (status, error_code(body)) == (409, "team_in_use")
    assert body["error"]["details"]["rule_ids"] == [rule_id]
    status, body = await call(client, "DELETE", f"/v1/admin/teams/{target['id']}", admin)
    assert (status, error_code(body)) == (409, "team_in_use")
    assert len(body["error"]["details"]["overflow_from"]) == 1
    assert await db.fetchval("SELECT count(*) FROM teams") == 6

    assert (await call(client, "DELETE", f"/v1/admin/teams/{spare['id']}", admin))[0] == 204
    status, body = await call(client, "DELETE", f"/v1/admin/teams/{spare['id']}", admin)
    assert (status, error_code(body)) == (404, "team_not_found")


async def test_membership_is_replaced_whole(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    team = await new_team(client, admin, name="Night")
    path = f"/v1/admin/teams/{team['id']}/members"
    first, _ = await make_agent(db)
    second, _ = await make_agent(db)

    status, body = await call(client, "PUT", path, admin, {"agent_ids": [second, first, first]})
    assert (status, body["agent_ids"]) == (200, sorted([first, second]))
    status, body = await call(client, "PUT", path, admin, {"agent_ids": [second]})
    assert (status, body["agent_ids"]) == (200, [second])
    # an unknown agent refuses the whole change
    status, body = await call(client, "PUT", path, admin, {"agent_ids": [first, 424242]})
    assert (status, error_code(body)) == (422, "unknown_agent")
    assert body["error"]["details"]["ids"] == [424242]
    status, body = await call(client, "GET", f"/v1/admin/teams/{team['id']}", admin)
    assert body["agent_ids"] == [second]
    # the agents' own view agrees
    status, body = await call(client, "GET", f"/v1/admin/agents/{second}", admin)
    assert team["id"] in body["team_ids"]
    status, body = await call(client, "PUT", path, admin, {"agent_ids": None})
    assert (status, error_code(body)) == (422, "validation_error")
    status, body = await call(client, "PUT", path, admin, {"agent_ids": []})
    assert (status, body["agent_ids"]) == (200, [])
    status, body = await call(
        client, "PUT", "/v1/admin/teams/999999/members", admin, {"agent_ids": []}
    )
    assert (status, error_code(body)) == (404, "team_not_found")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "T", "skills": ["no spaces please"]}, "invalid_skill"),
        ({"name": "T", "skills": ["中文"]}, "invalid_skill"),
        ({"name": "T", "skills": ["x" * 51]}, "invalid_skill"),
        ({"name": "T", "skills": [f"s{n}" for n in range(51)]}, "invalid_skill"),
        ({"name": "T", "skills": None}, "validation_error"),
        ({"name": None}, "validation_error"),
        ({"name": "   "}, "validation_error"),
        ({"name": "T", "strategy": "random"}, "validation_error"),
        ({"name": "T", "strategy": None}, "validation_error"),
        ({"name": "T", "sticky_wait_seconds": 86_401}, "validation_error"),
        ({"name": "T", "sticky_wait_seconds": -1}, "validation_error"),
        ({"name": "T", "sticky_last_agent": None}, "validation_error"),
        ({"name": "T", "is_default": None}, "validation_error"),
        (
            {"name": "T", "overflow_team_id": 1, "overflow_after_seconds": 604_801},
            "validation_error",
        ),
        ({"name": "T", "colour": "red"}, "validation_error"),
    ],
)
async def test_bad_teams_are_refused_with_a_code(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], body: dict[str, Any], expected: str
) -> None:
    status, answer = await call(client, "POST", "/v1/admin/teams", admin, body)
    assert (status, error_code(answer)) == (422, expected)
    assert await db.fetchval("SELECT count(*) FROM teams") == 1


# ---- agents ----


async def test_a_new_agent_gets_a_token_once_and_it_works(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    team = await new_team(client, admin, name="Email desk")
    status, created = await call(
        client,
        "POST",
        "/v1/admin/agents",
        admin,
        {
            "name": "Li Wei",
            "email": " Li.Wei@Example.com ",
            "role": "agent",
            "capacity": 4,
            "channel_capacity": {"email": 2, "sms": None},
            "skills": ["Mandarin", "billing"],
            "team_ids": [team["id"]],
        },
    )
    assert status == 201, created
    token = created.pop("token")
    assert token.startswith("cc_")
    assert created["email"] == "li.wei@example.com"
    assert (created["capacity"], created["channel_capacity"]) == (4, {"email": 2})
    assert (created["skills"], created["team_ids"]) == (["billing", "mandarin"], [team["id"]])
    assert (created["presence"], created["load"]) == ("offline", 0)
    assert "token_hash" not in created

    # the token authenticates, and is never shown again
    assert (await client.get("/v1/inbox", headers=bearer(token))).status == 200
    for path in ("/v1/admin/agents", f"/v1/admin/agents/{created['id']}"):
        response = await client.get(path, headers=admin)
        text = await response.text()
        assert response.status == 200
        assert token not in text and "token" not in text
    stored = await db.fetchval("SELECT token_hash FROM agents WHERE id = $1", created["id"])
    assert token.encode() not in bytes(stored)

    status, body = await call(
        client,
        "POST",
        "/v1/admin/agents",
        admin,
        {"name": "Again", "email": "LI.WEI@example.com", "role": "agent"},
    )
    assert (status, error_code(body)) == (409, "agent_exists")


async def test_an_agent_without_team_ids_joins_the_default_team(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    status, created = await call(
        client,
        "POST",
        "/v1/admin/agents",
        admin,
        {"name": "N", "email": "n@example.com", "role": "supervisor"},
    )
    assert status == 201
    assert created["team_ids"] == [await general_id(db)]
    assert (created["capacity"], created["channel_capacity"], created["skills"]) == (5, {}, [])
    status, created = await call(
        client,
        "POST",
        "/v1/admin/agents",
        admin,
        {"name": "M", "email": "m@example.com", "role": "agent", "team_ids": []},
    )
    assert (status, created["team_ids"]) == (201, [])


async def test_agents_are_listed_a_page_at_a_time(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    for n in range(4):
        await make_agent(db, name=f"Agent {n}")
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await call(client, "GET", f"/v1/admin/agents{query}", admin)
        assert status == 200 and len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    all_ids = [r["id"] for r in await db.fetch("SELECT id FROM agents ORDER BY id")]
    assert (seen, pages) == (all_ids, 3)  # five agents, the admin included
    for query, status_code in (("?limit=0", 422), ("?limit=201", 422), ("?cursor=abc", 400)):
        status, _ = await call(client, "GET", f"/v1/admin/agents{query}", admin)
        assert status == status_code


async def test_an_admin_changes_an_agent(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    team = await new_team(client, admin, name="Chat")
    agent_id, _ = await make_agent(db, capacity=3)
    path = f"/v1/admin/agents/{agent_id}"

    status, body = await call(
        client,
        "PATCH",
        path,
        admin,
        {"channel_capacity": {"web": 1, "email": 3}, "skills": ["VIP"], "team_ids": [team["id"]]},
    )
    assert status == 200, body
    assert (body["channel_capacity"], body["skills"], body["team_ids"]) == (
        {"web": 1, "email": 3},
        ["vip"],
        [team["id"]],
    )
    # an object replaces the whole map; a null key removes that channel's limit
    status, body = await call(
        client, "PATCH", path, admin, {"channel_capacity": {"email": None, "sms": 2}}
    )
    assert (status, body["channel_capacity"]) == (200, {"sms": 2})
    status, body = await call(
        client, "PATCH", path, admin, {"name": "Renamed", "role": "supervisor"}
    )
    assert (status, body["name"], body["role"], body["skills"]) == (
        200,
        "Renamed",
        "supervisor",
        ["vip"],
    )

    refusals = [
        ({"capacity": None}, "validation_error"),
        ({"capacity": 101}, "validation_error"),
        ({"channel_capacity": None}, "validation_error"),
        ({"channel_capacity": {"fax": 1}}, "validation_error"),
        ({"channel_capacity": {"web": -1}}, "validation_error"),
        ({"skills": ["bad skill"]}, "invalid_skill"),
        ({"team_ids": [team["id"], 777777]}, "unknown_team"),
        ({"presence": "online"}, "validation_error"),
        ({"email": "other@example.com"}, "validation_error"),
        ({"role": "owner"}, "validation_error"),
    ]
    before = dict(await db.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id))
    for change, expected in refusals:
        status, answer = await call(client, "PATCH", path, admin, change)
        assert (status, error_code(answer)) == (422, expected), change
    assert dict(await db.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)) == before
    members = await db.fetch("SELECT team_id FROM team_members WHERE agent_id = $1", agent_id)
    assert [r["team_id"] for r in members] == [team["id"]]

    status, answer = await call(client, "PATCH", "/v1/admin/agents/999999", admin, {"capacity": 1})
    assert (status, error_code(answer)) == (404, "agent_not_found")


async def test_the_last_admin_cannot_step_down(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    admin_id = await db.fetchval("SELECT id FROM agents WHERE role = 'admin'")
    path = f"/v1/admin/agents/{admin_id}"
    status, body = await call(client, "PATCH", path, admin, {"role": "supervisor"})
    assert (status, error_code(body)) == (409, "last_admin")
    await make_agent(db, role=Role.ADMIN)
    status, body = await call(client, "PATCH", path, admin, {"role": "supervisor"})
    assert (status, body["role"]) == (200, "supervisor")


async def test_a_raised_capacity_takes_waiting_work_at_once(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], run_jobs: RunJobs
) -> None:
    agent_id, _ = await make_agent(db, capacity=1)
    chats = [await start_chat(client, f"question {n}") for n in range(2)]
    await run_jobs()

    async def mine() -> list[int]:
        rows = await db.fetch(
            "SELECT id FROM conversations WHERE assignee_id = $1 ORDER BY id", agent_id
        )
        return [r["id"] for r in rows]

    assert await mine() == [chats[0]["conversation_id"]]
    status, body = await call(
        client, "PATCH", f"/v1/admin/agents/{agent_id}", admin, {"capacity": 2}
    )
    assert (status, body["capacity"], body["load"]) == (200, 2, 1)
    await run_jobs()
    assert await mine() == [c["conversation_id"] for c in chats]


async def test_joining_a_team_takes_its_waiting_work_at_once(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], run_jobs: RunJobs
) -> None:
    elsewhere = await new_team(client, admin, name="Elsewhere")
    agent_id, _ = await make_agent(db, team="Elsewhere", capacity=2)
    chat = await start_chat(client)
    await run_jobs()
    assert await db.fetchval(
        "SELECT waiting_since IS NOT NULL FROM conversations WHERE id = $1", chat["conversation_id"]
    )
    status, _ = await call(
        client,
        "PUT",
        f"/v1/admin/teams/{await general_id(db)}/members",
        admin,
        {"agent_ids": [agent_id]},
    )
    assert status == 200
    await run_jobs()
    assert (
        await db.fetchval(
            "SELECT assignee_id FROM conversations WHERE id = $1", chat["conversation_id"]
        )
        == agent_id
    )
    assert elsewhere["id"] != await general_id(db)
