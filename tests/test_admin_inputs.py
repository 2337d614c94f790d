"""Invariant 8 for the issue-5 surfaces (routing rules and their dry run, tiers, contacts,
teams, agents, business hours, transfers): every bad input gets its 4xx with a code, never a
500, and a refused request writes nothing. Plus the role rules, and races that must keep the
rules' positions dense and one default."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from contactcenter.domain.enums import Role
from tests.helpers import bearer, make_agent, start_chat, table_digests

Client = TestClient[Any, Any]

RULES = "/v1/admin/routing-rules"
WEEKDAYS_9_TO_5 = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
# every table a refused admin request could leave a row, or a changed row, in
WATCHED = (
    "routing_rules",
    "teams",
    "team_members",
    "agents",
    "business_hours",
    "tiers",
    "tier_settings",
    "contacts",
    "tier_changes",
    "conversations",
    "sla_policies",
)
BIG = str(2**63)
HUGE = "99999999999999999999"


async def error_of(response: ClientResponse, status: int, code: str | None) -> dict[str, Any]:
    """The status and the envelope of API.md; the code too unless None (any code)."""
    text = await response.text()
    assert response.status == status, text
    envelope = json.loads(text)
    assert set(envelope) == {"error"}, text
    assert set(envelope["error"]) == {"code", "message", "details"}, text
    assert code is None or envelope["error"]["code"] == code, text
    error: dict[str, Any] = envelope["error"]
    return error


# ---------------------------------------------------------------------------------- the world


@pytest.fixture
async def world(client: Client, db: asyncpg.Pool) -> dict[str, Any]:
    """An admin, a supervisor and an agent; a second team; a default calendar; a rule naming
    the team; a web conversation (and its contact) in the default team."""
    admin_id, admin = await make_agent(db, name="Ada", role=Role.ADMIN)
    _, supervisor = await make_agent(db, name="Sam", role=Role.SUPERVISOR)
    agent_id, agent = await make_agent(db, name="Al")
    general = int(await db.fetchval("SELECT id FROM teams WHERE is_default"))
    care = int(await db.fetchval("INSERT INTO teams (name) VALUES ('Care') RETURNING id"))
    calendar = int(
        await db.fetchval(
            "INSERT INTO business_hours (name, timezone, weekly, is_default)"
            " VALUES ('office', 'Asia/Shanghai', $1, true) RETURNING id",
            WEEKDAYS_9_TO_5,
        )
    )
    headers = bearer(admin)
    created = await client.post(
        RULES,
        json={
            "name": "to care",
            "conditions": {
                "conditions": [
                    {"type": "text", "keywords": ["refund"]},
                    {"type": "business_hours", "inside": True},
                ]
            },
            "actions": [{"type": "team", "team_id": care}],
        },
        headers=headers,
    )
    assert created.status == 201, await created.text()
    chat = await start_chat(client)
    conversation = chat["conversation_id"]
    await db.execute("UPDATE conversations SET team_id = $2 WHERE id = $1", conversation, general)
    contact = int(
        await db.fetchval("SELECT contact_id FROM conversations WHERE id = $1", conversation)
    )
    return {
        "admin": headers,
        "admin_id": admin_id,
        "supervisor": bearer(supervisor),
        "agent": bearer(agent),
        "agent_id": agent_id,
        "general": general,
        "care": care,
        "calendar": calendar,
        "rule": (await created.json())["id"],
        "conversation": conversation,
        "contact": contact,
    }


async def send(
    client: Client, method: str, path: str, headers: dict[str, str], raw: str | None
) -> ClientResponse:
    if raw is None:
        return await client.request(method, path, headers=headers)
    return await client.request(
        method,
        path,
        data=raw.encode("utf-8", "surrogatepass"),
        headers={**headers, "Content-Type": "application/json"},
    )


def rule(
    conditions: str = "[]", actions: str = '[{"type": "priority", "value": 1}]', **extra: str
) -> str:
    more = "".join(f', "{k}": {v}' for k, v in extra.items())
    return (
        f'{{"name": "r", "conditions": {{"match": "all", "conditions": {conditions}}},'
        f' "actions": {actions}{more}}}'
    )


def field_in(value: str) -> str:
    return rule(f'[{{"type": "contact_field", "field": "plan", "in": [{value}]}}]')


def dry_run(message: str, rules: str | None = None) -> str:
    drafts = "" if rules is None else f', "rules": [{rules}]'
    return f'{{"message": {message}{drafts}}}'


HOURS_RULE = rule('[{"type": "business_hours", "inside": true}]')
ONE_TIER = '{"rank": %d, "label": "%s"%s}'


def tiers(method: str = "thresholds", first: str = '"min_value": 100', **over: str) -> str:
    """A tiers configuration with rank 1's extra fields given by `first`."""
    rest = {
        1: f", {first}" if first else "",
        2: ', "min_value": 50' if method == "thresholds" else ', "share_percent": 4',
        3: ', "min_value": 10' if method == "thresholds" else ', "share_percent": 15',
        4: "",
    }
    items = [
        ONE_TIER % (rank, label, rest[rank])
        for rank, label in ((1, "p"), (2, "g"), (3, "s"), (4, "b"))
    ]
    return f'{{"method": "{method}", "tiers": [{", ".join(items)}]}}'


