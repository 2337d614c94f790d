"""The audit log of admin changes: one row per create, update and delete, by whom, with what
was before and after (an update: only what changed); nothing for a refused request; never a
secret; GET /v1/admin/audit filters and pages, for admins only."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.domain.audit import changed, to_json
from contactcenter.domain.enums import Role
from tests.helpers import bearer, call, error_code, make_agent

Client = TestClient[Any, Any]
AUDIT = "/v1/admin/audit"
WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
MAILBOX = {
    "name": "support",
    "address": "support@example.com",
    "imap_host": "imap.example.com",
    "imap_user": "support@example.com",
    "imap_password": "imap-password-123",
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "smtp_user": "support@example.com",
    "smtp_password": "smtp-password-456",
}


@pytest.fixture
async def boss(db: asyncpg.Pool) -> tuple[int, dict[str, str]]:
    """(id, Authorization header) of an admin named Boss."""
    agent_id, token = await make_agent(db, name="Boss", role=Role.ADMIN, online=False)
    return agent_id, bearer(token)


async def rows(db: asyncpg.Pool, entity: str) -> list[dict[str, Any]]:
    found = await db.fetch("SELECT * FROM audit_log WHERE entity = $1 ORDER BY id", entity)
    return [dict(r) for r in found]


async def ok(
    client: Client, method: str, path: str, headers: dict[str, str], body: Any = None
) -> Any:
    status, answer = await call(client, method, path, headers, body)
    assert status in (200, 201, 204), (status, answer)
    return answer


# --- the pure half ----------------------------------------------------------------------------


def test_an_update_keeps_only_what_changed_and_never_a_secret() -> None:
    before = {"id": 1, "name": "a", "token_hash": b"x", "updated_at": "t1", "n": 1}
    after = {"id": 1, "name": "b", "token_hash": b"y", "updated_at": "t2", "n": 1}
    assert changed(before, after) == ({"name": "a"}, {"name": "b"})
    assert to_json({"smtp_password": "p", "x": {"auth_token": "t", "y": 1}}) == {"x": {"y": 1}}


# --- each admin change, one row ------------------------------------------------------------


async def check_crud(
    db: asyncpg.Pool,
    entity: str,
    boss_id: int,
    entity_id: int,
    *,
    changed_key: str,
    old: Any,
    new: Any,
) -> None:
    """Exactly a create, an update and a delete, in order, by the boss."""
    found = await rows(db, entity)
    assert [r["action"] for r in found] == ["create", "update", "delete"]
    assert {(r["agent_id"], r["agent_name"], r["entity_id"]) for r in found} == {
        (boss_id, "Boss", str(entity_id))
    }
    create, update, delete = found
    assert create["before"] is None and create["after"]["id"] == entity_id
    assert update["before"][changed_key] == old and update["after"][changed_key] == new
    assert "id" not in update["after"]  # unchanged keys are left out
    assert delete["after"] is None and delete["before"]["id"] == entity_id
    assert delete["before"][changed_key] == new
    assert all(r["request_id"] for r in found)


async def test_sla_policies(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    base = "/v1/admin/sla-policies"
    made = await ok(client, "POST", base, headers, {"name": "Gold", "first_response_minutes": 15})
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, {"name": "Platinum"})
    # refused: nothing recorded
    dup = {"name": "Platinum", "first_response_minutes": 5}
    status, body = await call(client, "POST", base, headers, dup)
    assert (status, error_code(body)) == (409, "sla_policy_exists")
    status, _ = await call(client, "PATCH", f"{base}/{made['id']}", headers, {"warning_percent": 0})
    assert status == 422
    await ok(client, "DELETE", f"{base}/{made['id']}", headers)
    await check_crud(
        db, "sla_policy", boss_id, made["id"], changed_key="name", old="Gold", new="Platinum"
    )


async def test_business_hours(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    base = "/v1/admin/business-hours"
    body = {"name": "Office", "timezone": "Europe/Paris", "weekly": WEEKDAYS}
    made = await ok(client, "POST", base, headers, body)
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, {"timezone": "Asia/Tokyo"})
    status, _ = await call(
        client, "PATCH", f"{base}/{made['id']}", headers, {"timezone": "Mars/Base"}
    )
    assert status == 422
    await ok(client, "DELETE", f"{base}/{made['id']}", headers)
    await check_crud(
        db,
        "business_hours",
        boss_id,
        made["id"],
        changed_key="timezone",
        old="Europe/Paris",
        new="Asia/Tokyo",
    )


async def test_routing_rules(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    base = "/v1/admin/routing-rules"
    rule = {
        "name": "refunds",
        "conditions": {"match": "all", "conditions": []},
        "actions": [{"type": "priority", "value": 1}],
    }
    made = await ok(client, "POST", base, headers, rule)
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, {"name": "big refunds"})
    bad = {**rule, "actions": [{"type": "team", "team_id": 999999}]}
    status, _ = await call(client, "POST", base, headers, bad)
    assert status == 422
    await ok(client, "DELETE", f"{base}/{made['id']}", headers)
    await check_crud(
        db,
        "routing_rule",
        boss_id,
        made["id"],
        changed_key="name",
        old="refunds",
        new="big refunds",
    )


async def test_teams(client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]) -> None:
    boss_id, headers = boss
    base = "/v1/admin/teams"
    made = await ok(client, "POST", base, headers, {"name": "VIP"})
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, {"name": "Gold VIP"})
    status, body = await call(client, "POST", base, headers, {"name": "Gold VIP"})
    assert status == 409, body
    await ok(client, "DELETE", f"{base}/{made['id']}", headers)
    await check_crud(db, "team", boss_id, made["id"], changed_key="name", old="VIP", new="Gold VIP")


async def test_agents_never_log_the_token(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    base = "/v1/admin/agents"
    body = {"name": "Ann", "email": "ann@example.com", "role": "agent"}
    made = await ok(client, "POST", base, headers, body)
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, {"capacity": 7})
    status, _ = await call(client, "POST", base, headers, body)
    assert status == 409
    status, _ = await call(client, "PATCH", f"{base}/{boss_id}", headers, {"role": "agent"})
    assert status == 409  # the last admin
    found = [r for r in await rows(db, "agent") if r["entity_id"] == str(made["id"])]
    assert [r["action"] for r in found] == ["create", "update"]
    assert found[0]["after"]["email"] == "ann@example.com"
    assert (found[1]["before"], found[1]["after"]) == (
        {"capacity": made["capacity"]},
        {"capacity": 7},
    )
    assert {r["agent_id"] for r in found} == {boss_id}
    dump = await db.fetchval("SELECT string_agg(audit_log::text, ' ') FROM audit_log")
    assert made["token"] not in dump and "token_hash" not in dump


async def test_templates(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    base = "/v1/admin/templates"
    body = {"purpose": "help", "channel": "sms", "locale": "en", "body_text": "Hi {{ name }}."}
    made = await ok(client, "POST", base, headers, body)
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, {"body_text": "Hello {{ name }}."})
    status, _ = await call(client, "POST", base, headers, body)
    assert status == 409
    await ok(client, "DELETE", f"{base}/{made['id']}", headers)
    await check_crud(
        db,
        "template",
        boss_id,
        made["id"],
        changed_key="body_text",
        old="Hi {{ name }}.",
        new="Hello {{ name }}.",
    )


async def test_care_settings(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    before = await ok(client, "GET", "/v1/admin/care", headers)
    wanted = not before["follow_up_enabled"]
    await ok(client, "PUT", "/v1/admin/care", headers, {"follow_up_enabled": wanted})
    status, _ = await call(
        client, "PUT", "/v1/admin/care", headers, {"default_timezone": "Mars/Base"}
    )
    assert status == 422
    await ok(client, "PUT", "/v1/admin/care", headers, {})  # no change: no row
    found = await rows(db, "care_settings")
    assert len(found) == 1
    assert (found[0]["action"], found[0]["agent_id"]) == ("update", boss_id)
    assert found[0]["before"] == {"follow_up_enabled": before["follow_up_enabled"]}
    assert found[0]["after"] == {"follow_up_enabled": wanted}
    # care settings are one row that conftest does not reset: put it back for later tests
    await ok(client, "PUT", "/v1/admin/care", headers, {"follow_up_enabled": not wanted})


async def test_a_mailbox_never_logs_its_passwords(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    base = "/v1/admin/channels"
    made = await ok(client, "POST", base, headers, MAILBOX)
    changes = {"display_name": "Help desk", "smtp_password": "new-password-789"}
    await ok(client, "PATCH", f"{base}/{made['id']}", headers, changes)
    status, _ = await call(client, "POST", base, headers, MAILBOX)
    assert status == 409
    await ok(client, "DELETE", f"{base}/{made['id']}", headers)
    await check_crud(
        db, "mailbox", boss_id, made["id"], changed_key="display_name", old=None, new="Help desk"
    )
    dump = await db.fetchval("SELECT string_agg(audit_log::text, ' ') FROM audit_log")
    for secret in ("imap-password-123", "smtp-password-456", "new-password-789", '_password"'):
        assert secret not in dump


# --- reading the log ------------------------------------------------------------------------


async def test_the_log_filters_and_pages_for_admins_only(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    boss_id, headers = boss
    other_id, other_token = await make_agent(db, name="Other", role=Role.ADMIN, online=False)
    ids = []
    for n in range(3):
        made = await ok(client, "POST", "/v1/admin/teams", headers, {"name": f"T{n}"})
        ids.append(made["id"])
    await ok(
        client,
        "POST",
        "/v1/admin/sla-policies",
        bearer(other_token),
        {"name": "P", "resolution_minutes": 60},
    )

    everything = await ok(client, "GET", AUDIT, headers)
    assert [(i["entity"], i["agent_id"]) for i in everything["items"]] == [
        ("sla_policy", other_id),
        ("team", boss_id),
        ("team", boss_id),
        ("team", boss_id),
        # the command line (make_agent) made both admins: no acting agent
        ("agent", None),
        ("agent", None),
    ]
    assert everything["next_cursor"] is None
    item = everything["items"][1]
    assert set(item) == {
        "id",
        "at",
        "agent_id",
        "agent_name",
        "action",
        "entity",
        "entity_id",
        "before",
        "after",
        "request_id",
    }

    one = await ok(client, "GET", f"{AUDIT}?entity=team&entity_id={ids[1]}", headers)
    assert [i["entity_id"] for i in one["items"]] == [str(ids[1])]
    by_other = await ok(client, "GET", f"{AUDIT}?agent_id={other_id}", headers)
    assert [i["entity"] for i in by_other["items"]] == ["sla_policy"]
    assert (await ok(client, "GET", f"{AUDIT}?from=2000-01-01&to=2000-01-02", headers))[
        "items"
    ] == []
    assert len((await ok(client, "GET", f"{AUDIT}?from=2000-01-01", headers))["items"]) == 6

    seen: list[str] = []
    cursor = None
    while True:
        path = f"{AUDIT}?entity=team&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await ok(client, "GET", path, headers)
        seen += [i["entity_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(ids)]

    for bad in ("limit=0", "limit=x", "from=yesterday", "agent_id=-1"):
        status, body = await call(client, "GET", f"{AUDIT}?{bad}", headers)
        assert (status, error_code(body)) == (422, "invalid_query"), bad
    status, body = await call(client, "GET", f"{AUDIT}?cursor=abc", headers)
    assert (status, error_code(body)) == (400, "invalid_cursor")

    for role in (Role.AGENT, Role.SUPERVISOR):
        _, token = await make_agent(db, role=role, online=False)
        status, body = await call(client, "GET", AUDIT, bearer(token))
        assert status == 403, body


async def test_tier_configuration_recompute_and_pins(
    client: Client, db: asyncpg.Pool, boss: tuple[int, dict[str, str]]
) -> None:
    """Issue 8, item 4: tiers are admin configuration too. A PUT records the tiers that
    changed; a recompute asked for by an admin records its counts; a pin records the pin,
    the tier in force and the note; a refused PUT records nothing."""
    boss_id, headers = boss
    contact = await db.fetchval(
        "INSERT INTO contacts (name, value) VALUES ('Ann', 10) RETURNING id"
    )
    config = {
        "method": "shares",
        "tiers": [
            {"rank": 1, "label": "platinum", "share_percent": 1},
            {"rank": 2, "label": "gold", "share_percent": 4},
            {"rank": 3, "label": "silver", "share_percent": 15},
            {"rank": 4, "label": "bronze"},
        ],
    }
    await ok(client, "PUT", "/v1/admin/tiers", headers, config)
    config["tiers"][1] = {"rank": 2, "label": "Gold+", "share_percent": 4}
    await ok(client, "PUT", "/v1/admin/tiers", headers, config)
    refused = {**config, "tiers": config["tiers"][:3]}
    status, _ = await call(client, "PUT", "/v1/admin/tiers", headers, refused)
    assert status == 422
    report = await ok(client, "POST", "/v1/admin/tiers/recompute", headers)
    pin = {"tier": 1, "note": "our biggest reseller"}
    await ok(client, "PUT", f"/v1/admin/contacts/{contact}/tier", headers, pin)
    await ok(client, "PUT", f"/v1/admin/contacts/{contact}/tier", headers, pin)  # no change

    saves = await rows(db, "tiers")
    assert [r["action"] for r in saves] == ["update", "update"]
    second = saves[1]
    assert second["agent_id"] == boss_id
    assert second["before"] == {"tier_2": {**second["before"]["tier_2"], "label": "gold"}}
    assert second["after"] == {"tier_2": {**second["before"]["tier_2"], "label": "Gold+"}}
    [recomputed] = await rows(db, "tiers_recompute")
    assert recomputed["action"] == "other"
    assert recomputed["after"] == {"examined": 1, "changed": report["changed"]}
    [pinned] = await rows(db, "contact_tier")
    assert (pinned["entity_id"], pinned["agent_name"]) == (str(contact), "Boss")
    assert pinned["before"] == {"pinned_tier": None, "tier": 4, "note": None}
    assert pinned["after"] == {"pinned_tier": 1, "tier": 1, "note": "our biggest reseller"}
