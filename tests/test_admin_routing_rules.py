"""/v1/admin/routing-rules over the real app: CRUD in order, roles, refusals that write
nothing, the evaluation the route job calls, and the dry run that touches nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from contactcenter.domain.enums import Role
from contactcenter.domain.rules import RoutingFacts
from contactcenter.services import routing_rules as service
from contactcenter.store import routing_rules as store
from tests.helpers import bearer, make_agent, table_digests

URL = "/v1/admin/routing-rules"
# a Tuesday, 10:00 in UTC
TUESDAY_10 = "2025-03-04T10:00:00+00:00"
TUESDAY_20 = "2025-03-04T20:00:00+00:00"
WEEKDAYS_9_TO_5 = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}

Client = TestClient[Any, Any]


async def admin(db: asyncpg.Pool) -> dict[str, str]:
    _, token = await make_agent(db, role=Role.ADMIN)
    return bearer(token)


async def team(db: asyncpg.Pool, name: str) -> int:
    return int(await db.fetchval("INSERT INTO teams (name) VALUES ($1) RETURNING id", name))


async def sla_policy(db: asyncpg.Pool, name: str = "gold") -> int:
    return int(
        await db.fetchval(
            "INSERT INTO sla_policies (name, resolution_seconds) VALUES ($1, 3600) RETURNING id",
            name,
        )
    )


async def calendar(db: asyncpg.Pool, name: str = "office", *, default: bool = False) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO business_hours (name, timezone, weekly, is_default)"
            " VALUES ($1, 'UTC', $2, $3) RETURNING id",
            name,
            WEEKDAYS_9_TO_5,
            default,
        )
    )


def a_rule(name: str = "rule", *actions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "conditions": {"match": "all", "conditions": []},
        "actions": list(actions) or [{"type": "priority", "value": 1}],
        **fields,
    }


async def create(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(URL, json=body, headers=headers)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def order(client: Client, headers: dict[str, str]) -> list[tuple[str, int]]:
    response = await client.get(URL, headers=headers)
    assert response.status == 200
    return [(r["name"], r["position"]) for r in (await response.json())["items"]]


async def error_of(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status == status, await response.text()
    error: dict[str, Any] = (await response.json())["error"]
    return error


async def test_an_admin_creates_reads_changes_and_deletes_a_rule(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    vip_team = await team(db, "VIP desk")
    policy = await sla_policy(db)
    body = {
        "name": "Platinum refunds",
        "conditions": {
            "match": "all",
            "conditions": [
                {"type": "tier", "in": [1]},
                {"type": "text", "keywords": ["refund", "退款"]},
                {"type": "language", "in": ["zh-CN", "en"]},
                {"type": "contact_tag", "any": [" VIP "]},
            ],
        },
        "actions": [
            {"type": "team", "team_id": vip_team},
            {"type": "priority", "value": 8},
            {"type": "sla_policy", "sla_policy_id": policy},
            {"type": "tags", "add": ["Refund"]},
            {"type": "skills", "require": ["Billing"]},
            {"type": "account_manager"},
            {"type": "complaint"},
            {"type": "auto_reply", "text": "Hi $name, a specialist will write to you."},
            {"type": "stop"},
        ],
    }
    created = await create(client, headers, body)
    assert (created["name"], created["position"], created["enabled"]) == (
        "Platinum refunds",
        1,
        True,
    )
    # stored as it is compared: languages by primary subtag, tags and skills normalised
    conditions = created["conditions"]["conditions"]
    assert conditions[2] == {"type": "language", "in": ["zh", "en"], "not": False}
    assert conditions[3]["any"] == ["vip"]
    assert created["actions"][3:5] == [
        {"type": "tags", "add": ["refund"]},
        {"type": "skills", "require": ["billing"]},
    ]

    fetched = await client.get(f"{URL}/{created['id']}", headers=headers)
    assert fetched.status == 200
    assert await fetched.json() == created

    changed = await client.patch(
        f"{URL}/{created['id']}", json={"name": "Top refunds", "enabled": False}, headers=headers
    )
    assert changed.status == 200
    after = await changed.json()
    assert (after["name"], after["enabled"], after["conditions"]) == (
        "Top refunds",
        False,
        created["conditions"],
    )

    new_actions = await client.patch(
        f"{URL}/{created['id']}",
        json={"actions": [{"type": "team", "team_id": vip_team}]},
        headers=headers,
    )
    assert (await new_actions.json())["actions"] == [{"type": "team", "team_id": vip_team}]

    deleted = await client.delete(f"{URL}/{created['id']}", headers=headers)
    assert deleted.status == 204
    for method in ("get", "patch", "delete"):
        gone = await getattr(client, method)(
            f"{URL}/{created['id']}", headers=headers, **({"json": {}} if method == "patch" else {})
        )
        assert (await error_of(gone, 404))["code"] == "rule_not_found"


async def test_supervisors_read_and_test_rules_agents_do_not(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    _, supervisor_token = await make_agent(db, role=Role.SUPERVISOR)
    _, agent_token = await make_agent(db)
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    rule = await create(client, headers, a_rule())
    one = f"{URL}/{rule['id']}"
    sample = {"message": {"channel": "web", "text": "hello"}}

    assert (await client.get(URL, headers=supervisor)).status == 200
    assert (await client.get(one, headers=supervisor)).status == 200
    assert (await client.post(f"{URL}/test", json=sample, headers=supervisor)).status == 200
    writes = [
        client.post(URL, json=a_rule("x"), headers=supervisor),
        client.patch(one, json={"name": "x"}, headers=supervisor),
        client.delete(one, headers=supervisor),
        client.put(f"{URL}/order", json={"ids": [rule["id"]]}, headers=supervisor),
    ]
    for response in await asyncio.gather(*writes):
        assert (await error_of(response, 403))["code"] == "forbidden"

    everything = [
        client.get(URL, headers=agent),
        client.get(one, headers=agent),
        client.post(f"{URL}/test", json=sample, headers=agent),
        client.post(URL, json=a_rule("x"), headers=agent),
        client.patch(one, json={"name": "x"}, headers=agent),
        client.delete(one, headers=agent),
    ]
    for response in await asyncio.gather(*everything):
        assert (await error_of(response, 403))["code"] == "forbidden"
    assert (await client.get(URL)).status == 401
    assert await db.fetchval("SELECT name FROM routing_rules") == "rule"


async def test_positions_stay_dense_through_inserts_moves_deletes_and_reorders(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    a = await create(client, headers, a_rule("a"))
    b = await create(client, headers, a_rule("b"))
    first = await create(client, headers, a_rule("first", position=1))
    middle = await create(client, headers, a_rule("middle", position=3))
    last = await create(client, headers, a_rule("last", position=99))
    assert await order(client, headers) == [
        ("first", 1),
        ("a", 2),
        ("middle", 3),
        ("b", 4),
        ("last", 5),
    ]

    moved = await client.patch(f"{URL}/{last['id']}", json={"position": 2}, headers=headers)
    assert (await moved.json())["position"] == 2
    assert [n for n, _ in await order(client, headers)] == ["first", "last", "a", "middle", "b"]
    moved = await client.patch(f"{URL}/{first['id']}", json={"position": 50}, headers=headers)
    assert (await moved.json())["position"] == 5
    assert await order(client, headers) == [
        ("last", 1),
        ("a", 2),
        ("middle", 3),
        ("b", 4),
        ("first", 5),
    ]

    assert (await client.delete(f"{URL}/{middle['id']}", headers=headers)).status == 204
    assert await order(client, headers) == [("last", 1), ("a", 2), ("b", 3), ("first", 4)]

    wanted = [b["id"], first["id"], a["id"], last["id"]]
    reordered = await client.put(f"{URL}/order", json={"ids": wanted}, headers=headers)
    assert reordered.status == 200
    items = (await reordered.json())["items"]
    assert [(r["id"], r["position"]) for r in items] == [(i, p) for p, i in enumerate(wanted, 1)]

    for ids, problem in [
        (wanted[:3], "missing"),
        ([*wanted, wanted[0]], "repeated"),
        ([*wanted[:3], 999_999], "unknown"),
    ]:
        response = await client.put(f"{URL}/order", json={"ids": ids}, headers=headers)
        error = await error_of(response)
        assert error["code"] == "order_mismatch" and error["details"][problem], ids
    assert [r["id"] for r in items] == [
        int(i)
        for i in await db.fetchval("SELECT array_agg(id ORDER BY position) FROM routing_rules")
    ]


async def test_concurrent_creates_get_distinct_dense_positions(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    # half at the top, half at the end (no position)
    bodies = [a_rule(f"r{i}", **({"position": 1} if i % 2 else {})) for i in range(12)]
    responses = await asyncio.gather(*(client.post(URL, json=b, headers=headers) for b in bodies))
    assert [r.status for r in responses] == [201] * 12
    positions = [p for _, p in await order(client, headers)]
    assert positions == list(range(1, 13))


BAD_SHAPES = [
    pytest.param({"conditions": {}, "actions": [{"type": "stop"}]}, id="no-name"),
    pytest.param({**a_rule(), "name": None}, id="null-name"),
    pytest.param({**a_rule(), "name": "  "}, id="blank-name"),
    pytest.param({**a_rule(), "name": "two\nlines"}, id="name-with-newline"),
    pytest.param({**a_rule(), "enabled": None}, id="null-enabled"),
    pytest.param({**a_rule(), "position": 0}, id="position-zero"),
    pytest.param({**a_rule(), "position": None}, id="null-position"),
    pytest.param({**a_rule(), "surprise": 1}, id="extra-field"),
    pytest.param({**a_rule(), "actions": []}, id="no-actions"),
    pytest.param({**a_rule(), "actions": None}, id="null-actions"),
    pytest.param({**a_rule(), "conditions": None}, id="null-conditions"),
    pytest.param(a_rule("r", {"type": "team", "team_id": None}), id="null-team"),
    pytest.param(a_rule("r", {"type": "team", "team_id": "1"}), id="team-as-text"),
    pytest.param(a_rule("r", {"type": "priority", "value": 11}), id="priority-too-high"),
    pytest.param(a_rule("r", {"type": "priority", "value": True}), id="priority-bool"),
    pytest.param(a_rule("r", {"type": "teleport"}), id="unknown-action"),
    pytest.param(a_rule("r", {"type": "stop", "now": True}), id="extra-action-field"),
    pytest.param(a_rule("r", {"type": "skills", "require": ["Not A Skill"]}), id="bad-skill"),
    pytest.param(a_rule("r", {"type": "tags", "add": ["x" * 51]}), id="long-tag"),
    pytest.param(a_rule("r", {"type": "auto_reply", "text": ""}), id="empty-auto-reply"),
    pytest.param(a_rule("r", {"type": "auto_reply", "text": "x" * 2001}), id="long-auto-reply"),
    pytest.param({**a_rule(), "conditions": {"match": "most"}}, id="bad-match"),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "weather"}]}}, id="unknown-condition"
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "channel", "in": ["fax"]}]}},
        id="unknown-channel",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "channel", "in": []}]}},
        id="empty-in",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "tier", "in": [0]}]}}, id="tier-0"
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "channel", "in": ["web"], "not": 1}]}},
        id="not-not-bool",
    ),
    pytest.param(
        {
            **a_rule(),
            "conditions": {"conditions": [{"type": "text", "keywords": ["a"], "regex": "b"}]},
        },
        id="keywords-and-regex",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "text"}]}}, id="text-without-either"
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "text", "keywords": ["k"] * 51}]}},
        id="too-many-keywords",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "text", "regex": "a" * 501}]}},
        id="long-regex",
    ),
    pytest.param(
        {
            **a_rule(),
            "conditions": {"conditions": [{"type": "contact_tag", "any": ["a"], "all": ["b"]}]},
        },
        id="tags-any-and-all",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "contact_field", "field": "x"}]}},
        id="field-without-test",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "language", "in": ["english!"]}]}},
        id="bad-language",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "business_hours", "inside": None}]}},
        id="null-inside",
    ),
    pytest.param(
        {**a_rule(), "conditions": {"conditions": [{"type": "mailbox", "in": [True]}]}},
        id="mailbox-bool",
    ),
]


@pytest.mark.parametrize("body", BAD_SHAPES)
async def test_a_badly_shaped_rule_is_refused_and_nothing_is_written(
    client: Client, db: asyncpg.Pool, body: dict[str, Any]
) -> None:
    headers = await admin(db)
    error = await error_of(await client.post(URL, json=body, headers=headers))
    assert error["code"] == "validation_error"
    assert error["details"]["fields"]
    assert await db.fetchval("SELECT count(*) FROM routing_rules") == 0


async def test_bad_regexes_and_unknown_ids_are_refused_with_where(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    existing = await create(client, headers, a_rule("keep"))

    def with_conditions(*conditions: dict[str, Any]) -> dict[str, Any]:
        return {**a_rule(), "conditions": {"match": "any", "conditions": list(conditions)}}

    cases = [
        (
            with_conditions({"type": "channel", "in": ["web"]}, {"type": "text", "regex": "(a"}),
            "invalid_regex",
            "conditions[1].regex",
        ),
        (
            with_conditions({"type": "subject", "regex": "(?<=x)y"}),
            "invalid_regex",
            "conditions[0].regex",
        ),
        (a_rule("r", {"type": "team", "team_id": 424242}), "unknown_team", "actions[0].team_id"),
        (
            a_rule("r", {"type": "priority", "value": 1}, {"type": "priority", "value": 2}),
            "duplicate_action",
            "actions[1]",
        ),
        (
            a_rule("r", {"type": "stop"}, {"type": "sla_policy", "sla_policy_id": 7}),
            "unknown_sla_policy",
            "actions[1].sla_policy_id",
        ),
        (with_conditions({"type": "mailbox", "in": [5]}), "unknown_mailbox", "conditions[0].in[0]"),
        (
            with_conditions({"type": "sms_number", "in": [6]}),
            "unknown_sms_number",
            "conditions[0].in[0]",
        ),
        (
            with_conditions({"type": "business_hours", "inside": True, "calendar_id": 8}),
            "unknown_business_hours",
            "conditions[0].calendar_id",
        ),
        (
            with_conditions({"type": "business_hours", "inside": True}),
            "no_default_business_hours",
            "conditions[0]",
        ),
    ]
    for body, code, path in cases:
        error = await error_of(await client.post(URL, json=body, headers=headers))
        assert (error["code"], error["details"]["path"]) == (code, path), body
        if code == "invalid_regex":
            assert error["details"]["reason"]
        # the same change to an existing rule is refused, and the rule stays as it was
        patch = {"conditions": body["conditions"], "actions": body["actions"]}
        error = await error_of(
            await client.patch(f"{URL}/{existing['id']}", json=patch, headers=headers)
        )
        assert error["code"] == code
    rows = await db.fetch("SELECT id, conditions, actions, position FROM routing_rules")
    assert [dict(r) for r in rows] == [
        {
            "id": existing["id"],
            "conditions": existing["conditions"],
            "actions": existing["actions"],
            "position": 1,
        }
    ]


async def test_a_patch_refuses_null_and_keeps_the_rule(client: Client, db: asyncpg.Pool) -> None:
    headers = await admin(db)
    rule = await create(client, headers, a_rule("keep"))
    for body in ({"name": None}, {"conditions": None}, {"actions": None}, {"enabled": None}):
        response = await client.patch(f"{URL}/{rule['id']}", json=body, headers=headers)
        assert (await error_of(response))["code"] == "validation_error"
    fetched = await (await client.get(f"{URL}/{rule['id']}", headers=headers)).json()
    assert fetched == rule


async def test_rules_name_what_exists_and_referencing_finds_them(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    desk, other = await team(db, "desk"), await team(db, "other")
    policy = await sla_policy(db)
    office = await calendar(db, "office", default=True)
    night = await calendar(db, "night")
    mailbox = await db.fetchval(
        "INSERT INTO mailboxes (name, address) VALUES ('m', 'm@example.com') RETURNING id"
    )
    number = await db.fetchval(
        "INSERT INTO sms_numbers (name, account_sid, auth_token, from_number)"
        " VALUES ('n', 'AC1', 'sealed', '+15550001') RETURNING id"
    )
    uses_desk = await create(
        client,
        headers,
        {
            **a_rule("desk", {"type": "team", "team_id": desk}),
            "conditions": {
                "match": "any",
                "conditions": [
                    {"type": "mailbox", "in": [mailbox]},
                    {"type": "business_hours", "inside": False, "calendar_id": night},
                ],
            },
        },
    )
    uses_default = await create(
        client,
        headers,
        {
            **a_rule("sla", {"type": "sla_policy", "sla_policy_id": policy}),
            "enabled": False,
            "conditions": {
                "conditions": [
                    {"type": "sms_number", "in": [number]},
                    {"type": "business_hours", "inside": True},
                ]
            },
        },
    )
    assert await store.referencing(db, team_id=desk) == [uses_desk["id"]]
    assert await store.referencing(db, team_id=other) == []
    assert await store.referencing(db, sla_policy_id=policy) == [uses_default["id"]]
    assert await store.referencing(db, mailbox_id=mailbox) == [uses_desk["id"]]
    assert await store.referencing(db, sms_number_id=number) == [uses_default["id"]]
    assert await store.referencing(db, business_hours_id=night) == [uses_desk["id"]]
    # the default calendar is named by every condition that names none
    assert await store.referencing(db, business_hours_id=office) == [uses_default["id"]]
    assert await store.referencing(db) == []


async def test_the_route_job_gets_the_enabled_rules_outcome_with_business_hours(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    day, night = await team(db, "day"), await team(db, "night")
    await calendar(db, default=True)
    inside = {"type": "business_hours", "inside": True}
    await create(
        client,
        headers,
        {**a_rule("day", {"type": "team", "team_id": day}), "conditions": {"conditions": [inside]}},
    )
    await create(client, headers, a_rule("night", {"type": "team", "team_id": night}))
    await create(
        client,
        headers,
        a_rule(
            "off", {"type": "priority", "value": 10}, {"type": "stop"}, enabled=False, position=1
        ),
    )

    def facts(at: str) -> RoutingFacts:
        return RoutingFacts(
            channel="web",
            mailbox_id=None,
            sms_number_id=None,
            tier=4,
            contact_tags=(),
            contact_fields={},
            subject=None,
            text="hello",
            language="en",
            at=datetime.fromisoformat(at),
        )

    async with db.acquire() as conn:
        by_day = await service.evaluate_for(conn, facts(TUESDAY_10))
        by_night = await service.evaluate_for(conn, facts(TUESDAY_20))
    assert (by_day.team_id, [m.name for m in by_day.matched]) == (day, ["day", "night"])
    assert (by_night.team_id, [m.name for m in by_night.matched]) == (night, ["night"])
    assert by_day.priority is None  # the disabled rule said nothing


def _refund_rule(team_id: int) -> dict[str, Any]:
    return {
        "name": "refunds",
        "conditions": {
            "match": "all",
            "conditions": [
                {"type": "text", "keywords": ["refund", "退款"]},
                {"type": "contact_tag", "any": ["vip"]},
            ],
        },
        "actions": [
            {"type": "team", "team_id": team_id},
            {"type": "priority", "value": 6},
            {"type": "auto_reply", "text": "Hi $name"},
        ],
    }


async def test_the_dry_run_tests_the_saved_rules(client: Client, db: asyncpg.Pool) -> None:
    headers = await admin(db)
    refunds = await team(db, "refunds")
    general = await db.fetchval("SELECT id FROM teams WHERE is_default")
    await calendar(db, default=True)
    saved = await create(client, headers, _refund_rule(refunds))
    hours = await create(
        client,
        headers,
        {
            **a_rule("after hours", {"type": "tags", "add": ["after-hours"]}),
            "conditions": {"conditions": [{"type": "business_hours", "inside": False}]},
        },
    )
    sample = {
        "message": {"channel": "email", "text": "我要退款", "at": TUESDAY_20},
        "contact": {"tier": 1, "tags": ["VIP"]},
    }
    response = await client.post(f"{URL}/test", json=sample, headers=headers)
    assert response.status == 200, await response.text()
    result = await response.json()
    assert result["matched"] == [
        {"id": saved["id"], "name": "refunds"},
        {"id": hours["id"], "name": "after hours"},
    ]
    assert result["outcome"] == {
        "team_id": refunds,
        "priority": 6,
        "sla_policy_id": None,
        "tags": ["after-hours"],
        "skills": [],
        "to_account_manager": False,
        "complaint": False,
        "auto_reply": "Hi $name",
        "auto_reply_rule_id": saved["id"],
    }
    route = {
        "team_id": refunds,
        "team_source": "rule",
        "priority": 6,
        "tier": 1,
        "sla_policy_id": None,
        "tags": ["after-hours"],
        "required_skills": [],
        "complaint": False,
        "to_account_manager": False,
    }
    assert {name: result["route"][name] for name in route} == route
    assert result["facts"] == {
        "at": TUESDAY_20,
        "tier": 1,
        "language": "zh",
        "inside_business_hours": {"default": False},
    }

    # no tag, in office hours: nothing matches and a new conversation goes to the default team
    sample = {"message": {"channel": "email", "text": "I want a refund please", "at": TUESDAY_10}}
    result = await (await client.post(f"{URL}/test", json=sample, headers=headers)).json()
    assert result["matched"] == []
    assert result["route"]["team_id"] == general
    assert result["route"]["team_source"] == "default"
    assert result["facts"]["language"] == "en"
    assert result["facts"]["inside_business_hours"] == {"default": True}


async def test_the_dry_run_tests_draft_rules_instead_and_reads_a_contact(
    client: Client, db: asyncpg.Pool
) -> None:
    headers = await admin(db)
    refunds = await team(db, "refunds")
    await create(client, headers, a_rule("saved", {"type": "complaint"}))
    contact = await db.fetchval(
        "INSERT INTO contacts (name, computed_tier, tier, tags, fields)"
        " VALUES ('Ann', 2, 2, '{vip}', '{\"plan\": \"Enterprise\"}') RETURNING id"
    )
    plan_rule = {
        **a_rule("plan", {"type": "skills", "require": ["enterprise"]}),
        "conditions": {
            "conditions": [{"type": "contact_field", "field": "plan", "in": ["enterprise"]}]
        },
    }
    body = {
        "message": {"channel": "web", "text": "Need a REFUND", "subject": "Order 5"},
        "contact_id": contact,
        "rules": [_refund_rule(refunds), {**plan_rule, "position": 1}],
    }
    response = await client.post(f"{URL}/test", json=body, headers=headers)
    assert response.status == 200, await response.text()
    result = await response.json()
    assert result["matched"] == [
        {"id": None, "index": 0, "name": "refunds"},
        {"id": None, "index": 1, "name": "plan"},
    ]
    outcome = result["outcome"]
    assert (outcome["team_id"], outcome["skills"], outcome["complaint"]) == (
        refunds,
        ["enterprise"],
        False,  # the saved rule was not tested
    )
    assert (outcome["auto_reply_rule_id"], outcome["auto_reply_rule_index"]) == (None, 0)
    assert result["route"]["tier"] == 2 and result["facts"]["tier"] == 2

    # drafts are checked as a save would check them, with where in the list
    bad = {
        **body,
        "rules": [
            plan_rule,
            {**plan_rule, "conditions": {"conditions": [{"type": "text", "regex": "[z-a]"}]}},
        ],
    }
    error = await error_of(await client.post(f"{URL}/test", json=bad, headers=headers))
    assert (error["code"], error["details"]["path"]) == (
        "invalid_regex",
        "rules[1].conditions[0].regex",
    )
    bad = {**body, "rules": [a_rule("r", {"type": "team", "team_id": 999})]}
    error = await error_of(await client.post(f"{URL}/test", json=bad, headers=headers))
    assert (error["code"], error["details"]["path"]) == (
        "unknown_team",
        "rules[0].actions[0].team_id",
    )

    # a contact that does not exist, or two contacts, or a message without an offset
    for wrong, code in [
        ({**body, "contact_id": 987654}, "unknown_contact"),
        ({**body, "contact": {"tier": 1}}, "validation_error"),
        (
            {**body, "message": {"channel": "web", "text": "x", "at": "2025-03-04T10:00:00"}},
            "validation_error",
        ),
        ({**body, "message": {"channel": "fax", "text": "x"}}, "validation_error"),
        ({**body, "message": {"channel": "web", "text": None}}, "validation_error"),
    ]:
        error = await error_of(await client.post(f"{URL}/test", json=wrong, headers=headers))
        assert error["code"] == code, wrong


async def _snapshot(
    db: asyncpg.Pool, redis: ArqRedis
) -> tuple[dict[str, tuple[int, str]], list[Any]]:
    keys = sorted(await redis.keys("*"))
    return await table_digests(db), [(key, await redis.type(key)) for key in keys]


async def test_the_dry_run_touches_nothing(
    client: Client, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    headers = await admin(db)
    refunds = await team(db, "refunds")
    await calendar(db, default=True)
    await create(client, headers, _refund_rule(refunds))
    contact = await db.fetchval(
        "INSERT INTO contacts (name, tags) VALUES ('Ann', '{vip}') RETURNING id"
    )
    before = await _snapshot(db, redis)
    assert len(before[0]) > 10  # every table, routing_rules and contacts among them
    bodies = [
        {"message": {"channel": "web", "text": "refund"}, "contact_id": contact},
        {"message": {"channel": "sms", "text": "退款"}, "contact": {"tags": ["vip"]}},
        {
            "message": {"channel": "email", "text": "refund", "subject": "s"},
            "rules": [_refund_rule(refunds)],
            "contact": {"tags": ["vip"]},
        },
    ]
    for body in bodies:
        response = await client.post(f"{URL}/test", json=body, headers=headers)
        assert response.status == 200, await response.text()
        assert (await response.json())["outcome"]["auto_reply"] == "Hi $name"
    assert await _snapshot(db, redis) == before
