"""POST /v1/admin/contacts/import against the real app: customers created and updated by
identity, the same file twice changes nothing, a bad row is reported while the good ones are
written, the header is checked before anything, values and pins move tiers with history, a
big file streams through, and the size cap says exactly what was kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.api.app import create_app
from contactcenter.api.contact_import import IMPORT_LIMITS, ImportLimits
from contactcenter.api.middleware import AccessLogger
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, IdentityKind, Role
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services import ingest
from contactcenter.settings import Settings
from tests.helpers import bearer, make_agent, new_client_id

Client = TestClient[Any, Any]
CSV = {"Content-Type": "text/csv"}


async def post_csv(
    client: Client, token: str, body: Any, *, query: str = "", headers: dict[str, str] = CSV
) -> tuple[int, dict[str, Any]]:
    data = body.encode() if isinstance(body, str) else body
    response = await client.post(
        f"/v1/admin/contacts/import{query}", data=data, headers={**headers, **bearer(token)}
    )
    return response.status, await response.json()


async def admin(db: asyncpg.Pool) -> tuple[int, str]:
    return await make_agent(db, name="Admin", role=Role.ADMIN)


async def contact_of(db: asyncpg.Pool, kind: str, value: str) -> dict[str, Any] | None:
    row = await db.fetchrow(
        """
        SELECT c.id, c.name, c.value::text AS value, c.tier, c.pinned_tier, c.tags, c.fields,
               c.account_manager_id, c.updated_at
        FROM contacts c JOIN contact_identities ci ON ci.contact_id = c.id
        WHERE ci.kind = $1 AND ci.value = $2
        """,
        kind,
        value,
    )
    return None if row is None else dict(row)


async def identities_of(db: asyncpg.Pool, contact_id: int) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT kind, value FROM contact_identities WHERE contact_id = $1 ORDER BY kind",
        contact_id,
    )
    return [(r["kind"], r["value"]) for r in rows]


async def count(db: asyncpg.Pool, table: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {table}"))


async def existing_contact(db: asyncpg.Pool, email: str, name: str | None = None) -> int:
    contact_id: int = await db.fetchval(
        "INSERT INTO contacts (name) VALUES ($1) RETURNING id", name
    )
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'email', $2)",
        contact_id,
        email,
    )
    return contact_id


async def thresholds(db: asyncpg.Pool) -> None:
    await db.execute("UPDATE tier_settings SET method = 'thresholds'")


async def test_creates_updates_and_the_same_file_again_changes_nothing(
    client: Client, db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="contactcenter.services.contact_import")
    await thresholds(db)
    _, token = await admin(db)
    manager_id, _ = await make_agent(db, name="Li Wei", email="Li.Wei@Agents.example")
    known = await existing_contact(db, "mei@example.com", "Mei")
    csv = (
        "\ufeffEmail,Phone,NAME,value,Tags,tier,account_manager,field:plan,field:seats\r\n"
        "MEI@example.com,,Mei Chen,25000.5, VIP ;wholesale,,li.wei@agents.example,gold,40\r\n"
        ',138 0013 8000,"Wang, Fang",,,,,,\r\n'
        "tom@example.com,+44 20 7946 0958,Tom,120,,,,basic,\r\n"
    )

    status, body = await post_csv(client, token, csv, query="?region=CN")

    assert status == 200, body
    assert body == {
        "rows": 3,
        "created": 2,
        "updated": 1,
        "unchanged": 0,
        "errors": [],
        "error_count": 0,
        "stopped_at_line": None,
    }
    mei = await contact_of(db, "email", "mei@example.com")
    assert mei is not None and mei["id"] == known
    assert {k: mei[k] for k in ("name", "value", "tier", "tags", "fields")} == {
        "name": "Mei Chen",
        "value": "25000.50",
        "tier": 2,
        "tags": ["vip", "wholesale"],
        "fields": {"plan": "gold", "seats": "40"},
    }
    assert mei["account_manager_id"] == manager_id
    wang = await contact_of(db, "phone", "+8613800138000")
    assert wang is not None and wang["name"] == "Wang, Fang" and wang["value"] == "0.00"
    tom = await contact_of(db, "email", "tom@example.com")
    assert tom is not None and tom["fields"] == {"plan": "basic"}
    assert await identities_of(db, tom["id"]) == [
        ("email", "tom@example.com"),
        ("phone", "+442079460958"),
    ]
    assert await count(db, "contacts") == 3
    changes = await count(db, "tier_changes")
    assert changes == 1  # Mei's value moved her 4 -> 2
    logged = [r for r in caplog.records if r.getMessage() == "contacts imported"]
    assert [(r.rows, r.contacts_created) for r in logged] == [(3, 2)]  # type: ignore[attr-defined]

    again_status, again = await post_csv(client, token, csv, query="?region=CN")

    assert again_status == 200, again
    assert (again["rows"], again["created"], again["updated"], again["unchanged"]) == (3, 0, 0, 3)
    assert await count(db, "contacts") == 3
    assert await count(db, "contact_identities") == 4
    assert await count(db, "tier_changes") == changes
    still = await contact_of(db, "email", "mei@example.com")
    assert still == mei  # updated_at included: nothing was written

    # a row that adds an address to a known contact, found by its phone
    status, body = await post_csv(
        client, token, "phone,email\n+86 138 0013 8000,wang@example.com\n"
    )
    assert (status, body["created"], body["updated"]) == (200, 0, 1)
    assert await identities_of(db, wang["id"]) == [
        ("email", "wang@example.com"),
        ("phone", "+8613800138000"),
    ]


async def test_each_bad_row_is_reported_and_the_good_rows_are_written(
    client: Client, db: asyncpg.Pool
) -> None:
    _, token = await admin(db)
    await make_agent(db, email="ana@agents.example")
    first = await existing_contact(db, "first@example.com")
    second = await existing_contact(db, "second@example.com")
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'phone', $2)",
        second,
        "+14155550100",
    )
    csv = "\n".join(
        [
            "email,phone,name,value,tier,account_manager,tags",
            "good1@example.com,,Good One,10,,,",  # 2
            "not-an-address,,Bad Email,,,,",  # 3
            "badvalue@example.com,,,12.345,,,",  # 4
            "badtier@example.com,,,,5,,",  # 5
            "badagent@example.com,,,,,nobody@agents.example,",  # 6
            "first@example.com,+1 415 555 0100,,,,,",  # 7: two contacts
            "nobody@example.com,12345,,,,,",  # 8: not a phone number
            ",,Nobody,,,,",  # 9: no identity
            "cells@example.com,,,,,,,extra",  # 10: more cells than columns
            "badname@example.com,,\x07bell,,,,",  # 11
            "badtag@example.com,,,,,," + "x" * 51,  # 12
            "",  # 13: blank, skipped
            "good2@example.com,,Good Two,,1,ANA@agents.example,a;b",  # 14
        ]
    )

    status, body = await post_csv(client, token, csv, query="?region=US")

    assert status == 200, body
    assert [(e["row"], e["code"]) for e in body["errors"]] == [
        (3, "invalid_email"),
        (4, "invalid_value"),
        (5, "invalid_tier"),
        (6, "unknown_agent"),
        (7, "conflicting_identities"),
        (8, "invalid_phone"),
        (9, "missing_identity"),
        (10, "too_many_cells"),
        (11, "invalid_name"),
        (12, "invalid_tag"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert (body["rows"], body["created"], body["updated"], body["error_count"]) == (12, 2, 0, 10)
    assert await count(db, "contacts") == 4  # the two known and the two good rows
    good2 = await contact_of(db, "email", "good2@example.com")
    assert good2 is not None and good2["pinned_tier"] == 1 and good2["tags"] == ["a", "b"]
    assert await identities_of(db, first) == [("email", "first@example.com")]
    assert await identities_of(db, second) == [
        ("email", "second@example.com"),
        ("phone", "+14155550100"),
    ]


async def test_the_header_is_checked_before_any_row_is_written(
    client: Client, db: asyncpg.Pool
) -> None:
    _, token = await admin(db)
    row = "\nnew@example.com,New,1\n"
    cases = {
        "email,name,emial": "unknown_column",
        "email,name,Name": "duplicate_column",
        "name,value,tags": "no_identity_column",
        "email,name,field:Plan": "invalid_field_key",
        '"email,name': "invalid_csv",
    }
    for header, code in cases.items():
        status, body = await post_csv(client, token, header + row)
        assert (status, body["error"]["code"]) == (422, code), (header, body)
    status, body = await post_csv(client, token, "")
    assert (status, body["error"]["code"]) == (422, "missing_header")
    assert await count(db, "contacts") == 0

    # only the header: nothing to do
    status, body = await post_csv(client, token, "email,phone\n")
    assert (status, body["rows"], body["created"]) == (200, 0, 0)


async def test_admins_only_and_the_body_must_be_csv(client: Client, db: asyncpg.Pool) -> None:
    csv = "email\nsomeone@example.com\n"
    for role in (Role.AGENT, Role.SUPERVISOR):
        _, token = await make_agent(db, role=role)
        status, body = await post_csv(client, token, csv)
        assert (status, body["error"]["code"]) == (403, "forbidden")
    response = await client.post("/v1/admin/contacts/import", data=csv, headers=CSV)
    assert response.status == 401
    _, token = await admin(db)
    status, body = await post_csv(client, token, csv, headers={"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    status, body = await post_csv(
        client, token, csv, headers={"Content-Type": "text/csv; charset=latin-1"}
    )
    assert status == 415
    status, body = await post_csv(client, token, csv, query="?region=XX")
    assert (status, body["error"]["code"]) == (422, "invalid_region")
    assert await count(db, "contacts") == 0

    status, body = await post_csv(
        client, token, csv, headers={"Content-Type": "text/csv; charset=UTF-8"}
    )
    assert (status, body["created"]) == (200, 1)


async def test_values_and_pins_move_tiers_with_their_history(
    client: Client, db: asyncpg.Pool
) -> None:
    await thresholds(db)
    admin_id, token = await admin(db)
    pinned = await existing_contact(db, "pinned@example.com")
    await db.execute("UPDATE contacts SET pinned_tier = 2, tier = 2 WHERE id = $1", pinned)
    csv = (
        "email,value,tier\n"
        "rich@example.com,150000,\n"  # new, valued: 4 -> 1 by value
        "vip@example.com,,1\n"  # new, pinned: 4 -> 1 by pin
        "pinned@example.com,2500,none\n"  # unpinned: 2 -> 3 (its value's tier)
        "both@example.com,25000,3\n"  # value 4 -> 2, then pinned 2 -> 3
    )

    status, body = await post_csv(client, token, csv)

    assert status == 200, body
    assert (body["created"], body["updated"]) == (3, 1)
    rows = await db.fetch(
        """
        SELECT ci.value AS email, h.from_tier, h.to_tier, h.reason, h.changed_by, h.detail
        FROM tier_changes h JOIN contact_identities ci ON ci.contact_id = h.contact_id
        ORDER BY h.id
        """
    )
    history = [(r["email"], r["from_tier"], r["to_tier"], r["reason"]) for r in rows]
    assert sorted(history) == sorted(
        [
            ("rich@example.com", 4, 1, "value"),
            ("vip@example.com", 4, 1, "pin"),
            ("pinned@example.com", 2, 3, "unpin"),
            ("both@example.com", 4, 2, "value"),
            ("both@example.com", 2, 3, "pin"),
        ]
    )
    by_hand = [r for r in rows if r["reason"] in ("pin", "unpin")]
    assert {r["changed_by"] for r in by_hand} == {admin_id}
    assert {r["email"]: r["detail"] for r in by_hand} == {
        "vip@example.com": {"note": "CSV import, line 3"},
        "pinned@example.com": {"note": "CSV import, line 4"},
        "both@example.com": {"note": "CSV import, line 5"},
    }
    unpinned = await contact_of(db, "email", "pinned@example.com")
    assert unpinned is not None and (unpinned["tier"], unpinned["pinned_tier"]) == (3, None)

    # the same file again: no tier changes, nothing written
    status, body = await post_csv(client, token, csv)
    assert (status, body["unchanged"]) == (200, 4)
    assert await count(db, "tier_changes") == len(rows)


async def test_a_malformed_record_stops_the_import_and_what_came_before_is_kept(
    client: Client, db: asyncpg.Pool
) -> None:
    _, token = await admin(db)
    csv = (
        "email,field:note\n"
        'one@example.com,"two\nlines"\n'  # 2-3: a quoted cell over two lines
        "two@example.com,\n"  # 4
        'three@example.com,"never closed\n'  # 5: the rest of the file is inside the quote
        "four@example.com,\n"
    )
    status, body = await post_csv(client, token, csv)

    assert status == 200, body
    assert (body["rows"], body["created"], body["stopped_at_line"]) == (3, 2, 5)
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(5, "invalid_csv")]
    one = await contact_of(db, "email", "one@example.com")
    assert one is not None and one["fields"] == {"note": "two\nlines"}
    assert await count(db, "contacts") == 2

    status, body = await post_csv(
        client, token, b"email\nfive@example.com\nsix\xff@example.com\nseven@example.com\n"
    )
    assert (status, body["created"], body["stopped_at_line"]) == (200, 1, 3)
    assert body["errors"][0]["code"] == "invalid_encoding"
    assert await count(db, "contacts") == 3


async def limited_client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, limits: ImportLimits
) -> Client:
    app = create_app(settings)
    app[IMPORT_LIMITS] = limits
    return await aiohttp_client(app, server_kwargs={"access_log_class": AccessLogger})


def numbered_rows(n: int, start: int = 0) -> list[bytes]:
    return [
        f"customer{i:06d}@example.com,Customer {i},{i % 1000}\n".encode()
        for i in range(start, start + n)
    ]


async def streamed(lines: list[bytes], per_chunk: int = 97) -> AsyncIterator[bytes]:
    """The body in pieces, without a Content-Length (chunked), as a client streaming a file."""
    for at in range(0, len(lines), per_chunk):
        yield b"".join(lines[at : at + per_chunk])


async def test_a_body_over_the_cap_is_refused_and_keeps_exactly_the_rows_within_it(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, db: asyncpg.Pool
) -> None:
    limits = ImportLimits(max_bytes=40_000, max_row_bytes=1000, batch_rows=100)
    client = await limited_client(aiohttp_client, settings, limits)
    _, token = await admin(db)
    lines = [b"email,name,value\n", *numbered_rows(2000)]  # about 90 KB

    # with a Content-Length, refused before a byte is read: nothing written
    status, body = await post_csv(client, token, b"".join(lines))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert await count(db, "contacts") == 0

    # streamed: read up to the cap; the rows that ended within it are imported, as if the
    # file ended there, and nothing of the rest
    status, body = await post_csv(client, token, streamed(lines))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    within, size = 0, 0
    while size + len(lines[within]) <= limits.max_bytes:
        size += len(lines[within])
        within += 1
    kept = within - 1  # the header aside
    details = body["error"]["details"]
    assert details["created"] == details["rows"] == kept
    assert details["stopped_at_line"] == within + 1
    assert details["max_bytes"] == limits.max_bytes
    emails = {r["value"] for r in await db.fetch("SELECT value FROM contact_identities")}
    assert emails == {f"customer{i:06d}@example.com" for i in range(kept)}


async def test_twenty_thousand_rows_stream_through(client: Client, db: asyncpg.Pool) -> None:
    _, token = await admin(db)
    lines = [b"email,name,value\n", *numbered_rows(20_000)]

    status, body = await post_csv(client, token, streamed(lines, per_chunk=500))

    assert status == 200, body
    assert (body["rows"], body["created"], body["error_count"]) == (20_000, 20_000, 0)
    assert await count(db, "contacts") == 20_000
    assert await count(db, "contact_identities") == 20_000
    # the values went through tiers.set_values (by shares: the top 1 % of 19,980 valued)
    assert await db.fetchval("SELECT count(*) FROM contacts WHERE tier = 1") > 0


async def test_an_import_and_first_messages_from_the_same_addresses_make_one_contact_each(
    client: Client, db: asyncpg.Pool, conns: Conns
) -> None:
    _, token = await admin(db)
    n = 300
    addresses = [f"race{i}@example.com" for i in range(n)]
    csv = "email,name\n" + "".join(f"{a},Racer {i}\n" for i, a in enumerate(addresses))

    async def message(address: str) -> None:
        await ingest.ingest(
            conns,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{new_client_id()}@example.com>",
                text="hello",
                identities=(Identity(IdentityKind.EMAIL, address),),
            ),
        )

    imported, *_ = await asyncio.gather(
        post_csv(client, token, csv), *(message(a) for a in addresses[::3])
    )

    assert imported[0] == 200, imported[1]
    assert imported[1]["created"] + imported[1]["updated"] == n
    per_address = await db.fetch(
        "SELECT value, count(*) AS n FROM contact_identities GROUP BY value"
    )
    assert len(per_address) == n and all(r["n"] == 1 for r in per_address)
    assert await count(db, "contacts") == n
    named = await db.fetchval("SELECT count(*) FROM contacts WHERE name LIKE 'Racer %'")
    assert named == n  # every row landed on the one contact of its address


async def test_a_later_row_finds_the_contact_an_earlier_row_of_the_file_made(
    client: Client, db: asyncpg.Pool
) -> None:
    _, token = await admin(db)
    csv = (
        "email,phone,name,tags,value\n"
        "ana@example.com,,Ana,a;b,10\n"
        ",+8613800138000,Ana's phone,,\n"  # someone else: no address shared yet
        "ANA@example.com,+86 138 0013 8000,,,\n"  # joins them: two contacts, refused
        "ana@example.com,+86 139 0013 9000,Ana Lima,;,20\n"  # adds a phone, empties tags
    )
    status, body = await post_csv(client, token, csv)

    assert status == 200, body
    assert (body["created"], body["updated"], body["unchanged"]) == (2, 1, 0)
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(4, "conflicting_identities")]
    ana = await contact_of(db, "email", "ana@example.com")
    assert ana is not None
    assert (ana["name"], ana["tags"], ana["value"]) == ("Ana Lima", [], "20.00")
    assert await identities_of(db, ana["id"]) == [
        ("email", "ana@example.com"),
        ("phone", "+8613900139000"),
    ]
    assert await count(db, "contacts") == 2