# (method, path, raw body or None, status, code). Paths name the world's ids in braces.
CASES = [
    # --- routing rules: bodies
    ("POST", RULES, "", 400, "invalid_json"),
    ("POST", RULES, "null", 422, "validation_error"),
    ("POST", RULES, "[]", 422, "validation_error"),
    ("POST", RULES, '"rule"', 422, "validation_error"),
    ("POST", RULES, "{}", 422, "validation_error"),
    (
        "POST",
        RULES,
        '{"name": "x\\u0000y", "conditions": {}, "actions": [{"type": "stop"}]}',
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES,
        '{"name": "\\ud800", "conditions": {}, "actions": [{"type": "stop"}]}',
        422,
        "validation_error",
    ),
    ("POST", RULES, rule(position="0"), 422, "validation_error"),
    ("POST", RULES, rule(position="-1"), 422, "validation_error"),
    ("POST", RULES, rule(position=str(2**31)), 422, "validation_error"),
    ("POST", RULES, rule(position="true"), 422, "validation_error"),
    ("POST", RULES, rule(position="1.5"), 422, "validation_error"),
    ("POST", RULES, rule(position="null"), 422, "validation_error"),
    ("POST", RULES, rule(enabled="null"), 422, "validation_error"),
    ("POST", RULES, rule(enabled='"yes"'), 422, "validation_error"),
    ("POST", RULES, rule(actions="[]"), 422, "validation_error"),
    ("POST", RULES, rule(actions='[{"type": "stop"}, {"type": "stop"}]'), 422, "duplicate_action"),
    ("POST", RULES, rule(actions='[{"type": "priority", "value": 11}]'), 422, "validation_error"),
    ("POST", RULES, rule(actions='[{"type": "priority", "value": true}]'), 422, "validation_error"),
    ("POST", RULES, rule(actions='[{"type": "priority", "value": 1.0}]'), 422, "validation_error"),
    (
        "POST",
        RULES,
        rule(actions=f'[{{"type": "team", "team_id": {BIG}}}]'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES,
        rule(actions=f'[{{"type": "team", "team_id": {HUGE}}}]'),
        422,
        "validation_error",
    ),
    ("POST", RULES, rule(actions='[{"type": "team", "team_id": 0}]'), 422, "validation_error"),
    ("POST", RULES, rule(actions='[{"type": "team", "team_id": 999999}]'), 422, "unknown_team"),
    (
        "POST",
        RULES,
        rule(actions='[{"type": "sla_policy", "sla_policy_id": 9}]'),
        422,
        "unknown_sla_policy",
    ),
    (
        "POST",
        RULES,
        rule(actions='[{"type": "tags", "add": ["\\u0000"]}]'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES,
        rule(actions='[{"type": "skills", "require": ["not a skill"]}]'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES,
        rule(actions='[{"type": "auto_reply", "text": "   "}]'),
        422,
        "validation_error",
    ),
    ("POST", RULES, rule('[{"type": "tier", "in": [0]}]'), 422, "validation_error"),
    ("POST", RULES, rule('[{"type": "tier", "in": [true]}]'), 422, "validation_error"),
    ("POST", RULES, rule('[{"type": "channel", "in": ["fax"]}]'), 422, "validation_error"),
    ("POST", RULES, rule('[{"type": "mailbox", "in": [99999]}]'), 422, "unknown_mailbox"),
    ("POST", RULES, rule('[{"type": "sms_number", "in": [99999]}]'), 422, "unknown_sms_number"),
    ("POST", RULES, rule(f'[{{"type": "mailbox", "in": [{HUGE}]}}]'), 422, "validation_error"),
    ("POST", RULES, rule('[{"type": "language", "in": ["english!"]}]'), 422, "validation_error"),
    (
        "POST",
        RULES,
        rule('[{"type": "business_hours", "inside": true, "calendar_id": 99}]'),
        422,
        "unknown_business_hours",
    ),
    ("POST", RULES, rule('[{"type": "business_hours", "inside": 1}]'), 422, "validation_error"),
    ("POST", RULES, rule('[{"type": "text", "regex": "(?P<n>a)(?P=n)"}]'), 422, "invalid_regex"),
    ("POST", RULES, rule('[{"type": "text", "regex": "(?=lookahead)"}]'), 422, "invalid_regex"),
    ("POST", RULES, rule('[{"type": "text", "regex": "\\\\pL{1000}"}]'), 422, "invalid_regex"),
    (
        "POST",
        RULES,
        rule('[{"type": "text", "regex": "[\\\\p{L}\\\\p{N}]{500}"}]'),
        422,
        "invalid_regex",
    ),
    (
        "POST",
        RULES,
        rule('[{"type": "text", "regex": "' + "a" * 501 + '"}]'),
        422,
        "validation_error",
    ),
    ("POST", RULES, rule('[{"type": "subject", "keywords": []}]'), 422, "validation_error"),
    ("POST", RULES, rule('[{"type": "subject", "keywords": ["  "]}]'), 422, "validation_error"),
    (
        "POST",
        RULES,
        rule('[{"type": "subject", "keywords": ["a"], "regex": "a"}]'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES,
        rule('[{"type": "contact_tag", "any": ["a"], "all": ["b"]}]'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES,
        rule("[" + ", ".join(['{"type": "channel", "in": ["web"]}'] * 51) + "]"),
        422,
        "validation_error",
    ),
    # numbers Python's json reads as NaN and infinity are not JSON (and jsonb cannot hold them)
    ("POST", RULES, field_in("NaN"), 400, "invalid_json"),
    ("POST", RULES, field_in("Infinity"), 400, "invalid_json"),
    ("POST", RULES, field_in("-Infinity"), 400, "invalid_json"),
    ("POST", RULES, field_in("1e400"), 400, "invalid_json"),
    ("POST", RULES, field_in("null"), 422, "validation_error"),
    ("POST", RULES, field_in('{"a": 1}'), 422, "validation_error"),
    (
        "POST",
        RULES,
        rule('[{"type": "contact_field", "field": "", "present": true}]'),
        422,
        "validation_error",
    ),
    # --- routing rules: paths, the order
    ("GET", RULES + "/0", None, 404, "not_found"),
    ("GET", RULES + "/-1", None, 404, "not_found"),
    ("GET", RULES + "/" + HUGE, None, 404, "not_found"),
    ("GET", RULES + "/1.5", None, 404, "not_found"),
    ("GET", RULES + "/999999", None, 404, "rule_not_found"),
    ("PATCH", RULES + "/999999", '{"name": "x"}', 404, "rule_not_found"),
    ("DELETE", RULES + "/" + HUGE, None, 404, "not_found"),
    ("PATCH", RULES + "/{rule}", '{"position": 0}', 422, "validation_error"),
    ("PATCH", RULES + "/{rule}", '{"position": null}', 422, "validation_error"),
    ("PATCH", RULES + "/{rule}", '{"conditions": null}', 422, "validation_error"),
    (
        "PATCH",
        RULES + "/{rule}",
        '{"actions": [{"type": "team", "team_id": 999999}]}',
        422,
        "unknown_team",
    ),
    (
        "PATCH",
        RULES + "/{rule}",
        field_in("NaN").replace('"name": "r", ', ""),
        400,
        "invalid_json",
    ),
    ("PUT", RULES + "/order", '{"ids": []}', 422, "order_mismatch"),
    ("PUT", RULES + "/order", '{"ids": [{rule}, {rule}]}', 422, "order_mismatch"),
    ("PUT", RULES + "/order", '{"ids": [0]}', 422, "validation_error"),
    ("PUT", RULES + "/order", f'{{"ids": [{HUGE}]}}', 422, "validation_error"),
    ("PUT", RULES + "/order", '{"ids": null}', 422, "validation_error"),
    # --- the dry run
    ("POST", RULES + "/test", "{}", 422, "validation_error"),
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "x\\u0000"}'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "\\udfff"}'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "x", "at": "2026-02-30T10:00:00Z"}'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "x", "at": "2026-03-01T10:00:00"}'),
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES + "/test",
        '{"message": {"channel": "web", "text": "x"}, "contact_id": ' + HUGE + "}",
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES + "/test",
        '{"message": {"channel": "web", "text": "x"}, "contact_id": 999999}',
        422,
        "unknown_contact",
    ),
    (
        "POST",
        RULES + "/test",
        '{"message": {"channel": "web", "text": "x"}, "contact": {"tier": 0}}',
        422,
        "validation_error",
    ),
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "x"}', field_in("NaN")),
        400,
        "invalid_json",
    ),
    # an instant whose calendar-local time falls outside the years Python can hold
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "x", "at": "9999-12-31T23:00:00-12:00"}', HOURS_RULE),
        422,
        None,
    ),
    (
        "POST",
        RULES + "/test",
        dry_run('{"channel": "web", "text": "x", "at": "0001-01-01T00:30:00+14:00"}', HOURS_RULE),
        422,
        None,
    ),
    # --- tiers
    ("PUT", "/v1/admin/tiers", "", 400, "invalid_json"),
    ("PUT", "/v1/admin/tiers", "{}", 422, "validation_error"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": NaN'), 400, "invalid_json"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": Infinity'), 400, "invalid_json"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": 1e400'), 400, "invalid_json"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": "NaN"'), 422, "invalid_min_value"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": "1e400"'), 422, "invalid_min_value"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": "-0"'), 422, "invalid_min_value"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": -1'), 422, "invalid_min_value"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": true'), 422, "validation_error"),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": "\\u0661"'), 422, "invalid_min_value"),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers(first='"min_value": 100000000000000'),
        422,
        "invalid_min_value",
    ),
    ("PUT", "/v1/admin/tiers", tiers(first='"min_value": ' + "9" * 5000), 400, "invalid_json"),
    ("PUT", "/v1/admin/tiers", tiers(first=""), 422, "tier_min_value_required"),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers(first='"min_value": 10'),
        422,
        "tier_min_values_not_decreasing",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers("shares", first='"share_percent": NaN'),
        400,
        "invalid_json",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers("shares", first='"share_percent": "100.001"'),
        422,
        "invalid_share_percent",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers("shares", first='"share_percent": 0.0001'),
        422,
        "invalid_share_percent",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers("shares", first='"share_percent": 90'),
        422,
        "tier_shares_over_100",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers("shares", first='"share_percent": 0'),
        422,
        "tier_share_not_positive",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers().replace('"label": "g"', '"label": "P"'),
        422,
        "tier_label_duplicate",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers().replace('"label": "g"', '"label": "  "'),
        422,
        "tier_label_empty",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers().replace('"label": "g"', '"label": "a\\tb"'),
        422,
        "tier_label_invalid",
    ),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers().replace('"label": "g"', '"label": "' + "g" * 41 + '"'),
        422,
        "tier_label_too_long",
    ),
    ("PUT", "/v1/admin/tiers", tiers().replace('"rank": 2', f'"rank": {HUGE}'), 422, "tier_ranks"),
    (
        "PUT",
        "/v1/admin/tiers",
        tiers().replace('"method": "thresholds"', '"method": "magic"'),
        422,
        "validation_error",
    ),
    ("PUT", "/v1/admin/contacts/{contact}/tier", "{}", 422, "validation_error"),
    ("PUT", "/v1/admin/contacts/{contact}/tier", '{"tier": 0}', 422, "validation_error"),
    ("PUT", "/v1/admin/contacts/{contact}/tier", '{"tier": 5}', 422, "validation_error"),
    ("PUT", "/v1/admin/contacts/{contact}/tier", '{"tier": "1"}', 422, "validation_error"),
    ("PUT", "/v1/admin/contacts/{contact}/tier", '{"tier": true}', 422, "validation_error"),
    ("PUT", "/v1/admin/contacts/{contact}/tier", '{"tier": 1.0}', 422, "validation_error"),
    (
        "PUT",
        "/v1/admin/contacts/{contact}/tier",
        '{"tier": 1, "note": "\\u0000"}',
        422,
        "validation_error",
    ),
    ("PUT", "/v1/admin/contacts/999999/tier", '{"tier": 1}', 404, "contact_not_found"),
    ("PUT", "/v1/admin/contacts/" + HUGE + "/tier", '{"tier": 1}', 404, "not_found"),
    ("GET", "/v1/admin/contacts/{contact}/tier-history?limit=0", None, 422, "invalid_query"),
    ("GET", "/v1/admin/contacts/{contact}/tier-history?limit=201", None, 422, "invalid_query"),
    ("GET", "/v1/admin/contacts/{contact}/tier-history?limit=-1", None, 422, "invalid_query"),
    ("GET", "/v1/admin/contacts/{contact}/tier-history?cursor=abc", None, 400, "invalid_cursor"),
    (
        "GET",
        "/v1/admin/contacts/{contact}/tier-history?cursor=" + HUGE,
        None,
        400,
        "invalid_cursor",
    ),
    ("GET", "/v1/admin/contacts/{contact}/tier-history?cursor=0", None, 400, "invalid_cursor"),
    ("GET", "/v1/admin/contacts/999999/tier-history", None, 404, "contact_not_found"),
    # --- contacts
    ("PATCH", "/v1/contacts/{contact}", '{"value": NaN}', 400, "invalid_json"),
    ("PATCH", "/v1/contacts/{contact}", '{"value": -Infinity}', 400, "invalid_json"),
    ("PATCH", "/v1/contacts/{contact}", '{"value": 1e400}', 400, "invalid_json"),
    ("PATCH", "/v1/contacts/{contact}", '{"value": "-0"}', 422, "invalid_value"),
    ("PATCH", "/v1/contacts/{contact}", '{"value": 1e-7}', 422, "invalid_value"),
    ("PATCH", "/v1/contacts/{contact}", '{"value": " "}', 422, "invalid_value"),
    ("PATCH", "/v1/contacts/{contact}", '{"value": "."}', 422, "invalid_value"),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"a": NaN}}', 400, "invalid_json"),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"a": 1e400}}', 400, "invalid_json"),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"a": [1]}}', 422, "invalid_field_value"),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"a": "\\u0000"}}', 422, "invalid_field_value"),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"a": "\\ud800"}}', 422, "invalid_field_value"),
    (
        "PATCH",
        "/v1/contacts/{contact}",
        '{"fields": {"a": ' + str(2**53) + "}}",
        422,
        "invalid_field_value",
    ),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"\\u0000": 1}}', 422, "invalid_field_key"),
    ("PATCH", "/v1/contacts/{contact}", '{"fields": {"plan\\n": "x"}}', 422, "invalid_field_key"),
    ("PATCH", "/v1/contacts/{contact}", '{"tags": ["\\ud800"]}', 422, "invalid_tag"),
    ("PATCH", "/v1/contacts/{contact}", '{"tags": ["a\\u0000"]}', 422, "invalid_tag"),
    ("PATCH", "/v1/contacts/{contact}", '{"name": "\\u0000"}', 422, "validation_error"),
    (
        "PATCH",
        "/v1/contacts/{contact}",
        '{"account_manager_id": ' + BIG + "}",
        422,
        "validation_error",
    ),
    ("PATCH", "/v1/contacts/{contact}", '{"account_manager_id": 0}', 422, "validation_error"),
    ("PATCH", "/v1/contacts/999999", '{"value": 1}', 404, "contact_not_found"),
    ("PATCH", "/v1/contacts/" + HUGE, '{"value": 1}', 404, "not_found"),
    ("GET", "/v1/contacts/0", None, 404, "not_found"),
    # --- teams
    ("POST", "/v1/admin/teams", "{}", 422, "validation_error"),
    ("POST", "/v1/admin/teams", '{"name": "\\u0000"}', 422, "validation_error"),
    ("POST", "/v1/admin/teams", '{"name": "   "}', 422, "validation_error"),
    ("POST", "/v1/admin/teams", '{"name": "' + "t" * 101 + '"}', 422, "validation_error"),
    ("POST", "/v1/admin/teams", '{"name": "Care"}', 409, "team_exists"),
    ("POST", "/v1/admin/teams", '{"name": "X", "skills": ["no spaces"]}', 422, "invalid_skill"),
    ("POST", "/v1/admin/teams", '{"name": "X", "skills": ["\\ud800"]}', 422, "validation_error"),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "skills": [' + ", ".join(f'"s{i}"' for i in range(51)) + "]}",
        422,
        "invalid_skill",
    ),
    ("POST", "/v1/admin/teams", '{"name": "X", "strategy": "random"}', 422, "validation_error"),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "sticky_wait_seconds": -1}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "sticky_wait_seconds": 86401}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "sticky_wait_seconds": 1.5}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "sticky_wait_seconds": ' + HUGE + "}",
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "overflow_team_id": {general}}',
        422,
        "invalid_overflow",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "overflow_after_seconds": 60}',
        422,
        "invalid_overflow",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "overflow_team_id": 999999, "overflow_after_seconds": 60}',
        422,
        "unknown_team",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "overflow_team_id": ' + HUGE + ', "overflow_after_seconds": 60}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "overflow_team_id": {general}, "overflow_after_seconds": 0}',
        422,
        "validation_error",
    ),
    ("POST", "/v1/admin/teams", '{"name": "X", "is_default": null}', 422, "validation_error"),
    (
        "PATCH",
        "/v1/admin/teams/{care}",
        '{"overflow_team_id": {care}, "overflow_after_seconds": 60}',
        422,
        "overflow_cycle",
    ),
    ("PATCH", "/v1/admin/teams/{general}", '{"is_default": false}', 409, "default_team"),
    ("PATCH", "/v1/admin/teams/{care}", '{"name": "General"}', 409, "team_exists"),
    ("PATCH", "/v1/admin/teams/{care}", '{"skills": null}', 422, "validation_error"),
    ("PATCH", "/v1/admin/teams/999999", '{"name": "Y"}', 404, "team_not_found"),
    ("DELETE", "/v1/admin/teams/{general}", None, 409, "default_team"),
    ("DELETE", "/v1/admin/teams/{care}", None, 409, "team_in_use"),
    ("DELETE", "/v1/admin/teams/999999", None, 404, "team_not_found"),
    ("GET", "/v1/admin/teams/" + HUGE, None, 404, "not_found"),
    ("PUT", "/v1/admin/teams/{care}/members", '{"agent_ids": [999999]}', 422, "unknown_agent"),
    ("PUT", "/v1/admin/teams/{care}/members", '{"agent_ids": [0]}', 422, "validation_error"),
    (
        "PUT",
        "/v1/admin/teams/{care}/members",
        f'{{"agent_ids": [{HUGE}]}}',
        422,
        "validation_error",
    ),
    ("PUT", "/v1/admin/teams/{care}/members", '{"agent_ids": null}', 422, "validation_error"),
    (
        "PUT",
        "/v1/admin/teams/{care}/members",
        '{"agent_ids": [{agent_id}, 999999]}',
        422,
        "unknown_agent",
    ),
    ("PUT", "/v1/admin/teams/999999/members", '{"agent_ids": []}', 404, "team_not_found"),
    # --- agents
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "nope", "role": "agent"}',
        422,
        "invalid_email",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "root"}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c\\u0000", "role": "agent"}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "capacity": 101}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "capacity": -1}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "channel_capacity": {"fax": 1}}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "channel_capacity": {"email": 101}}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "team_ids": [999999]}',
        422,
        "unknown_team",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "team_ids": [' + HUGE + "]}",
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "skills": ["x y"]}',
        422,
        "invalid_skill",
    ),
    ("PATCH", "/v1/admin/agents/{agent_id}", '{"capacity": null}', 422, "validation_error"),
    ("PATCH", "/v1/admin/agents/{agent_id}", '{"team_ids": [999999]}', 422, "unknown_team"),
    ("PATCH", "/v1/admin/agents/{agent_id}", '{"email": "x@y.z"}', 422, "validation_error"),
    ("PATCH", "/v1/admin/agents/{admin_id}", '{"role": "agent"}', 409, "last_admin"),
    ("PATCH", "/v1/admin/agents/999999", '{"name": "Z"}', 404, "agent_not_found"),
    ("GET", "/v1/admin/agents?limit=0", None, 422, "invalid_query"),
    ("GET", "/v1/admin/agents?limit=abc", None, 422, "invalid_query"),
    ("GET", "/v1/admin/agents?limit=" + HUGE, None, 422, "invalid_query"),
    ("GET", "/v1/admin/agents?cursor=-1", None, 400, "invalid_cursor"),
    ("GET", "/v1/admin/agents?cursor=" + HUGE, None, 400, "invalid_cursor"),
    ("GET", "/v1/admin/agents/" + HUGE, None, 404, "not_found"),
    # --- business hours
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "Mars/Base", "weekly": {}}',
        422,
        "invalid_timezone",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "../../etc/passwd", "weekly": {}}',
        422,
        "invalid_timezone",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "America", "weekly": {}}',
        422,
        "invalid_timezone",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "", "weekly": {}}',
        422,
        "invalid_timezone",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": null}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [["24:00", "24:00"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [["09:00", "09:00"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [["18:00", "09:00"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [["9:00", "17:00"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [["09:00", "24:01"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [[9, 17]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [["09:00"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": "09:00-17:00"}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": [{"from": "09:00"}]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC",'
        ' "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}',
        422,
        "invalid_period",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"funday": []}}',
        422,
        "invalid_weekday",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {"mon": ['
        + ", ".join(f'["{h:02d}:00", "{h:02d}:30"]' for h in range(7))
        + "]}}",
        422,
        "too_many_periods",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "country": "XX"}',
        422,
        "unknown_country",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "subdivision": "NY"}',
        422,
        "unknown_subdivision",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "country": "US", "subdivision": "ZZ"}',
        422,
        "unknown_subdivision",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "closed_dates": ["2026-02-30"]}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "closed_dates": ["2026-12-31"],'
        ' "open_dates": ["2026-12-31"]}',
        422,
        "conflicting_dates",
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "office", "timezone": "UTC", "weekly": {}}',
        409,
        "business_hours_exists",
    ),
    (
        "PATCH",
        "/v1/admin/business-hours/{calendar}",
        '{"timezone": "Mars/Base"}',
        422,
        "invalid_timezone",
    ),
    ("PATCH", "/v1/admin/business-hours/{calendar}", '{"weekly": null}', 422, "validation_error"),
    (
        "PATCH",
        "/v1/admin/business-hours/{calendar}",
        '{"is_default": false}',
        409,
        "business_hours_in_use",
    ),
    ("PATCH", "/v1/admin/business-hours/999999", '{"name": "z"}', 404, "business_hours_not_found"),
    ("DELETE", "/v1/admin/business-hours/999999", None, 404, "business_hours_not_found"),
    ("DELETE", "/v1/admin/business-hours/{calendar}", None, 409, "business_hours_in_use"),
    ("GET", "/v1/admin/business-hours/{calendar}/open?at=garbage", None, 422, "invalid_query"),
    (
        "GET",
        "/v1/admin/business-hours/{calendar}/open?at=2026-02-30T10:00:00Z",
        None,
        422,
        "invalid_query",
    ),
    (
        "GET",
        "/v1/admin/business-hours/{calendar}/open?at=2026-10-01T10:00:00",
        None,
        422,
        "invalid_query",
    ),
    (
        "GET",
        "/v1/admin/business-hours/{calendar}/open?at=9999-12-31T23:00:00-12:00",
        None,
        422,
        "invalid_query",
    ),
    (
        "GET",
        "/v1/admin/business-hours/{calendar}/open?at=0001-01-01T00:00:00%2B14:00",
        None,
        422,
        "invalid_query",
    ),
    ("GET", "/v1/admin/business-hours/" + HUGE + "/open", None, 404, "not_found"),
    # --- transfers
    ("POST", "/v1/conversations/{conversation}/assign", "{}", 422, "nothing_to_assign"),
    (
        "POST",
        "/v1/conversations/{conversation}/assign",
        '{"agent_id": null, "team_id": null}',
        422,
        "nothing_to_assign",
    ),
    ("POST", "/v1/conversations/{conversation}/assign", '{"agent_id": 0}', 422, "validation_error"),
    (
        "POST",
        "/v1/conversations/{conversation}/assign",
        f'{{"agent_id": {HUGE}}}',
        422,
        "validation_error",
    ),
    (
        "POST",
        "/v1/conversations/{conversation}/assign",
        '{"agent_id": 999999}',
        422,
        "unknown_agent",
    ),
    ("POST", "/v1/conversations/{conversation}/assign", '{"team_id": 999999}', 422, "unknown_team"),
    (
        "POST",
        "/v1/conversations/999999/assign",
        '{"team_id": {care}}',
        404,
        "conversation_not_found",
    ),
    ("POST", "/v1/conversations/" + HUGE + "/assign", '{"team_id": {care}}', 404, "not_found"),
]


