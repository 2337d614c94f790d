"""The issue's promise, over the real API and a real worker: an admin creates a rule, tests it
with the dry run, and the next matching message follows it, with the decision explained."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from arq.worker import Worker

from contactcenter.domain.enums import Role
from tests.helpers import bearer, eventually, make_agent, new_client_id, start_chat


async def created(response: Any) -> dict[str, Any]:
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_a_rule_made_through_the_api_routes_the_next_matching_message(
    client: TestClient[Any, Any], db: asyncpg.Pool, running_worker: Worker
) -> None:
    _, admin_token = await make_agent(db, name="Admin", role=Role.ADMIN, capacity=0, online=False)
    admin = bearer(admin_token)
    await make_agent(db, name="Generalist", capacity=5)
    care = await created(await client.post("/v1/admin/teams", json={"name": "Care"}, headers=admin))
    senior = await created(
        await client.post(
            "/v1/admin/agents",
            json={
                "name": "Senior",
                "email": "senior@agents.example",
                "role": "agent",
                "capacity": 3,
                "team_ids": [care["id"]],
            },
            headers=admin,
        )
    )
    senior_token = senior["token"]
    online = await client.put(
        "/v1/agents/me/presence", json={"status": "online"}, headers=bearer(senior_token)
    )
    assert online.status == 200

    rule = await created(
        await client.post(
            "/v1/admin/routing-rules",
            json={
                "name": "Complaints to Care",
                "conditions": {
                    "match": "any",
                    "conditions": [{"type": "text", "keywords": ["complaint", "投诉"]}],
                },
                "actions": [
                    {"type": "team", "team_id": care["id"]},
                    {"type": "priority", "value": 5},
                    {"type": "complaint"},
                    {"type": "tags", "add": ["complaint"]},
                    {"type": "auto_reply", "text": "We are sorry, $name. A senior agent is on it."},
                ],
            },
            headers=admin,
        )
    )

    dry = await client.post(
        "/v1/admin/routing-rules/test",
        json={"message": {"channel": "web", "text": "我要投诉你们的服务"}},
        headers=admin,
    )
    assert dry.status == 200, await dry.text()
    verdict = await dry.json()
    assert [m["id"] for m in verdict["matched"]] == [rule["id"]]
    assert verdict["route"]["team_id"] == care["id"]
    assert verdict["route"]["priority"] == 5
    assert verdict["facts"]["language"] == "zh"
    # the dry run touched nothing
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0

    ordinary = await start_chat(client, "Where is my parcel?")
    complaint = await start_chat(client, "我要投诉你们的服务", name="Wang Fang")

    async def routed(conversation_id: int) -> asyncpg.Record | None:
        row = await db.fetchrow(
            "SELECT team_id, assignee_id, priority, is_complaint, tags FROM conversations"
            " WHERE id = $1 AND assignee_id IS NOT NULL",
            conversation_id,
        )
        return row

    row = await eventually(lambda: routed(complaint["conversation_id"]))
    assert row["team_id"] == care["id"]
    assert row["assignee_id"] == senior["id"]
    assert (row["priority"], row["is_complaint"], row["tags"]) == (5, True, ["complaint"])
    other = await eventually(lambda: routed(ordinary["conversation_id"]))
    assert other["team_id"] != care["id"] and other["priority"] == 0

    # the customer got the rule's auto-reply, once, with their name
    visitor = bearer(complaint["visitor_token"])
    history_url = f"/v1/web/conversations/{complaint['conversation_id']}/messages"

    async def auto_replies() -> list[dict[str, Any]]:
        history = await (await client.get(history_url, headers=visitor)).json()
        return [m for m in history["items"] if m["direction"] == "outbound"]

    replies = await eventually(auto_replies)
    assert [r["text"] for r in replies] == ["We are sorry, Wang Fang. A senior agent is on it."]
    more = await client.post(
        history_url,
        json={"text": "还有一个问题", "client_message_id": new_client_id()},
        headers=visitor,
    )
    assert more.status == 201
    assert len(await auto_replies()) == 1

    # the agent sees why it came to them
    detail = await client.get(
        f"/v1/conversations/{complaint['conversation_id']}", headers=bearer(senior_token)
    )
    assert detail.status == 200
    why = (await detail.json())["routing"]
    assert why["rules"] == [{"id": rule["id"], "name": "Complaints to Care"}]
    assert why["team"] == {"id": care["id"], "name": "Care", "source": "rule"}
    assert why["tier"]["rank"] == 4
    assert why["assignment"]["agent_id"] == senior["id"]
    assert why["assignment"]["reason"] == "least_loaded"


async def test_a_changed_rule_is_followed_at_once_by_a_worker_that_knew_the_old_one(
    client: TestClient[Any, Any], db: asyncpg.Pool, run_jobs: Any
) -> None:
    _, admin_token = await make_agent(db, name="Admin", role=Role.ADMIN, capacity=0, online=False)
    admin = bearer(admin_token)
    teams = [
        await created(await client.post("/v1/admin/teams", json={"name": n}, headers=admin))
        for n in ("Billing", "Care")
    ]
    rule = await created(
        await client.post(
            "/v1/admin/routing-rules",
            json={
                "name": "Invoices",
                "conditions": {"match": "all", "conditions": [{"type": "text", "regex": "发票"}]},
                "actions": [{"type": "team", "team_id": teams[0]["id"]}],
            },
            headers=admin,
        )
    )

    async def team_of(text: str) -> int:
        chat = await start_chat(client, text)
        await run_jobs()
        value = await db.fetchval(
            "SELECT team_id FROM conversations WHERE id = $1", chat["conversation_id"]
        )
        return int(value)

    assert await team_of("我要开发票") == teams[0]["id"]
    changed = await client.patch(
        f"/v1/admin/routing-rules/{rule['id']}",
        json={"actions": [{"type": "team", "team_id": teams[1]["id"]}]},
        headers=admin,
    )
    assert changed.status == 200
    assert await team_of("发票还没收到") == teams[1]["id"]
    disabled = await client.patch(
        f"/v1/admin/routing-rules/{rule['id']}", json={"enabled": False}, headers=admin
    )
    assert disabled.status == 200
    default = await db.fetchval("SELECT id FROM teams WHERE is_default")
    assert await team_of("发票") == default
