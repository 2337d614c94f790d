"""/v1/admin/business-hours over the real app: calendars admins write and supervisors read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.domain.business_hours import is_open
from contactcenter.domain.enums import Role
from contactcenter.store import business_hours
from tests.helpers import bearer, call, error_code, make_agent

Client = TestClient[Any, Any]
BASE = "/v1/admin/business-hours"
SHANGHAI_OFFICE = {
    "name": "Shanghai office",
    "timezone": "Asia/Shanghai",
    "weekly": {
        day: [["09:00", "12:00"], ["13:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
    },
    "country": "cn",
    "closed_dates": ["2026-03-03"],
    "open_dates": ["2026-03-07"],
}


async def open_at(client: Client, calendar_id: int, at: str, headers: dict[str, str]) -> bool:
    response = await client.get(f"{BASE}/{calendar_id}/open", params={"at": at}, headers=headers)
    assert response.status == 200, await response.text()
    answer = await response.json()
    return bool(answer["open"])


async def test_an_admin_keeps_a_calendar_and_asks_whether_it_is_open(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    status, created = await call(client, "POST", BASE, admin, SHANGHAI_OFFICE)
    assert status == 201, created
    calendar_id = created["id"]
    assert created["country"] == "CN" and created["subdivision"] is None
    assert created["weekly"]["mon"] == [["09:00", "12:00"], ["13:00", "18:00"]]
    assert "sat" not in created["weekly"]
    assert (created["closed_dates"], created["open_dates"]) == (["2026-03-03"], ["2026-03-07"])
    assert created["is_default"] is False

    # Monday 09:30 in Shanghai, asked in UTC and with an offset
    assert await open_at(client, calendar_id, "2026-03-02T01:30:00Z", admin)
    assert await open_at(client, calendar_id, "2026-03-02T09:30:00+08:00", admin)
    assert not await open_at(client, calendar_id, "2026-03-02T12:30:00+08:00", admin)  # lunch
    assert not await open_at(client, calendar_id, "2026-03-03T10:00:00+08:00", admin)  # closed
    assert await open_at(client, calendar_id, "2026-03-07T10:00:00+08:00", admin)  # opened
    assert not await open_at(client, calendar_id, "2026-10-01T10:00:00+08:00", admin)  # holiday
    assert await open_at(client, calendar_id, "2026-09-20T10:00:00+08:00", admin)  # 调休 Sunday
    # a "+" left unencoded in the query arrives as a space, and is understood
    response = await client.get(
        f"{BASE}/{calendar_id}/open?at=2026-03-02T09:30:00+08:00", headers=admin
    )
    answer = await response.json()
    assert (response.status, answer["open"]) == (200, True)
    assert answer["local_time"] == "2026-03-02T09:30:00+08:00"
    # without `at`: now, whatever that is
    response = await client.get(f"{BASE}/{calendar_id}/open", headers=admin)
    assert response.status == 200 and isinstance((await response.json())["open"], bool)
    for bad in ("yesterday", "2026-03-02T09:30:00", "2026-03-02"):
        response = await client.get(f"{BASE}/{calendar_id}/open", params={"at": bad}, headers=admin)
        assert (response.status, error_code(await response.json())) == (422, "invalid_query")

    status, changed = await call(
        client,
        "PATCH",
        f"{BASE}/{calendar_id}",
        admin,
        {"weekly": {"sat": [["10:00", "16:00"]]}, "closed_dates": []},
    )
    assert status == 200, changed
    assert changed["weekly"] == {"sat": [["10:00", "16:00"]]}
    assert changed["closed_dates"] == [] and changed["open_dates"] == ["2026-03-07"]
    assert changed["name"] == "Shanghai office" and changed["country"] == "CN"
    assert not await open_at(client, calendar_id, "2026-03-02T09:30:00+08:00", admin)
    assert await open_at(client, calendar_id, "2026-03-07T15:00:00+08:00", admin)

    status, listed = await call(client, "GET", BASE, admin)
    assert (status, [c["id"] for c in listed["items"]]) == (200, [calendar_id])
    status, read = await call(client, "GET", f"{BASE}/{calendar_id}", admin)
    assert (status, read) == (200, changed)

    status, body = await call(client, "POST", BASE, admin, SHANGHAI_OFFICE)
    assert (status, error_code(body)) == (409, "business_hours_exists")

    assert (await call(client, "DELETE", f"{BASE}/{calendar_id}", admin))[0] == 204
    for method in ("GET", "DELETE"):
        status, body = await call(client, method, f"{BASE}/{calendar_id}", admin)
        assert (status, error_code(body)) == (404, "business_hours_not_found")
    status, body = await call(client, "PATCH", f"{BASE}/{calendar_id}", admin, {"name": "x"})
    assert (status, error_code(body)) == (404, "business_hours_not_found")
    response = await client.get(f"{BASE}/{calendar_id}/open", headers=admin)
    assert response.status == 404


async def test_one_calendar_is_the_default_and_load_reads_it(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    assert await business_hours.load(db, None) is None
    status, first = await call(client, "POST", BASE, admin, {**SHANGHAI_OFFICE, "is_default": True})
    assert (status, first["is_default"]) == (201, True)
    status, second = await call(
        client,
        "POST",
        BASE,
        admin,
        {
            "name": "New York",
            "timezone": "America/New_York",
            "weekly": {"mon": [["09:00", "17:00"]]},
            "country": "US",
            "subdivision": "ny",
            "is_default": True,
        },
    )
    assert (status, second["is_default"], second["subdivision"]) == (201, True, "NY")
    defaults = await db.fetch("SELECT id FROM business_hours WHERE is_default")
    assert [r["id"] for r in defaults] == [second["id"]]

    loaded = await business_hours.load(db, None)
    assert loaded is not None and loaded.id == second["id"]
    assert loaded.timezone == "America/New_York" and loaded.subdivision == "NY"
    shanghai = await business_hours.load(db, first["id"])
    assert shanghai is not None and shanghai.country == "CN"
    assert is_open(shanghai, datetime.fromisoformat("2026-03-02T09:30:00+08:00"))
    assert await business_hours.load(db, 999999) is None

    status, body = await call(client, "PATCH", f"{BASE}/{first['id']}", admin, {"is_default": True})
    assert (status, body["is_default"]) == (200, True)
    assert (await business_hours.load(db, None)).id == first["id"]  # type: ignore[union-attr]
    status, body = await call(
        client, "PATCH", f"{BASE}/{first['id']}", admin, {"is_default": False}
    )
    assert (status, body["is_default"]) == (200, False)
    assert await business_hours.load(db, None) is None


async def test_a_calendar_a_rule_uses_is_not_deleted(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    status, calendar = await call(client, "POST", BASE, admin, SHANGHAI_OFFICE)
    assert status == 201
    team_id = await db.fetchval("SELECT id FROM teams WHERE is_default")
    rule_id = await db.fetchval(
        "INSERT INTO routing_rules (name, position, conditions, actions) "
        "VALUES ('after hours', 1, $1, $2) RETURNING id",
        {
            "match": "all",
            "conditions": [
                {"type": "business_hours", "inside": False, "calendar_id": calendar["id"]}
            ],
        },
        [{"type": "team", "team_id": team_id}],
    )
    status, body = await call(client, "DELETE", f"{BASE}/{calendar['id']}", admin)
    assert (status, error_code(body)) == (409, "business_hours_in_use")
    assert body["error"]["details"]["rule_ids"] == [rule_id]
    assert await db.fetchval("SELECT count(*) FROM business_hours") == 1


async def test_supervisors_read_calendars_and_agents_do_not(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    _, supervisor_token = await make_agent(db, role=Role.SUPERVISOR)
    _, agent_token = await make_agent(db)
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    status, calendar = await call(client, "POST", BASE, admin, SHANGHAI_OFFICE)
    path = f"{BASE}/{calendar['id']}"
    for read in (BASE, path, f"{path}/open"):
        assert (await call(client, "GET", read, supervisor))[0] == 200
        status, body = await call(client, "GET", read, agent)
        assert (status, error_code(body)) == (403, "forbidden")
    for method, where, body in (
        ("POST", BASE, {**SHANGHAI_OFFICE, "name": "Other"}),
        ("PATCH", path, {"name": "Renamed"}),
        ("DELETE", path, None),
    ):
        for who in (supervisor, agent):
            status, answer = await call(client, method, where, who, body)
            assert (status, error_code(answer)) == (403, "forbidden")
    assert await db.fetchval("SELECT name FROM business_hours") == "Shanghai office"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"timezone": "Asia/Beijing"}, "invalid_timezone"),
        ({"weekly": {"mon": [["17:00", "09:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["09:00", "12:00"], ["11:30", "14:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["09:00", "25:00"]]}}, "invalid_period"),
        ({"weekly": {"someday": [["09:00", "17:00"]]}}, "invalid_weekday"),
        ({"weekly": {"mon": [["09:00", "09:10"]] * 7}}, "too_many_periods"),
        ({"country": "XX"}, "unknown_country"),
        ({"country": "CN", "subdivision": "NY"}, "unknown_subdivision"),
        ({"closed_dates": ["2026-02-30"]}, "validation_error"),
        ({"open_dates": ["2026-03-03"], "closed_dates": ["2026-03-03"]}, "conflicting_dates"),
        ({"name": None}, "validation_error"),
        ({"weekly": None}, "validation_error"),
        ({"closed_dates": None}, "validation_error"),
        ({"is_default": None}, "validation_error"),
        ({"colour": "blue"}, "validation_error"),
    ],
)
async def test_bad_calendars_are_refused_with_a_code_and_nothing_changes(
    client: Client, db: asyncpg.Pool, admin: dict[str, str], change: dict[str, Any], expected: str
) -> None:
    status, calendar = await call(client, "POST", BASE, admin, SHANGHAI_OFFICE)
    assert status == 201
    before = dict(await db.fetchrow("SELECT * FROM business_hours"))
    status, body = await call(client, "PATCH", f"{BASE}/{calendar['id']}", admin, change)
    assert (status, error_code(body)) == (422, expected), body
    status, body = await call(
        client, "POST", BASE, admin, {**SHANGHAI_OFFICE, "name": "Second", **change}
    )
    assert (status, error_code(body)) == (422, expected), body
    assert dict(await db.fetchrow("SELECT * FROM business_hours")) == before
    assert await db.fetchval("SELECT count(*) FROM business_hours") == 1


async def test_a_change_is_checked_against_what_is_stored(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    body = {**SHANGHAI_OFFICE, "country": "US", "subdivision": "NY"}
    status, calendar = await call(client, "POST", BASE, admin, body)
    assert status == 201
    path = f"{BASE}/{calendar['id']}"
    # the stored subdivision is not one of China's
    status, answer = await call(client, "PATCH", path, admin, {"country": "CN"})
    assert (status, error_code(answer)) == (422, "unknown_subdivision")
    status, answer = await call(
        client, "PATCH", path, admin, {"country": "CN", "subdivision": None}
    )
    assert (status, answer["country"], answer["subdivision"]) == (200, "CN", None)
    status, answer = await call(client, "PATCH", path, admin, {"country": None})
    assert (status, answer["country"]) == (200, None)