def _fill(text: str, world: dict[str, Any]) -> str:
    for key, value in world.items():
        if isinstance(value, int):
            text = text.replace("{" + key + "}", str(value))
    return text


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "code"),
    CASES,
    ids=[f"{i:03d}-{c[0]} {c[1]} {(c[2] or '')[:60]}" for i, c in enumerate(CASES)],
)
async def test_bad_input_gets_its_4xx_and_writes_nothing(
    client: Client,
    db: asyncpg.Pool,
    world: dict[str, Any],
    method: str,
    path: str,
    raw: str | None,
    status: int,
    code: str | None,
) -> None:
    before = await table_digests(db, WATCHED)
    response = await send(
        client,
        method,
        _fill(path, world),
        world["admin"],
        None if raw is None else _fill(raw, world),
    )
    await error_of(response, status, code)
    assert await table_digests(db, WATCHED) == before


# ------------------------------------------------- JSON types: no silent coercion of ids/flags

# The routing-rule, tier and contact bodies take strict JSON types (true is not 1, "5" is not
# 5); the team, agent, business-hours and transfer bodies must not coerce either: `true` as an
# agent id transfers to agent 1, `"off"` as is_default is false, `false` as a capacity is 0.
LAX = [
    ("POST", "/v1/admin/teams", '{"name": "X", "sticky_wait_seconds": true}'),
    ("POST", "/v1/admin/teams", '{"name": "X", "sticky_wait_seconds": "60"}'),
    ("POST", "/v1/admin/teams", '{"name": "X", "sticky_last_agent": "no"}'),
    ("POST", "/v1/admin/teams", '{"name": "X", "is_default": 1}'),
    (
        "POST",
        "/v1/admin/teams",
        '{"name": "X", "overflow_team_id": true, "overflow_after_seconds": 60}',
    ),
    ("PUT", "/v1/admin/teams/{care}/members", '{"agent_ids": [true]}'),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "capacity": true}',
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "capacity": "5"}',
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "channel_capacity": {"email": false}}',
    ),
    (
        "POST",
        "/v1/admin/agents",
        '{"name": "A", "email": "a@b.c", "role": "agent", "team_ids": ["1"]}',
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "is_default": "on"}',
    ),
    (
        "POST",
        "/v1/admin/business-hours",
        '{"name": "b", "timezone": "UTC", "weekly": {}, "closed_dates": [0]}',
    ),
    ("POST", "/v1/conversations/{conversation}/assign", '{"agent_id": true}'),
    ("POST", "/v1/conversations/{conversation}/assign", '{"team_id": "{care}"}'),
]


