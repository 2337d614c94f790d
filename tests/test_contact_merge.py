"""POST /v1/contacts/merge: everything of one contact moves to the other, nothing is lost, the
merged contact never comes back (not even from a message racing the merge), and the merge is
audited; GET /v1/contacts/{id}/merges lists it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, IdentityKind, Role
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services.ingest import IngestResult, ingest
from contactcenter.store.contact_merges import MOVED_TABLES
from tests.helpers import bearer, call, error_code, make_agent, new_client_id, table_digests

Client = TestClient[Any, Any]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# every foreign key to contacts (id), as the database knows them
FOREIGN_KEYS_TO_CONTACTS = """
SELECT kcu.table_name, kcu.column_name
FROM information_schema.referential_constraints rc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_schema = rc.constraint_schema AND kcu.constraint_name = rc.constraint_name
JOIN information_schema.constraint_column_usage ccu
  ON ccu.constraint_schema = rc.unique_constraint_schema
 AND ccu.constraint_name = rc.unique_constraint_name
WHERE ccu.table_name = 'contacts' AND ccu.column_name = 'id'
ORDER BY 1, 2
"""


async def supervisor(db: asyncpg.Pool) -> dict[str, str]:
    _, token = await make_agent(db, name="Sam Supervisor", role=Role.SUPERVISOR, online=False)
    return bearer(token)


async def contact(db: asyncpg.Pool, address: str, **columns: Any) -> int:
    """A contact with an e-mail address and the given columns."""
    contact_id: int = await db.fetchval("INSERT INTO contacts DEFAULT VALUES RETURNING id")
    for name, value in columns.items():
        # column names come from this file only
        await db.execute(f"UPDATE contacts SET {name} = $2 WHERE id = $1", contact_id, value)
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'email', $2)",
        contact_id,
        address,
    )
    return contact_id


async def mail_from(conns: Conns, *addresses: str, text: str = "hello") -> IngestResult:
    return await ingest(
        conns,
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=f"<{new_client_id()}@example.com>",
            text=text,
            identities=tuple(Identity(IdentityKind.EMAIL, a) for a in addresses),
        ),
    )


async def merge(
    client: Client, headers: dict[str, str], into_id: Any, from_id: Any
) -> tuple[int, Any]:
    return await call(
        client, "POST", "/v1/contacts/merge", headers, {"into_id": into_id, "from_id": from_id}
    )


async def care_send(
    db: asyncpg.Pool, contact_id: int, kind: str, occasion: str, conversation_id: int | None
) -> int:
    send_id: int = await db.fetchval(
        "INSERT INTO care_sends (kind, occasion, contact_id, conversation_id, channel, due_at,"
        " status, sent_at) VALUES ($1, $2, $3, $4, 'email', $5, 'sent', $5) RETURNING id",
        kind,
        occasion,
        contact_id,
        conversation_id,
        NOW,
    )
    return send_id


async def consent(db: asyncpg.Pool, contact_id: int, channel: str, granted: bool) -> None:
    await db.execute(
        "INSERT INTO contact_consents (contact_id, channel, granted, source, changed_at)"
        " VALUES ($1, $2, $3, 'api', $4)",
        contact_id,
        channel,
        granted,
        NOW,
    )


async def rows_of(db: asyncpg.Pool, contact_id: int) -> dict[str, int]:
    """Rows pointing at the contact, per referencing table."""
    return {
        table: await db.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', contact_id
        )
        for table, column in MOVED_TABLES
    }


async def totals(db: asyncpg.Pool) -> dict[str, int]:
    tables = [t for t, _ in MOVED_TABLES] + ["messages", "contacts"]
    return {t: await db.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}


async def two_full_contacts(db: asyncpg.Pool, conns: Conns) -> tuple[int, int, dict[str, int]]:
    """Two contacts with a row in every table that points at contacts, and two conflicts (a
    birthday greeting of the same year, an e-mail consent); (into, from, their ids)."""
    manager_id, _ = await make_agent(db, name="Li Wei", online=False)
    into_id = await contact(
        db,
        "mei@example.com",
        name="Mei Chen",
        tags=["vip", "wholesale"],
        fields={"plan": "enterprise", "region": "north"},
        value=500,
        locale="zh-CN",
    )
    from_id = await contact(
        db,
        "mei.chen@work.example",
        name="M. Chen",
        tags=["wholesale", "newsletter"],
        fields={"plan": "basic", "seats": 40},
        value=300,
        birthday=datetime(1990, 5, 17).date(),
        timezone="Asia/Shanghai",
        locale="en",
        account_manager_id=manager_id,
    )
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'phone', $2)",
        from_id,
        "+8613800138000",
    )
    into_conversation = (await mail_from(conns, "mei@example.com")).conversation_id
    from_message = await mail_from(conns, "mei.chen@work.example", text="my order?")
    assert from_message.contact_id == from_id
    from_conversation = from_message.conversation_id
    for contact_id in (into_id, from_id):
        await db.execute(
            "INSERT INTO tier_changes (contact_id, from_tier, to_tier, reason) VALUES ($1, 4, 3,"
            " 'recompute')",
            contact_id,
        )
    await care_send(db, into_id, "birthday", "2026", None)
    await care_send(db, from_id, "birthday", "2026", None)  # conflict: into's is kept
    await care_send(db, from_id, "birthday", "2025", None)
    visit = await care_send(
        db, from_id, "follow_up", f"conversation:{from_conversation}", from_conversation
    )
    await db.execute(
        "INSERT INTO satisfaction_scores (care_send_id, conversation_id, contact_id, tier,"
        " channel, score, answered_by, created_at) VALUES ($1, $2, $3, 4, 'email', 5, 'link', $4)",
        visit,
        from_conversation,
        from_id,
        NOW,
    )
    await consent(db, into_id, "email", True)
    await consent(db, from_id, "email", False)  # conflict: into's is kept
    await consent(db, from_id, "sms", True)
    return into_id, from_id, {"into_conversation": into_conversation, "from": from_conversation}


async def test_the_tables_that_point_at_contacts_are_the_ones_a_merge_moves(
    db: asyncpg.Pool,
) -> None:
    """A new table with a foreign key to contacts must be added to the merge (or its rows
    would be deleted with the merged contact, or block its deletion)."""
    found = [(r["table_name"], r["column_name"]) for r in await db.fetch(FOREIGN_KEYS_TO_CONTACTS)]
    assert found == sorted(MOVED_TABLES)


async def test_everything_moves_to_the_survivor_and_nothing_is_lost(
    client: Client, db: asyncpg.Pool, conns: Conns
) -> None:
    into_id, from_id, conversations = await two_full_contacts(db, conns)
    headers = await supervisor(db)
    found = [(r["table_name"], r["column_name"]) for r in await db.fetch(FOREIGN_KEYS_TO_CONTACTS)]
    into_before, from_before = await rows_of(db, into_id), await rows_of(db, from_id)
    assert all(from_before[t] > 0 for t, _ in found)  # the test covers every table
    totals_before = await totals(db)

    status, body = await merge(client, headers, into_id, from_id)

    assert status == 200, body
    dropped = {"care_sends": 1, "contact_consents": 1}
    after = await rows_of(db, into_id)
    for table, column in found:
        left = await db.fetchval(f'SELECT count(*) FROM "{table}" WHERE "{column}" = $1', from_id)
        assert left == 0, table
        assert after[table] == into_before[table] + from_before[table] - dropped.get(table, 0)
    assert await totals(db) == {
        **{t: n - dropped.get(t, 0) for t, n in totals_before.items()},
        "contacts": totals_before["contacts"] - 1,
    }
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE id = $1", from_id) == 0
    assert (
        await db.fetchval(
            "SELECT contact_id FROM conversations WHERE id = $1", conversations["from"]
        )
        == into_id
    )

    # the card: into's attributes unless null, tags united, fields into's per key
    assert body["id"] == into_id
    assert body["name"] == "Mei Chen"
    assert body["tags"] == ["vip", "wholesale", "newsletter"]
    assert body["fields"] == {"plan": "enterprise", "region": "north", "seats": 40}
    assert body["value"] == "500.00"  # the higher of 500 and 300
    assert (body["birthday"], body["timezone"], body["locale"]) == (
        "1990-05-17",
        "Asia/Shanghai",
        "zh-CN",
    )
    assert body["account_manager"]["name"] == "Li Wei"
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("email", "mei@example.com"),
        ("email", "mei.chen@work.example"),
        ("phone", "+8613800138000"),
    }
    assert body["consent"]["email"]["granted"] is True  # into's
    assert body["consent"]["sms"]["granted"] is True  # from's: into was never asked
    assert body["last_satisfaction"]["score"] == 5
    births = await db.fetch(
        "SELECT occasion FROM care_sends WHERE contact_id = $1 AND kind = 'birthday'"
        " ORDER BY occasion",
        into_id,
    )
    assert [r["occasion"] for r in births] == ["2025", "2026"]
    assert body["merged"]["counts"] == {
        "identities": 2,
        "conversations": 1,
        "tier_changes": 1,
        "satisfaction_scores": 1,
        "care_sends": 2,
        "care_sends_dropped": 1,
        "consents": 1,
        "consents_dropped": 1,
    }

    # the audit: who, when, the merged contact as it was, and the rows dropped
    audit = await db.fetchrow("SELECT * FROM contact_merges")
    assert audit is not None
    assert (audit["id"], audit["into_id"], audit["from_id"]) == (
        body["merged"]["id"],
        into_id,
        from_id,
    )
    assert audit["agent_name"] == "Sam Supervisor"
    assert audit["counts"] == body["merged"]["counts"]
    snapshot = audit["from_snapshot"]
    assert snapshot["contact"]["name"] == "M. Chen"
    assert snapshot["contact"]["value"] == 300
    assert len(snapshot["identities"]) == 2
    assert [(s["kind"], s["occasion"]) for s in snapshot["dropped"]["care_sends"]] == [
        ("birthday", "2026")
    ]
    assert [(c["channel"], c["granted"]) for c in snapshot["dropped"]["consents"]] == [
        ("email", False)
    ]


async def test_a_higher_value_of_the_merged_contact_is_kept_and_retiers_the_survivor(
    client: Client, db: asyncpg.Pool
) -> None:
    await db.execute("UPDATE tier_settings SET method = 'thresholds'")
    into_id = await contact(db, "a@example.com", value=100)
    from_id = await contact(db, "b@example.com", value=25000)
    headers = await supervisor(db)

    status, body = await merge(client, headers, into_id, from_id)

    assert status == 200, body
    assert (body["value"], body["tier"]) == ("25000.00", {"rank": 2, "label": "gold"})
    history = await db.fetch(
        "SELECT from_tier, to_tier, reason FROM tier_changes WHERE contact_id = $1", into_id
    )
    assert [tuple(r) for r in history] == [(4, 2, "value")]


async def test_a_message_from_the_merged_address_later_lands_on_the_survivor(
    client: Client, db: asyncpg.Pool, conns: Conns
) -> None:
    into_id = await contact(db, "keep@example.com")
    from_id = await contact(db, "old@example.com")
    status, body = await merge(client, await supervisor(db), into_id, from_id)
    assert status == 200, body

    result = await mail_from(conns, "old@example.com", text="me again")

    assert result.contact_id == into_id
    assert await db.fetchval("SELECT count(*) FROM contacts") == 1
    assert (
        await db.fetchval(
            "SELECT contact_id FROM conversations WHERE id = $1", result.conversation_id
        )
        == into_id
    )


async def test_a_merge_racing_a_message_from_the_merged_address_ends_with_one_contact(
    client: Client, db: asyncpg.Pool, conns: Conns
) -> None:
    headers = await supervisor(db)
    rounds = 20
    for round_ in range(rounds):
        into_id = await contact(db, f"keep{round_}@example.com")
        from_id = await contact(db, f"old{round_}@example.com")
        merged = merge(client, headers, into_id, from_id)
        # the message also brings a new address, which joins whichever contact it lands on
        message = mail_from(conns, f"old{round_}@example.com", f"new{round_}@example.com")
        if round_ % 2:
            (status, body), result = await asyncio.gather(merged, message)
        else:
            result, (status, body) = await asyncio.gather(message, merged)

        assert status == 200, body
        assert await db.fetchval("SELECT count(*) FROM contacts WHERE id = $1", from_id) == 0
        conversation_contact = await db.fetchval(
            "SELECT contact_id FROM conversations WHERE id = $1", result.conversation_id
        )
        assert conversation_contact == into_id
        owners = await db.fetch(
            "SELECT DISTINCT contact_id FROM contact_identities WHERE value = any($1::text[])",
            [f"old{round_}@example.com", f"new{round_}@example.com"],
        )
        assert [r["contact_id"] for r in owners] == [into_id]
    assert await db.fetchval("SELECT count(*) FROM contacts") == rounds


async def test_roles_unknown_and_same_contacts_are_refused_and_write_nothing(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    into_id = await contact(db, "a@example.com")
    from_id = await contact(db, "b@example.com")
    _, agent_token = await make_agent(db, online=False)
    before = await table_digests(db)

    assert (await merge(client, {}, into_id, from_id))[0] == 401
    status, body = await merge(client, bearer(agent_token), into_id, from_id)
    assert (status, error_code(body)) == (403, "forbidden")
    status, body = await merge(client, admin, into_id, into_id)
    assert (status, error_code(body)) == (422, "same_contact")
    for pair in ((into_id, 999_999), (999_999, from_id)):
        status, body = await merge(client, admin, *pair)
        assert (status, error_code(body)) == (404, "contact_not_found"), pair
        assert body["error"]["details"] == {"contact_id": 999_999}
    for pair in ((str(into_id), from_id), (into_id, None), (0, from_id), (into_id, True)):
        status, body = await merge(client, admin, *pair)
        assert (status, error_code(body)) == (422, "validation_error"), pair
    assert await table_digests(db) == before

    status, body = await merge(client, admin, into_id, from_id)  # an admin may
    assert status == 200, body


async def test_too_many_tags_together_refuse_the_merge_and_write_nothing(
    client: Client, db: asyncpg.Pool
) -> None:
    into_id = await contact(db, "a@example.com", tags=[f"a{i}" for i in range(30)])
    from_id = await contact(db, "b@example.com", tags=[f"b{i}" for i in range(30)])
    headers = await supervisor(db)
    before = await table_digests(db)

    status, body = await merge(client, headers, into_id, from_id)

    assert (status, error_code(body)) == (422, "too_many_tags")
    assert await table_digests(db) == before


async def test_the_merges_into_a_contact_are_listed_through_later_merges(
    client: Client, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    first = await contact(db, "a@example.com", name="A")
    second = await contact(db, "b@example.com", name="B")
    third = await contact(db, "c@example.com", name="C")
    headers = await supervisor(db)
    assert (await merge(client, headers, second, first))[0] == 200
    assert (await merge(client, admin, third, second))[0] == 200

    status, body = await call(client, "GET", f"/v1/contacts/{third}/merges", headers)

    assert status == 200, body
    assert [(m["into_id"], m["from_id"]) for m in body["items"]] == [
        (third, second),
        (second, first),
    ]
    assert [m["by"]["name"] for m in body["items"]] == ["Admin", "Sam Supervisor"]
    assert body["items"][1]["from_snapshot"]["contact"]["name"] == "A"
    assert body["items"][0]["counts"]["identities"] == 2  # B's own and A's

    _, agent_token = await make_agent(db, online=False)
    status, body = await call(client, "GET", f"/v1/contacts/{third}/merges", bearer(agent_token))
    assert (status, error_code(body)) == (403, "forbidden")
    status, body = await call(client, "GET", f"/v1/contacts/{first}/merges", headers)
    assert (status, error_code(body)) == (404, "contact_not_found")
