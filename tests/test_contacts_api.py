"""/v1/contacts/{id}: the card with its tier and attributes; supervisors and admins change
them, a new value moves the tier (with history), and bad input changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.domain.enums import Role
from tests.helpers import bearer, make_agent


async def new_contact(db: asyncpg.Pool, name: str | None = "Mei Chen") -> int:
    contact_id: int = await db.fetchval(
        "INSERT INTO contacts (name) VALUES ($1) RETURNING id", name
    )
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'email', $2)",
        contact_id,
        f"customer{contact_id}@example.com",
    )
    return contact_id


async def thresholds(db: asyncpg.Pool) -> None:
    await db.execute("UPDATE tier_settings SET method = 'thresholds'")


async def contact_row(db: asyncpg.Pool, contact_id: int) -> dict[str, Any]:
    return dict(
        await db.fetchrow(
            "SELECT name, value, tier, tags, fields, account_manager_id, updated_at"
            " FROM contacts WHERE id = $1",
            contact_id,
        )
    )


async def test_a_new_value_moves_the_tier_and_the_card_shows_it(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    await thresholds(db)
    manager_id, _ = await make_agent(db, name="Li Wei")
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    contact = await new_contact(db)

    patched = await client.patch(
        f"/v1/contacts/{contact}",
        json={
            "name": "  Mei Chen  ",
            "value": "25000.5",
            "tags": [" VIP ", "wholesale", "vip"],
            "fields": {"plan": "enterprise", "seats": 40, "renewal_due": True},
            "account_manager_id": manager_id,
        },
        headers=bearer(supervisor),
    )
    assert patched.status == 200, await patched.text()
    card = await patched.json()
    assert {k: card[k] for k in ("name", "value", "tier", "pinned", "tags", "fields")} == {
        "name": "Mei Chen",
        "value": "25000.50",
        "tier": {"rank": 2, "label": "gold"},
        "pinned": False,
        "tags": ["vip", "wholesale"],
        "fields": {"plan": "enterprise", "seats": 40, "renewal_due": True},
    }
    assert card["account_manager"] == {"id": manager_id, "name": "Li Wei"}
    assert card["identities"][0]["value"] == f"customer{contact}@example.com"
    history = await db.fetch(
        "SELECT from_tier, to_tier, reason, detail FROM tier_changes WHERE contact_id = $1",
        contact,
    )
    assert [tuple(r) for r in history] == [
        (4, 2, "value", {"value": "25000.50", "method": "thresholds"})
    ]

    # fields merge key by key, null removes one; tags are replaced; a JSON number works too
    again = await client.patch(
        f"/v1/contacts/{contact}",
        json={"value": 150000, "fields": {"seats": None, "region": "apac"}, "tags": []},
        headers=bearer(supervisor),
    )
    card = await again.json()
    assert (card["value"], card["tier"], card["tags"], card["fields"]) == (
        "150000.00",
        {"rank": 1, "label": "platinum"},
        [],
        {"plan": "enterprise", "renewal_due": True, "region": "apac"},
    )
    assert card["account_manager"] == {"id": manager_id, "name": "Li Wei"}  # left alone
    cleared = await client.patch(
        f"/v1/contacts/{contact}", json={"account_manager_id": None}, headers=bearer(supervisor)
    )
    assert (await cleared.json())["account_manager"] is None
    assert (
        await db.fetchval(
            "SELECT count(*) FROM tier_changes WHERE contact_id = $1 AND reason = 'value'", contact
        )
        == 2
    )


async def test_a_value_change_of_a_pinned_contact_keeps_the_pin(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    await thresholds(db)
    _, admin = await make_agent(db, role=Role.ADMIN)
    contact = await new_contact(db)
    pin = await client.put(
        f"/v1/admin/contacts/{contact}/tier", json={"tier": 1}, headers=bearer(admin)
    )
    assert pin.status == 200
    patched = await client.patch(
        f"/v1/contacts/{contact}", json={"value": 3000}, headers=bearer(admin)
    )
    card = await patched.json()
    assert (card["tier"]["rank"], card["pinned"]) == (1, True)
    assert await db.fetchval("SELECT computed_tier FROM contacts WHERE id = $1", contact) == 3
    assert [r["reason"] for r in await db.fetch("SELECT reason FROM tier_changes")] == ["pin"]


async def test_bad_input_is_refused_with_a_code_and_changes_nothing(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    await thresholds(db)
    _, admin = await make_agent(db, role=Role.ADMIN)
    contact = await new_contact(db)
    before = await contact_row(db, contact)
    url = f"/v1/contacts/{contact}"
    # each one valid change of value and name, then something wrong: none of it is written
    good = {"name": "Someone Else", "value": 500000}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"value": -1}, "invalid_value"),
        ({"value": "12.345"}, "invalid_value"),
        ({"value": "100000000000000"}, "invalid_value"),
        ({"value": "1e5"}, "invalid_value"),
        ({"value": "NaN"}, "invalid_value"),
        ({"value": None}, "validation_error"),
        ({"value": True}, "validation_error"),
        ({"tags": ["ok", ""]}, "invalid_tag"),
        ({"tags": ["x" * 51]}, "invalid_tag"),
        ({"tags": [f"t{i}" for i in range(51)]}, "too_many_tags"),
        ({"tags": None}, "validation_error"),
        ({"tags": [1]}, "validation_error"),
        ({"fields": {"Bad Key": 1}}, "invalid_field_key"),
        ({"fields": {"nested": {"a": 1}}}, "invalid_field_value"),
        ({"fields": {"long": "x" * 501}}, "invalid_field_value"),
        ({"fields": {f"k{i}": i for i in range(51)}}, "too_many_fields"),
        ({"fields": None}, "validation_error"),
        ({"account_manager_id": 999999}, "unknown_agent"),
        ({"account_manager_id": "1"}, "validation_error"),
        ({"name": ""}, "validation_error"),
        ({"name": "two\nlines"}, "validation_error"),
        ({"colour": "red"}, "validation_error"),
    ]
    for body, code in cases:
        refused = await client.patch(url, json={**good, **body}, headers=bearer(admin))
        assert refused.status == 422, (body, await refused.text())
        assert (await refused.json())["error"]["code"] == code, body
    assert await contact_row(db, contact) == before
    assert await db.fetchval("SELECT count(*) FROM tier_changes") == 0

    # fields merged past the limit are refused too, and leave the existing ones
    full = {f"k{i}": i for i in range(50)}
    assert (await client.patch(url, json={"fields": full}, headers=bearer(admin))).status == 200
    over = await client.patch(url, json={"fields": {"one_more": 1}}, headers=bearer(admin))
    assert (await over.json())["error"]["code"] == "too_many_fields"
    assert len((await contact_row(db, contact))["fields"]) == 50

    for raw, status in ((b"{", 400), (b"[]", 422)):
        sent = await client.patch(
            url, data=raw, headers={**bearer(admin), "Content-Type": "application/json"}
        )
        assert sent.status == status
    missing = await client.patch("/v1/contacts/999999", json=good, headers=bearer(admin))
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "contact_not_found"


async def test_agents_read_the_contacts_they_serve_and_change_none(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    await db.execute("INSERT INTO teams (name) VALUES ('Billing')")
    default_team = await db.fetchval("SELECT id FROM teams WHERE is_default")
    billing = await db.fetchval("SELECT id FROM teams WHERE name = 'Billing'")
    teammate_id, teammate = await make_agent(db)
    outsider_id, outsider = await make_agent(db, team="Billing")
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    contact = await new_contact(db)
    await db.execute(
        "INSERT INTO conversations (contact_id, channel, team_id) VALUES ($1, 'web', $2)",
        contact,
        default_team,
    )
    alone = await new_contact(db, name=None)  # no conversation at all

    assert (await client.get(f"/v1/contacts/{contact}", headers=bearer(teammate))).status == 200
    hidden = await client.get(f"/v1/contacts/{contact}", headers=bearer(outsider))
    assert hidden.status == 404
    assert (await hidden.json())["error"]["code"] == "contact_not_found"
    # ...until a conversation of the contact is assigned to them, in whatever team
    await db.execute(
        "INSERT INTO conversations (contact_id, channel, team_id, assignee_id)"
        " VALUES ($1, 'email', $2, $3)",
        contact,
        default_team,
        outsider_id,
    )
    shown = await client.get(f"/v1/contacts/{contact}", headers=bearer(outsider))
    assert shown.status == 200
    card = await shown.json()
    assert (card["tier"], card["value"], card["fields"], card["account_manager"]) == (
        {"rank": 4, "label": "bronze"},
        "0.00",
        {},
        None,
    )
    assert (await client.get(f"/v1/contacts/{alone}", headers=bearer(teammate))).status == 404
    assert (await client.get(f"/v1/contacts/{alone}", headers=bearer(supervisor))).status == 200
    assert billing and teammate_id

    for token in (teammate, outsider):
        refused = await client.patch(
            f"/v1/contacts/{contact}", json={"value": 100}, headers=bearer(token)
        )
        assert refused.status == 403
    assert (await client.get(f"/v1/contacts/{contact}")).status == 401
    assert (await client.get("/v1/contacts/abc", headers=bearer(supervisor))).status == 404


async def test_the_conversation_view_carries_the_contacts_tier(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    await thresholds(db)
    _, admin = await make_agent(db, role=Role.ADMIN)
    contact = await new_contact(db)
    conversation = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel) VALUES ($1, 'web') RETURNING id", contact
    )
    await client.patch(
        f"/v1/contacts/{contact}",
        json={"value": "2500", "tags": ["b2b"]},
        headers=bearer(admin),
    )
    view = await client.get(f"/v1/conversations/{conversation}", headers=bearer(admin))
    assert view.status == 200, await view.text()
    card = (await view.json())["contact"]
    assert (card["tier"], card["value"], card["tags"]) == (
        {"rank": 3, "label": "silver"},
        "2500.00",
        ["b2b"],
    )