@pytest.mark.parametrize(("method", "path", "raw"), LAX, ids=[f"{m} {p} {r}" for m, p, r in LAX])
async def test_wrong_json_types_are_refused_not_coerced(
    client: Client, db: asyncpg.Pool, world: dict[str, Any], method: str, path: str, raw: str
) -> None:
    before = await table_digests(db, WATCHED)
    response = await send(client, method, _fill(path, world), world["admin"], _fill(raw, world))
    await error_of(response, 422, "validation_error")
    assert await table_digests(db, WATCHED) == before


async def test_a_body_that_is_not_declared_json_is_refused_everywhere(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    before = await table_digests(db, WATCHED)
    for method, path in [*WRITES, ("POST", RULES + "/test"), ("PATCH", "/v1/contacts/{contact}")]:
        if path.endswith("/recompute") or method == "DELETE":
            continue  # no body to read
        response = await client.request(
            method,
            _fill(path, world),
            data=b'{"name": "x"}',
            headers={**world["admin"], "Content-Type": "text/plain"},
        )
        await error_of(response, 415, "unsupported_media_type")
    assert await table_digests(db, WATCHED) == before


# ---------------------------------------------------------------------------------- roles

READS = [
    ("GET", RULES),
    ("GET", RULES + "/{rule}"),
    ("POST", RULES + "/test"),
    ("GET", "/v1/admin/tiers"),
    ("GET", "/v1/admin/contacts/{contact}/tier-history"),
    ("GET", "/v1/admin/teams"),
    ("GET", "/v1/admin/teams/{care}"),
    ("GET", "/v1/admin/agents"),
    ("GET", "/v1/admin/agents/{agent_id}"),
    ("GET", "/v1/admin/business-hours"),
    ("GET", "/v1/admin/business-hours/{calendar}"),
    ("GET", "/v1/admin/business-hours/{calendar}/open"),
]
WRITES = [
    ("POST", RULES),
    ("PATCH", RULES + "/{rule}"),
    ("DELETE", RULES + "/{rule}"),
    ("PUT", RULES + "/order"),
    ("PUT", "/v1/admin/tiers"),
    ("POST", "/v1/admin/tiers/recompute"),
    ("PUT", "/v1/admin/contacts/{contact}/tier"),
    ("POST", "/v1/admin/teams"),
    ("PATCH", "/v1/admin/teams/{care}"),
    ("DELETE", "/v1/admin/teams/{care}"),
    ("PUT", "/v1/admin/teams/{care}/members"),
    ("POST", "/v1/admin/agents"),
    ("PATCH", "/v1/admin/agents/{agent_id}"),
    ("POST", "/v1/admin/business-hours"),
    ("PATCH", "/v1/admin/business-hours/{calendar}"),
    ("DELETE", "/v1/admin/business-hours/{calendar}"),
]
# bodies a writer could send: the role check comes first, whatever the body says
GOOD_BODY = {
    ("POST", RULES): {"name": "n", "conditions": {}, "actions": [{"type": "stop"}]},
    ("PATCH", RULES + "/{rule}"): {"enabled": False},
    ("PUT", RULES + "/order"): {"ids": []},
    ("POST", RULES + "/test"): {"message": {"channel": "web", "text": "refund"}},
    ("PUT", "/v1/admin/contacts/{contact}/tier"): {"tier": 1},
    ("POST", "/v1/admin/teams"): {"name": "New"},
    ("PATCH", "/v1/admin/teams/{care}"): {"strategy": "round_robin"},
    ("PUT", "/v1/admin/teams/{care}/members"): {"agent_ids": []},
    ("POST", "/v1/admin/agents"): {"name": "N", "email": "n@example.com", "role": "admin"},
    ("PATCH", "/v1/admin/agents/{agent_id}"): {"role": "admin"},
    ("POST", "/v1/admin/business-hours"): {"name": "b", "timezone": "UTC", "weekly": {}},
    ("PATCH", "/v1/admin/business-hours/{calendar}"): {"timezone": "UTC"},
}


async def _call(
    client: Client, world: dict[str, Any], method: str, path: str, headers: dict[str, str]
) -> ClientResponse:
    body = GOOD_BODY.get((method, path))
    if (method, path) == ("PUT", "/v1/admin/tiers"):
        return await send(client, method, path, headers, tiers())
    raw = None if body is None else _fill(json.dumps(body), world)
    return await send(client, method, _fill(path, world), headers, raw)


async def test_agents_get_403_everywhere_and_supervisors_only_read(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    before = await table_digests(db, WATCHED)
    for method, path in READS:
        await error_of(await _call(client, world, method, path, world["agent"]), 403, "forbidden")
        await error_of(await _call(client, world, method, path, {}), 401, "missing_token")
        read = await _call(client, world, method, path, world["supervisor"])
        assert read.status == 200, (method, path, await read.text())
    for method, path in WRITES:
        for who in ("agent", "supervisor"):
            refused = await _call(client, world, method, path, world[who])
            await error_of(refused, 403, "forbidden")
    # an agent may not change a contact either; nothing above wrote anything
    refused = await send(
        client, "PATCH", f"/v1/contacts/{world['contact']}", world["agent"], '{"value": 1}'
    )
    await error_of(refused, 403, "forbidden")
    assert await table_digests(db, WATCHED) == before


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


async def test_no_answer_carries_a_token_or_its_hash(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    created = await client.post(
        "/v1/admin/agents",
        json={"name": "New", "email": "new@example.com", "role": "agent"},
        headers=world["admin"],
    )
    assert created.status == 201
    token = (await created.json())["token"]
    secrets = [token, world["admin"]["Authorization"].split()[1]]
    agent_id = (await created.json())["id"]
    answers = [await (await _call(client, world, m, p, world["admin"])).text() for m, p in READS]
    answers.append(
        await (await client.get(f"/v1/admin/agents/{agent_id}", headers=world["admin"])).text()
    )
    answers.append(
        await (
            await client.patch(
                f"/v1/admin/agents/{agent_id}", json={"capacity": 4}, headers=world["admin"]
            )
        ).text()
    )
    answers.append(
        await (await client.get(f"/v1/contacts/{world['contact']}", headers=world["admin"])).text()
    )
    hashes = [bytes(h).hex() for h in await db.fetchval("SELECT array_agg(token_hash) FROM agents")]
    for text in answers:
        assert not any(s in text for s in secrets), text
        assert not any(h in text for h in hashes), text
        assert not {k for k in _keys(json.loads(text)) if "token" in k or "hash" in k}, text


async def test_an_agent_transfers_only_to_themselves_or_a_team_and_sees_only_their_own(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    other_id, _ = await make_agent(db, name="Other")
    url = f"/v1/conversations/{world['conversation']}/assign"
    before = await table_digests(db, WATCHED)
    refused = await send(client, "POST", url, world["agent"], f'{{"agent_id": {other_id}}}')
    await error_of(refused, 403, "forbidden")
    # a conversation of another team is not there for them
    await db.execute(
        "UPDATE conversations SET team_id = $2 WHERE id = $1", world["conversation"], world["care"]
    )
    before = await table_digests(db, WATCHED)
    hidden = await send(client, "POST", url, world["agent"], f'{{"team_id": {world["general"]}}}')
    await error_of(hidden, 404, "conversation_not_found")
    card = await client.get(f"/v1/contacts/{world['contact']}", headers=world["agent"])
    await error_of(card, 404, "contact_not_found")
    assert await table_digests(db, WATCHED) == before
    # resolved: nothing to assign
    await db.execute(
        "UPDATE conversations SET status = 'resolved', team_id = $2 WHERE id = $1",
        world["conversation"],
        world["general"],
    )
    before = await table_digests(db, WATCHED)
    done = await send(client, "POST", url, world["admin"], f'{{"team_id": {world["care"]}}}')
    await error_of(done, 409, "conversation_not_active")
    assert await table_digests(db, WATCHED) == before


# ---------------------------------------------------------------------------------- races


async def positions(db: asyncpg.Pool) -> list[int]:
    return [
        r["position"]
        for r in await db.fetch("SELECT position FROM routing_rules ORDER BY position, id")
    ]


async def test_rule_writes_racing_each_other_keep_positions_dense(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    headers = world["admin"]
    body = {"name": "n", "conditions": {}, "actions": [{"type": "priority", "value": 1}]}
    ids = [world["rule"]]
    for _ in range(7):
        ids.append((await (await client.post(RULES, json=body, headers=headers)).json())["id"])
    for round_ in range(3):
        current = [
            r["id"] for r in await db.fetch("SELECT id FROM routing_rules ORDER BY position")
        ]
        calls = [
            client.put(f"{RULES}/order", json={"ids": current[::-1]}, headers=headers),
            client.delete(f"{RULES}/{current[1]}", headers=headers),
            client.patch(f"{RULES}/{current[-1]}", json={"position": 1}, headers=headers),
            client.post(RULES, json={**body, "position": 2}, headers=headers),
            client.patch(f"{RULES}/{current[2]}", json={"position": 99}, headers=headers),
            client.delete(f"{RULES}/{current[3]}", headers=headers),
            client.put(f"{RULES}/order", json={"ids": current}, headers=headers),
        ]
        answers = await asyncio.gather(*calls)
        for answer in answers:
            assert answer.status < 500, await answer.text()
            if answer.status >= 400:  # an order computed before a delete no longer fits
                assert (await answer.json())["error"]["code"] == "order_mismatch", round_
        found = await positions(db)
        assert found == list(range(1, len(found) + 1)), found


async def test_two_teams_made_the_default_at_once_leave_one_default(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    for round_ in range(3):
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/admin/teams",
                    json={"name": f"T{round_}-{i}", "is_default": True},
                    headers=world["admin"],
                )
                for i in range(4)
            ),
            client.patch(
                f"/v1/admin/teams/{world['care']}",
                json={"is_default": True},
                headers=world["admin"],
            ),
        )
        for answer in answers:
            assert answer.status in (200, 201, 409), await answer.text()
        assert await db.fetchval("SELECT count(*) FROM teams WHERE is_default") == 1


async def test_two_calendars_made_the_default_at_once_leave_one_default(
    client: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    for round_ in range(3):  # the first round starts with no default at all
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/admin/business-hours",
                    json={
                        "name": f"c{round_}-{i}",
                        "timezone": "UTC",
                        "weekly": {},
                        "is_default": True,
                    },
                    headers=bearer(admin),
                )
                for i in range(4)
            )
        )
        for answer in answers:
            assert answer.status in (201, 409), await answer.text()
        assert await db.fetchval("SELECT count(*) FROM business_hours WHERE is_default") == 1


async def test_a_rule_naming_a_team_and_the_teams_deletion_never_both_win(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    for round_ in range(5):
        team = await client.post(
            "/v1/admin/teams", json={"name": f"Gone {round_}"}, headers=world["admin"]
        )
        team_id = (await team.json())["id"]
        saved, deleted = await asyncio.gather(
            client.post(
                RULES,
                json={
                    "name": "to a team",
                    "conditions": {},
                    "actions": [{"type": "team", "team_id": team_id}],
                },
                headers=world["admin"],
            ),
            client.delete(f"/v1/admin/teams/{team_id}", headers=world["admin"]),
        )
        outcome = (saved.status, deleted.status)
        assert outcome in ((201, 409), (422, 204)), (
            outcome,
            await saved.text(),
            await deleted.text(),
        )
        dangling = await db.fetchval(
            "SELECT count(*) FROM routing_rules r WHERE NOT EXISTS (SELECT 1 FROM teams t"
            " WHERE t.id = (r.actions -> 0 ->> 'team_id')::bigint)"
            " AND r.actions -> 0 ->> 'type' = 'team'"
        )
        assert dangling == 0


async def test_a_rule_on_the_default_calendar_and_its_deletion_never_both_win(
    client: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    headers = bearer(admin)
    for round_ in range(5):
        calendar = await client.post(
            "/v1/admin/business-hours",
            json={"name": f"cal {round_}", "timezone": "UTC", "weekly": {}, "is_default": True},
            headers=headers,
        )
        calendar_id = (await calendar.json())["id"]
        saved, deleted = await asyncio.gather(
            client.post(
                RULES,
                json={
                    "name": "after hours",
                    "conditions": {"conditions": [{"type": "business_hours", "inside": False}]},
                    "actions": [{"type": "priority", "value": 3}],
                },
                headers=headers,
            ),
            client.delete(f"/v1/admin/business-hours/{calendar_id}", headers=headers),
        )
        outcome = (saved.status, deleted.status)
        assert outcome in ((201, 409), (422, 204)), (
            outcome,
            await saved.text(),
            await deleted.text(),
        )
        if saved.status == 201:
            assert (
                await client.delete(f"{RULES}/{(await saved.json())['id']}", headers=headers)
            ).status == 204
            assert (
                await client.delete(f"/v1/admin/business-hours/{calendar_id}", headers=headers)
            ).status == 204


async def test_a_disabled_rule_still_holds_the_team_it_names(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    headers = world["admin"]
    disabled = await client.patch(
        f"{RULES}/{world['rule']}", json={"enabled": False}, headers=headers
    )
    assert disabled.status == 200
    held = await client.delete(f"/v1/admin/teams/{world['care']}", headers=headers)
    error = await error_of(held, 409, "team_in_use")
    assert error["details"]["rule_ids"] == [world["rule"]]
    assert (await client.delete(f"{RULES}/{world['rule']}", headers=headers)).status == 204
    assert (await client.delete(f"/v1/admin/teams/{world['care']}", headers=headers)).status == 204


async def test_pins_racing_a_recompute_keep_every_contacts_history_a_chain(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    headers = world["admin"]
    await db.execute("UPDATE tier_settings SET method = 'thresholds'")
    contact_ids = [
        await db.fetchval(
            "INSERT INTO contacts (name, value) VALUES ($1, $2) RETURNING id", f"c{i}", v
        )
        for i, v in enumerate([150000, 30000, 5000, 10] * 10)
    ]
    calls = [client.post("/v1/admin/tiers/recompute", headers=headers) for _ in range(2)]
    calls += [
        client.put(f"/v1/admin/contacts/{contact}/tier", json={"tier": 1 + i % 4}, headers=headers)
        for i, contact in enumerate(contact_ids[::2])
    ]
    calls += [
        client.patch(f"/v1/contacts/{contact}", json={"value": 25000}, headers=headers)
        for contact in contact_ids[1::4]
    ]
    for answer in await asyncio.gather(*calls):
        assert answer.status == 200, await answer.text()
    for contact in contact_ids:
        tier = await db.fetchval("SELECT tier FROM contacts WHERE id = $1", contact)
        chain = await db.fetch(
            "SELECT from_tier, to_tier FROM tier_changes WHERE contact_id = $1 ORDER BY id", contact
        )
        current = 4
        for change in chain:
            assert change["from_tier"] == current, (contact, [dict(c) for c in chain])
            current = change["to_tier"]
        assert current == tier, (contact, [dict(c) for c in chain])


# ------------------------------------------------------------ heavy requests are refused
# (a handler computing for seconds would stall every other request of the process)

# RE2 compiled this in ~0.2 s into ~5 MB at its default budget; within 1 MiB it is too large
EXPENSIVE = "[\\p{L}\\p{N}]{400}x%d"
# and this one took ~0.2 s to search 100,000 characters
SLOW = "[\\p{L}]{1,50}[\\p{L}]{1,50}Z"


async def test_an_expression_too_costly_to_compile_is_refused(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    conditions = [{"type": "text", "regex": EXPENSIVE % i} for i in range(30)]
    body = {
        "name": "heavy",
        "conditions": {"match": "any", "conditions": conditions},
        "actions": [{"type": "priority", "value": 1}],
    }
    before = await table_digests(db, WATCHED)
    answer = await client.post(RULES, json=body, headers=world["admin"])
    error = await error_of(answer, 422, "invalid_regex")
    assert error["details"]["path"] == "conditions[0].regex"
    assert await table_digests(db, WATCHED) == before


async def test_a_dry_run_takes_a_message_sized_sample_and_a_bounded_number_of_expressions(
    client: Client, db: asyncpg.Pool, world: dict[str, Any]
) -> None:
    def dry_run(text: str, rules: int, per_rule: int, regex: str = "(x|y)z") -> dict[str, Any]:
        condition = {"type": "text", "regex": regex, "not": True}
        rule = {
            "name": "many",
            "conditions": {"conditions": [condition] * per_rule},
            "actions": [{"type": "priority", "value": 1}],
        }
        return {"message": {"channel": "web", "text": text}, "rules": [rule] * rules}

    async def test(body: dict[str, Any]) -> ClientResponse:
        return await client.post(f"{RULES}/test", json=body, headers=world["supervisor"])

    await error_of(await test(dry_run("abcdefghij" * 10_000, 1, 1)), 422, "validation_error")
    await error_of(await test(dry_run("abcdefghij", 3, 34)), 422, "validation_error")
    refused = await error_of(await test(dry_run("abc", 1, 1, SLOW)), 422, "invalid_regex")
    assert refused["details"]["path"] == "rules[0].conditions[0].regex"
    answer = await test(dry_run("abcdefghij" * 1_000, 2, 50))
    assert answer.status == 200, await answer.text()
    assert [m["index"] for m in (await answer.json())["matched"]] == [0, 1]


async def test_two_admins_stepping_each_other_down_at_once_leave_an_admin(
    client: Client, db: asyncpg.Pool
) -> None:
    first_id, first = await make_agent(db, role=Role.ADMIN)
    second_id, second = await make_agent(db, role=Role.ADMIN)
    answers = await asyncio.gather(
        client.patch(
            f"/v1/admin/agents/{second_id}", json={"role": "agent"}, headers=bearer(first)
        ),
        client.patch(
            f"/v1/admin/agents/{first_id}", json={"role": "agent"}, headers=bearer(second)
        ),
    )
    assert sorted(a.status for a in answers) in ([200, 403], [200, 409]), [
        a.status for a in answers
    ]
    assert await db.fetchval("SELECT count(*) FROM agents WHERE role = 'admin'") == 1
