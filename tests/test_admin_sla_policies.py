"""SLA policies: the pure policy (targets, warning, escalation), /v1/admin/sla-policies over the
real app (CRUD, roles, every refusal with its code and nothing written, what keeps a policy
from being deleted), and each tier's default policy."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.domain.enums import Role, SlaClock
from contactcenter.domain.errors import Invalid
from contactcenter.domain.sla_policies import (
    Escalation,
    SlaPolicy,
    apply_changes,
    draft,
    parse_escalation,
)
from contactcenter.store import sla_policies
from tests.helpers import bearer, call, error_code, make_agent, table_digests

Client = TestClient[Any, Any]
BASE = "/v1/admin/sla-policies"
TIERS = "/v1/admin/tiers"
WEEKDAYS_9_TO_5 = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
GOLD = {
    "name": "Gold",
    "description": "answer gold customers fast",
    "first_response_minutes": 15,
    "next_response_minutes": 60,
    "resolution_minutes": 480,
    "warning_percent": 80,
}
# every table a refused request could leave a row, or a changed row, in
WATCHED = ("sla_policies", "tiers", "routing_rules", "business_hours", "teams", "conversations")


# --- the pure policy ---------------------------------------------------------------------------


def test_the_warning_comes_at_its_share_of_each_target() -> None:
    policy = SlaPolicy(id=1, name="p", first_response=timedelta(minutes=60), warning_percent=80)
    assert policy.warning_after(timedelta(minutes=60)) == timedelta(minutes=48)
    assert policy.warning_after(timedelta(hours=8)) == timedelta(minutes=384)
    # rounded down to the microsecond, never past the target
    odd = SlaPolicy(id=1, name="p", resolution=timedelta(seconds=1), warning_percent=99)
    assert odd.warning_after(timedelta(microseconds=7)) == timedelta(microseconds=6)
    assert SlaPolicy(id=1, name="p").warning_after(timedelta(minutes=60)) is None


def test_a_draft_keeps_targets_as_timedeltas_and_says_which_calendar_counts() -> None:
    policy = draft({**GOLD, "next_response_minutes": None, "escalation": {"team_id": 3}})
    assert policy.targets() == {
        "first_response": timedelta(minutes=15),
        "resolution": timedelta(hours=8),
    }
    assert policy.clock == SlaClock.BUSINESS and policy.uses_default_calendar
    assert policy.escalation == Escalation(team_id=3)
    calendar = apply_changes(policy, {"clock": "calendar"})
    assert calendar.clock == SlaClock.CALENDAR and not calendar.uses_default_calendar
    # a change keeps what it does not name, and null removes a target
    changed = apply_changes(policy, {"first_response_minutes": None, "name": "  Silver "})
    assert changed.targets() == {"resolution": timedelta(hours=8)}
    assert changed.name == "Silver" and changed.warning_percent == 80


def test_an_escalation_is_checked_and_its_address_normalised() -> None:
    escalation = parse_escalation(
        {"raise_priority_to": 0, "team_id": 2, "notify_email": " Boss@Example.COM "}
    )
    assert escalation == Escalation(0, 2, "boss@example.com")
    assert escalation.as_json() == {
        "raise_priority_to": 0,
        "team_id": 2,
        "notify_email": "boss@example.com",
    }
    assert parse_escalation({"team_id": None}).as_json() == {}
    for raw, code in (
        ({"raise_priority_to": 11}, "invalid_priority"),
        ({"raise_priority_to": True}, "invalid_priority"),
        ({"raise_priority_to": 2.0}, "invalid_priority"),
        ({"team_id": "2"}, "invalid_escalation"),
        ({"team_id": 0}, "unknown_team"),
        ({"notify_email": "boss"}, "invalid_email"),
        ({"notify_email": "bo\u2028ss@example.com"}, "invalid_email"),
        ({"notify_email": 5}, "invalid_email"),
        ({"page": "boss"}, "invalid_escalation"),
    ):
        with pytest.raises(Invalid) as refused:
            parse_escalation(raw)
        assert refused.value.code == code, raw


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"name": "x"}, "no_target"),
        ({"name": "x", "resolution_minutes": 0}, "invalid_target"),
        ({"name": "x", "resolution_minutes": 90 * 24 * 60 + 1}, "invalid_target"),
        ({"name": "x", "resolution_minutes": 10**40}, "invalid_target"),
        ({"name": "x", "resolution_minutes": 5, "warning_percent": 100}, "invalid_warning_percent"),
        (
            {"name": "x", "resolution_minutes": 5, "clock": "calendar", "business_hours_id": 1},
            "conflicting_clock",
        ),
        ({"name": " ", "resolution_minutes": 5}, "validation_error"),
        ({"resolution_minutes": 5}, "validation_error"),
    ],
)
def test_a_bad_draft_is_refused_with_its_code(values: dict[str, Any], code: str) -> None:
    with pytest.raises(Invalid) as refused:
        draft(values)
    assert refused.value.code == code


# --- the admin API -----------------------------------------------------------------------------


async def create(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    status, created = await call(client, "POST", BASE, headers, body)
    assert status == 201, created
    return dict(created)


async def calendar(db: asyncpg.Pool, name: str = "office") -> int:
    return int(
        await db.fetchval(
            "INSERT INTO business_hours (name, timezone, weekly) VALUES ($1, 'UTC', $2)"
            " RETURNING id",
            name,
            WEEKDAYS_9_TO_5,
        )
    )


async def team(db: asyncpg.Pool, name: str = "Escalations") -> int:
    return int(await db.fetchval("INSERT INTO teams (name) VALUES ($1) RETURNING id", name))


def tiers_body(**policies: int | None) -> dict[str, Any]:
    """The seeded configuration; r1=5 sets tier 1's sla_policy_id (None: null), others left
    out."""
    tiers: list[dict[str, Any]] = [
        {"rank": 1, "label": "platinum", "share_percent": 1},
        {"rank": 2, "label": "gold", "share_percent": 4},
        {"rank": 3, "label": "silver", "share_percent": 15},
        {"rank": 4, "label": "bronze"},
    ]
    for key, policy_id in policies.items():
        tiers[int(key[1:]) - 1]["sla_policy_id"] = policy_id
    return {"method": "shares", "tiers": tiers}


async def tier_defaults(client: Client, headers: dict[str, str]) -> list[int | None]:
    status, view = await call(client, "GET", TIERS, headers)
    assert status == 200, view
    return [t["sla_policy_id"] for t in view["tiers"]]


async def test_an_admin_keeps_a_policy_and_the_engine_loads_it(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    office, escalations = await calendar(db), await team(db)
    body = {
        **GOLD,
        "business_hours_id": office,
        "escalation": {
            "raise_priority_to": 9,
            "team_id": escalations,
            "notify_email": "Supervisor@Example.com",
        },
    }
    created = await create(client, admin, body)
    policy_id = created["id"]
    assert {k: v for k, v in created.items() if k not in ("created_at", "updated_at")} == {
        "id": policy_id,
        "name": "Gold",
        "description": "answer gold customers fast",
        "first_response_minutes": 15,
        "next_response_minutes": 60,
        "resolution_minutes": 480,
        "clock": "business",
        "business_hours_id": office,
        "warning_percent": 80,
        "escalation": {
            "raise_priority_to": 9,
            "team_id": escalations,
            "notify_email": "supervisor@example.com",
        },
    }
    # stored in seconds
    stored = await db.fetchrow("SELECT * FROM sla_policies WHERE id = $1", policy_id)
    assert (
        stored["first_response_seconds"],
        stored["next_response_seconds"],
        stored["resolution_seconds"],
    ) == (900, 3600, 28800)

    loaded = await sla_policies.load(db, policy_id)
    assert loaded == SlaPolicy(
        id=policy_id,
        name="Gold",
        first_response=timedelta(minutes=15),
        next_response=timedelta(hours=1),
        resolution=timedelta(hours=8),
        clock=SlaClock.BUSINESS,
        business_hours_id=office,
        warning_percent=80,
        escalation=Escalation(9, escalations, "supervisor@example.com"),
        description="answer gold customers fast",
    )
    assert await sla_policies.load(db, policy_id + 1) is None

    # a change keeps what it does not name; null removes a target, the calendar, the
    # warning; an escalation is replaced whole
    status, changed = await call(
        client,
        "PATCH",
        f"{BASE}/{policy_id}",
        admin,
        {
            "next_response_minutes": None,
            "clock": "calendar",
            "business_hours_id": None,
            "warning_percent": None,
            "escalation": {"raise_priority_to": 10},
            "description": None,
        },
    )
    assert status == 200, changed
    assert (changed["first_response_minutes"], changed["next_response_minutes"]) == (15, None)
    assert (changed["clock"], changed["business_hours_id"], changed["warning_percent"]) == (
        "calendar",
        None,
        None,
    )
    assert changed["escalation"] == {"raise_priority_to": 10}
    assert changed["description"] is None and changed["name"] == "Gold"
    assert changed["updated_at"] >= created["updated_at"]

    status, listed = await call(client, "GET", BASE, admin)
    assert (status, listed) == (200, {"items": [changed], "next_cursor": None})
    status, read = await call(client, "GET", f"{BASE}/{policy_id}", admin)
    assert (status, read) == (200, changed)

    # a calendar and a team a policy names are not deleted from under it
    status, answer = await call(
        client, "PATCH", f"{BASE}/{policy_id}", admin, {"clock": "business"}
    )
    assert status == 200, answer
    status, answer = await call(
        client, "PATCH", f"{BASE}/{policy_id}", admin, {"business_hours_id": office}
    )
    assert status == 200, answer
    status, answer = await call(
        client, "PATCH", f"{BASE}/{policy_id}", admin, {"escalation": body["escalation"]}
    )
    assert status == 200, answer
    status, answer = await call(client, "DELETE", f"/v1/admin/business-hours/{office}", admin)
    assert (status, error_code(answer)) == (409, "business_hours_in_use")
    status, answer = await call(client, "DELETE", f"/v1/admin/teams/{escalations}", admin)
    assert (status, error_code(answer)) == (409, "team_in_use")

    assert (await call(client, "DELETE", f"{BASE}/{policy_id}", admin))[0] == 204
    for method in ("GET", "DELETE"):
        status, answer = await call(client, method, f"{BASE}/{policy_id}", admin)
        assert (status, error_code(answer)) == (404, "sla_policy_not_found")
    status, answer = await call(client, "PATCH", f"{BASE}/{policy_id}", admin, {"name": "x"})
    assert (status, error_code(answer)) == (404, "sla_policy_not_found")
    status, answer = await call(client, "GET", f"{BASE}/abc", admin)
    assert status == 404
    # with the policy gone, the calendar and the team can go
    assert (await call(client, "DELETE", f"/v1/admin/business-hours/{office}", admin))[0] == 204
    assert (await call(client, "DELETE", f"/v1/admin/teams/{escalations}", admin))[0] == 204


async def test_supervisors_read_policies_and_agents_do_not(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    _, supervisor_token = await make_agent(db, role=Role.SUPERVISOR)
    _, agent_token = await make_agent(db)
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    policy = await create(client, admin, GOLD)
    path = f"{BASE}/{policy['id']}"
    for read in (BASE, path):
        assert (await call(client, "GET", read, supervisor))[0] == 200
        status, body = await call(client, "GET", read, agent)
        assert (status, error_code(body)) == (403, "forbidden")
    for method, where, body in (
        ("POST", BASE, {**GOLD, "name": "Other"}),
        ("PATCH", path, {"name": "Renamed"}),
        ("DELETE", path, None),
    ):
        for who in (supervisor, agent):
            status, answer = await call(client, method, where, who, body)
            assert (status, error_code(answer)) == (403, "forbidden")
        status, answer = await call(client, method, where, {}, body)
        assert status == 401
    assert await db.fetchval("SELECT name FROM sla_policies") == "Gold"
    status, answer = await call(client, "PUT", TIERS, supervisor, tiers_body(r1=policy["id"]))
    assert (status, error_code(answer)) == (403, "forbidden")
    assert await tier_defaults(client, supervisor) == [None, None, None, None]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {
                "first_response_minutes": None,
                "next_response_minutes": None,
                "resolution_minutes": None,
            },
            "no_target",
        ),
        ({"business_hours_id": 999999}, "unknown_business_hours"),
        ({"business_hours_id": 0}, "validation_error"),
        ({"clock": "calendar", "business_hours_id": "OFFICE"}, "conflicting_clock"),
        ({"clock": "weekly"}, "validation_error"),
        ({"warning_percent": 0}, "invalid_warning_percent"),
        ({"warning_percent": 100}, "invalid_warning_percent"),
        ({"warning_percent": 10**30}, "invalid_warning_percent"),
        ({"warning_percent": 80.5}, "validation_error"),
        ({"escalation": {"team_id": 999999}}, "unknown_team"),
        ({"escalation": {"team_id": -1}}, "unknown_team"),
        ({"escalation": {"team_id": "7"}}, "invalid_escalation"),
        ({"escalation": {"notify_email": "supervisor"}}, "invalid_email"),
        ({"escalation": {"notify_email": "boss\u0000@example.com"}}, "invalid_email"),
        ({"escalation": {"notify_email": "\ud800@example.com"}}, "invalid_email"),
        ({"escalation": {"raise_priority_to": 11}}, "invalid_priority"),
        ({"escalation": {"raise_priority_to": -1}}, "invalid_priority"),
        ({"escalation": {"raise_priority_to": "9"}}, "invalid_priority"),
        ({"escalation": {"raise_priority_to": 10**30}}, "invalid_priority"),
        ({"escalation": {"page_the_ceo": True}}, "invalid_escalation"),
        ({"escalation": ["raise_priority_to"]}, "validation_error"),
        ({"first_response_minutes": 0}, "invalid_target"),
        ({"resolution_minutes": 129601}, "invalid_target"),
        ({"next_response_minutes": 10**30}, "invalid_target"),
        ({"first_response_minutes": 1.5}, "validation_error"),
        ({"first_response_minutes": "15"}, "validation_error"),
        ({"first_response_minutes": True}, "validation_error"),
        ({"name": None}, "validation_error"),
        ({"name": "  "}, "validation_error"),
        ({"name": "two\nlines"}, "validation_error"),
        ({"name": "x" * 101}, "validation_error"),
        ({"name": "nul\u0000"}, "validation_error"),
        ({"clock": None}, "validation_error"),
        ({"escalation": None}, "validation_error"),
        ({"description": "x" * 1001}, "validation_error"),
        ({"colour": "gold"}, "validation_error"),
    ],
)
async def test_bad_policies_are_refused_with_a_code_and_nothing_changes(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], change: dict[str, Any], expected: str
) -> None:
    office, escalations = await calendar(db), await team(db)
    stored = await create(client, admin, {**GOLD, "escalation": {"team_id": escalations}})
    change = {name: office if value == "OFFICE" else value for name, value in change.items()}
    before = await table_digests(db, WATCHED)
    status, body = await call(client, "PATCH", f"{BASE}/{stored['id']}", admin, change)
    assert (status, error_code(body)) == (422, expected), body
    status, body = await call(client, "POST", BASE, admin, {**GOLD, "name": "Second", **change})
    assert (status, error_code(body)) == (422, expected), body
    assert set(body["error"]) == {"code", "message", "details"}
    assert await table_digests(db, WATCHED) == before


async def test_a_change_is_checked_against_what_is_stored(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    office = await calendar(db)
    policy = await create(client, admin, {"name": "Calendar", "resolution_minutes": 60})
    path = f"{BASE}/{policy['id']}"
    # the last target cannot go
    status, answer = await call(client, "PATCH", path, admin, {"resolution_minutes": None})
    assert (status, error_code(answer)) == (422, "no_target")
    # a calendar on the calendar clock conflicts, whichever of the two is sent
    status, answer = await call(client, "PATCH", path, admin, {"business_hours_id": office})
    assert status == 200, answer
    status, answer = await call(client, "PATCH", path, admin, {"clock": "calendar"})
    assert (status, error_code(answer)) == (422, "conflicting_clock")
    status, answer = await call(
        client, "PATCH", path, admin, {"clock": "calendar", "business_hours_id": None}
    )
    assert (status, answer["clock"], answer["business_hours_id"]) == (200, "calendar", None)
    status, answer = await call(client, "PATCH", path, admin, {"business_hours_id": office})
    assert (status, error_code(answer)) == (422, "conflicting_clock")
    # an empty change changes nothing
    status, answer = await call(client, "PATCH", path, admin, {})
    assert (status, answer["resolution_minutes"], answer["clock"]) == (200, 60, "calendar")


async def test_names_are_unique(client: Client, db: asyncpg.Pool, admin: dict[str, str]) -> None:
    gold = await create(client, admin, GOLD)
    silver = await create(client, admin, {**GOLD, "name": "Silver"})
    status, body = await call(client, "POST", BASE, admin, {**GOLD, "name": " Gold "})
    assert (status, error_code(body)) == (409, "sla_policy_exists")
    status, body = await call(client, "PATCH", f"{BASE}/{silver['id']}", admin, {"name": "Gold"})
    assert (status, error_code(body)) == (409, "sla_policy_exists")
    assert [r["name"] for r in await db.fetch("SELECT name FROM sla_policies ORDER BY id")] == [
        "Gold",
        "Silver",
    ]
    # two admins creating the same name at once: one policy
    answers = await asyncio.gather(
        *(call(client, "POST", BASE, admin, {**GOLD, "name": "Bronze"}) for _ in range(4))
    )
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409]
    assert await db.fetchval("SELECT count(*) FROM sla_policies") == 3
    assert gold["id"] != silver["id"]


async def test_a_tier_defaults_to_a_policy_until_it_is_cleared(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    gold = await create(client, admin, GOLD)
    silver = await create(client, admin, {**GOLD, "name": "Silver", "first_response_minutes": 60})
    assert await sla_policies.default_for_tier(db, 1) is None
    await db.execute("UPDATE tier_settings SET recomputed_at = now()")

    status, view = await call(
        client, "PUT", TIERS, admin, tiers_body(r1=gold["id"], r2=gold["id"], r3=silver["id"])
    )
    assert status == 200, view
    assert [t["sla_policy_id"] for t in view["tiers"]] == [
        gold["id"],
        gold["id"],
        silver["id"],
        None,
    ]
    # a default is no rule of the pyramid: nothing is to be recomputed
    assert view["recomputed_at"] is not None
    platinum = await sla_policies.default_for_tier(db, 1)
    assert platinum is not None and platinum.name == "Gold"
    assert platinum.first_response == timedelta(minutes=15)
    silver_default = await sla_policies.default_for_tier(db, 3)
    assert silver_default is not None and silver_default.id == silver["id"]
    assert await sla_policies.default_for_tier(db, 4) is None

    # left out: kept (a client that knows nothing of SLA policies changes labels safely)
    relabelled = tiers_body()
    relabelled["tiers"][0]["label"] = "diamond"
    status, view = await call(client, "PUT", TIERS, admin, relabelled)
    assert (status, view["tiers"][0]["label"]) == (200, "diamond")
    assert await tier_defaults(client, admin) == [gold["id"], gold["id"], silver["id"], None]

    # null: no default
    status, view = await call(client, "PUT", TIERS, admin, tiers_body(r2=None, r4=silver["id"]))
    assert status == 200, view
    assert await tier_defaults(client, admin) == [gold["id"], None, silver["id"], silver["id"]]
    assert await sla_policies.default_for_tier(db, 2) is None

    # a policy a tier defaults to is not deleted
    status, answer = await call(client, "DELETE", f"{BASE}/{silver['id']}", admin)
    assert (status, error_code(answer)) == (409, "sla_policy_in_use")
    assert answer["error"]["details"] == {
        "rule_ids": [],
        "tier_ranks": [3, 4],
        "open_conversations": 0,
    }
    await call(client, "PUT", TIERS, admin, tiers_body(r3=None, r4=None))
    assert (await call(client, "DELETE", f"{BASE}/{silver['id']}", admin))[0] == 204


async def test_a_tier_cannot_default_to_a_policy_that_does_not_exist(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    gold = await create(client, admin, GOLD)
    await call(client, "PUT", TIERS, admin, tiers_body(r1=gold["id"]))
    before = await table_digests(db, WATCHED)
    relabelled = tiers_body(r2=gold["id"] + 100)
    relabelled["tiers"][0]["label"] = "diamond"
    status, answer = await call(client, "PUT", TIERS, admin, relabelled)
    assert (status, error_code(answer)) == (422, "unknown_sla_policy")
    assert answer["error"]["details"]["rank"] == 2
    for bad in (0, -3, "1", 1.0, True, 2**63):
        body = tiers_body()
        body["tiers"][1]["sla_policy_id"] = bad
        status, answer = await call(client, "PUT", TIERS, admin, body)
        assert (status, error_code(answer)) == (422, "validation_error"), bad
    assert await table_digests(db, WATCHED) == before


async def test_a_policy_a_rule_names_saves_and_is_not_deleted(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    gold = await create(client, admin, GOLD)
    rule = {
        "name": "VIP",
        "conditions": {"match": "all", "conditions": [{"type": "tier", "in": [1]}]},
        "actions": [{"type": "sla_policy", "sla_policy_id": gold["id"]}],
    }
    status, saved = await call(client, "POST", "/v1/admin/routing-rules", admin, rule)
    assert status == 201, saved
    missing = {**rule, "actions": [{"type": "sla_policy", "sla_policy_id": gold["id"] + 1}]}
    status, answer = await call(client, "POST", "/v1/admin/routing-rules", admin, missing)
    assert (status, error_code(answer)) == (422, "unknown_sla_policy")

    status, answer = await call(client, "DELETE", f"{BASE}/{gold['id']}", admin)
    assert (status, error_code(answer)) == (409, "sla_policy_in_use")
    assert answer["error"]["details"]["rule_ids"] == [saved["id"]]
    assert await db.fetchval("SELECT count(*) FROM sla_policies") == 1

    status, _ = await call(client, "DELETE", f"/v1/admin/routing-rules/{saved['id']}", admin)
    assert status == 204
    assert (await call(client, "DELETE", f"{BASE}/{gold['id']}", admin))[0] == 204


async def test_a_policy_an_open_conversation_is_held_to_is_not_deleted(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    gold = await create(client, admin, GOLD)
    contact_id = await db.fetchval("INSERT INTO contacts DEFAULT VALUES RETURNING id")
    held = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel, status, sla_policy_id)"
        " VALUES ($1, 'web', 'pending', $2) RETURNING id",
        contact_id,
        gold["id"],
    )
    done = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel, status, sla_policy_id)"
        " VALUES ($1, 'web', 'resolved', $2) RETURNING id",
        contact_id,
        gold["id"],
    )
    status, answer = await call(client, "DELETE", f"{BASE}/{gold['id']}", admin)
    assert (status, error_code(answer)) == (409, "sla_policy_in_use")
    assert answer["error"]["details"]["open_conversations"] == 1

    await db.execute("UPDATE conversations SET status = 'closed' WHERE id = $1", held)
    assert (await call(client, "DELETE", f"{BASE}/{gold['id']}", admin))[0] == 204
    rows = await db.fetch("SELECT id, sla_policy_id FROM conversations ORDER BY id")
    assert [(r["id"], r["sla_policy_id"]) for r in rows] == [(held, None), (done, None)]


async def test_a_delete_and_a_tier_naming_the_policy_at_once_leave_no_dangling_default(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    for round_ in range(5):
        policy = await create(client, admin, {**GOLD, "name": f"Gold {round_}"})
        (put_status, _), (delete_status, deleted) = await asyncio.gather(
            call(client, "PUT", TIERS, admin, tiers_body(r1=policy["id"])),
            call(client, "DELETE", f"{BASE}/{policy['id']}", admin),
        )
        if delete_status == 204:
            assert put_status == 422
            assert await tier_defaults(client, admin) == [None] * 4
        else:
            assert (put_status, delete_status, error_code(deleted)) == (
                200,
                409,
                "sla_policy_in_use",
            )
            assert await tier_defaults(client, admin) == [policy["id"], None, None, None]
            await call(client, "PUT", TIERS, admin, tiers_body(r1=None))
