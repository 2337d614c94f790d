"""/v1/admin/care over the real app: the settings as stored, a PUT that replaces what it names
and keeps the rest, roles, every refusal with its code and nothing written, and the store's
load() the care jobs read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.domain.care import CareSettings, follow_up_due, zone
from contactcenter.domain.enums import Role
from contactcenter.store import care_settings
from tests.helpers import bearer, call, error_code, make_agent, table_digests

Client = TestClient[Any, Any]
BASE = "/v1/admin/care"
SEEDED = {
    "birthday_enabled": True,
    "birthday_hour": 9,
    "birthday_task_tiers": [],
    "follow_up_enabled": True,
    "follow_up_days": {"1": 1, "2": 2, "3": 3, "4": 3},
    "recovery_threshold": 2,
    "recovery_priority": 9,
    "quiet_end": "08:00",
    "quiet_start": "21:00",
    "default_timezone": "UTC",
    "default_locale": "en",
    "survey_valid_days": 14,
}


@pytest.fixture(autouse=True)
async def restored_care_tables(db: asyncpg.Pool) -> AsyncIterator[None]:
    """templates and care_settings as they were (the suite does not empty them): tests here
    change them freely."""
    async with db.acquire() as conn:
        templates = await conn.fetchval("SELECT coalesce(jsonb_agg(t), '[]') FROM templates t")
        settings = await conn.fetchval("SELECT coalesce(jsonb_agg(c), '[]') FROM care_settings c")
    yield
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM templates")
        await conn.execute(
            "INSERT INTO templates SELECT * FROM jsonb_populate_recordset(NULL::templates, $1)",
            templates,
        )
        await conn.execute("DELETE FROM care_settings")
        await conn.execute(
            "INSERT INTO care_settings"
            " SELECT * FROM jsonb_populate_recordset(NULL::care_settings, $1)",
            settings,
        )


async def put(client: Client, headers: dict[str, str], body: Any) -> dict[str, Any]:
    status, answer = await call(client, "PUT", BASE, headers, body)
    assert status == 200, answer
    return dict(answer)


async def test_the_seeded_settings_are_shown_as_the_api_writes_them(
    client: Client, admin: dict[str, str]
) -> None:
    status, body = await call(client, "GET", BASE, admin)
    assert status == 200
    assert body == SEEDED


async def test_a_put_replaces_what_it_names_and_keeps_the_rest(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    changed = await put(
        client,
        admin,
        {
            "birthday_hour": 10,
            "birthday_task_tiers": [2, 1],
            "quiet_end": "07:30",
            "default_timezone": "Asia/Shanghai",
            "default_locale": "zh_cn",
        },
    )
    assert changed == {
        **SEEDED,
        "birthday_hour": 10,
        "birthday_task_tiers": [1, 2],
        "quiet_end": "07:30",
        "default_timezone": "Asia/Shanghai",
        "default_locale": "zh-CN",
    }
    # a second PUT keeps the first's changes
    again = await put(client, admin, {"follow_up_enabled": False, "recovery_threshold": 0})
    assert again == {**changed, "follow_up_enabled": False, "recovery_threshold": 0}
    assert (await call(client, "GET", BASE, admin))[1] == again
    # and what the care jobs read is the same
    assert await care_settings.load(db) == CareSettings(
        birthday_hour=10,
        birthday_task_tiers=frozenset({1, 2}),
        follow_up_enabled=False,
        recovery_threshold=0,
        quiet_end=time(7, 30),
        default_timezone="Asia/Shanghai",
        default_locale="zh-CN",
    )
    # an empty PUT changes nothing
    assert await put(client, admin, {}) == again


async def test_follow_up_days_are_replaced_whole_and_a_tier_left_out_gets_none(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    changed = await put(client, admin, {"follow_up_days": {"4": 30, "1": 5}})
    assert changed["follow_up_days"] == {"1": 5, "4": 30}
    settings = await care_settings.load(db)
    assert settings.follow_up_days == {1: 5, 4: 30}
    resolved_at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert follow_up_due(resolved_at, 2, zone(None, settings), settings) is None
    assert follow_up_due(resolved_at, 1, zone(None, settings), settings) == datetime(
        2026, 3, 7, 10, tzinfo=UTC
    )
    # no tier at all: no follow-ups
    assert (await put(client, admin, {"follow_up_days": {}}))["follow_up_days"] == {}


async def test_supervisors_read_admins_write_agents_neither(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    _, agent_token = await make_agent(db, name="Agent", role=Role.AGENT)
    _, supervisor_token = await make_agent(db, name="Sup", role=Role.SUPERVISOR)
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    before = await table_digests(db, ("care_settings",))
    assert (await call(client, "GET", BASE, supervisor))[0] == 200
    status, body = await call(client, "PUT", BASE, supervisor, {"birthday_hour": 10})
    assert (status, error_code(body)) == (403, "forbidden")
    for method in ("GET", "PUT"):
        status, body = await call(client, method, BASE, agent, {})
        assert (status, error_code(body)) == (403, "forbidden")
        status, body = await call(client, method, BASE, {}, {})
        assert (status, error_code(body)) == (401, "missing_token")
    assert await table_digests(db, ("care_settings",)) == before


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"birthday_hour": 24}, "validation_error", "birthday_hour"),
        ({"birthday_hour": "9"}, "validation_error", "birthday_hour"),
        ({"birthday_hour": 9.0}, "validation_error", "birthday_hour"),
        ({"birthday_enabled": "yes"}, "validation_error", "birthday_enabled"),
        ({"birthday_enabled": None}, "validation_error", "body"),
        ({"birthday_task_tiers": [1, 1]}, "validation_error", "birthday_task_tiers"),
        ({"birthday_task_tiers": [5]}, "validation_error", "birthday_task_tiers.0"),
        ({"birthday_task_tiers": [0]}, "validation_error", "birthday_task_tiers.0"),
        ({"follow_up_days": {"5": 1}}, "validation_error", "follow_up_days"),
        ({"follow_up_days": {"gold": 1}}, "validation_error", "follow_up_days"),
        ({"follow_up_days": {"1": -1}}, "validation_error", "follow_up_days.1"),
        ({"follow_up_days": {"1": 366}}, "validation_error", "follow_up_days.1"),
        ({"follow_up_days": [1, 2]}, "validation_error", "follow_up_days"),
        ({"recovery_threshold": 6}, "validation_error", "recovery_threshold"),
        ({"recovery_threshold": -1}, "validation_error", "recovery_threshold"),
        ({"recovery_priority": 11}, "validation_error", "recovery_priority"),
        ({"quiet_end": "8:00"}, "validation_error", "quiet_end"),
        ({"quiet_end": "24:00"}, "validation_error", "quiet_end"),
        ({"quiet_start": "21:00:00"}, "validation_error", "quiet_start"),
        ({"quiet_start": 2100}, "validation_error", "quiet_start"),
        ({"survey_valid_days": 0}, "validation_error", "survey_valid_days"),
        ({"survey_valid_days": 91}, "validation_error", "survey_valid_days"),
        ({"default_timezone": "Mars/Olympus_Mons"}, "invalid_timezone", "default_timezone"),
        ({"default_timezone": "x" * 65}, "validation_error", "default_timezone"),
        ({"default_timezone": "../../etc/passwd"}, "invalid_timezone", "default_timezone"),
        ({"default_locale": "english"}, "invalid_locale", "default_locale"),
        ({"default_locale": "zh\u0000"}, "validation_error", "default_locale"),
        ({"quiet_end": "21:00", "quiet_start": "08:00"}, "invalid_quiet_hours", "quiet_end"),
        ({"quiet_end": "09:00", "quiet_start": "09:00"}, "invalid_quiet_hours", "quiet_end"),
        ({"birthday_hour": 7}, "birthday_hour_in_quiet_hours", "birthday_hour"),
        ({"birthday_hour": 21}, "birthday_hour_in_quiet_hours", "birthday_hour"),
        # the stored hour (9) falls out of the new quiet hours
        ({"quiet_end": "09:30"}, "birthday_hour_in_quiet_hours", "birthday_hour"),
        ({"quiet_start": "09:00"}, "birthday_hour_in_quiet_hours", "birthday_hour"),
        ({"birthday_hours": 9}, "validation_error", "birthday_hours"),
    ],
)
async def test_bad_settings_are_refused_with_a_code_and_nothing_written(
    client: Client,
    admin: dict[str, str],
    db: asyncpg.Pool,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    before = await table_digests(db, ("care_settings",))
    status, answer = await call(client, "PUT", BASE, admin, body)
    assert (status, error_code(answer)) == (422, code), answer
    details = answer["error"]["details"]
    fields = [f["field"] for f in details["fields"]] if "fields" in details else [details["field"]]
    assert field in fields, answer
    assert await table_digests(db, ("care_settings",)) == before


async def test_the_birthday_hour_may_be_the_first_allowed_hour_not_the_last(
    client: Client, admin: dict[str, str]
) -> None:
    early = await put(
        client, admin, {"quiet_end": "06:00", "quiet_start": "22:00", "birthday_hour": 6}
    )
    assert (early["birthday_hour"], early["quiet_end"]) == (6, "06:00")
    late = await put(client, admin, {"birthday_hour": 21})
    assert late["birthday_hour"] == 21
    status, body = await call(client, "PUT", BASE, admin, {"birthday_hour": 22})
    assert (status, error_code(body)) == (422, "birthday_hour_in_quiet_hours")
    assert body["error"]["details"] == {
        "field": "birthday_hour",
        "quiet_end": "06:00",
        "quiet_start": "22:00",
    }


async def test_without_its_row_care_runs_on_the_defaults_and_a_save_brings_it_back(
    db: asyncpg.Pool,
) -> None:
    await db.execute("DELETE FROM care_settings")
    assert await care_settings.load(db) == CareSettings()
    await care_settings.save(db, CareSettings(birthday_hour=11, follow_up_days={3: 7}))
    stored = await db.fetchrow("SELECT birthday_hour, follow_up_days FROM care_settings")
    assert stored is not None
    assert (stored["birthday_hour"], stored["follow_up_days"]) == (11, {"3": 7})
    assert (await care_settings.load(db)).follow_up_days == {3: 7}
