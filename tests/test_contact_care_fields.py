"""What care reads on a contact: birthday, time zone, locale, preferred channel and consent per
channel. Supervisors and admins set and clear them (PATCH /v1/contacts/{id}), the card and the
conversation view show them, bad values are refused with their codes and write nothing, an SMS
opt-out (STOP through the Twilio webhook) wins over a grant, and the CSV import takes them as
optional columns, row by row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.api.app import create_app
from contactcenter.domain.enums import Role
from contactcenter.settings import Settings
from tests.helpers import bearer, make_agent, table_digests
from tests.routing_helpers import T0, Clock
from tests.twilio_fake import TwilioFake, inbound_sms_form, post_signed

Client = TestClient[Any, Any]
CARE = ("birthday", "timezone", "locale", "preferred_channel")
NEVER_ASKED = {"email": None, "sms": None, "web": None}
PUBLIC = "https://support.example.com"
OUR_NUMBER = "+15005550006"
CUSTOMER = "+8613800138000"


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def app(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: Clock
) -> Client:
    """The real app, its clock in the test's hands."""
    return await aiohttp_client(create_app(settings, clock=clock))


async def new_contact(db: asyncpg.Pool, email: str = "mei@example.com") -> int:
    contact_id: int = await db.fetchval(
        "INSERT INTO contacts (name) VALUES ('Mei Chen') RETURNING id"
    )
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'email', $2)",
        contact_id,
        email,
    )
    return contact_id


async def add_phone(db: asyncpg.Pool, contact_id: int, phone: str) -> None:
    await db.execute(
        "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, 'phone', $2)",
        contact_id,
        phone,
    )


async def care_row(db: asyncpg.Pool, contact_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT birthday, timezone, locale, preferred_channel FROM contacts WHERE id = $1",
        contact_id,
    )
    return dict(row)


async def consent_rows(db: asyncpg.Pool, contact_id: int) -> dict[str, tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT channel, granted, source, changed_at FROM contact_consents WHERE contact_id = $1",
        contact_id,
    )
    return {r["channel"]: (r["granted"], r["source"], r["changed_at"]) for r in rows}


async def patch(app: Client, token: str, contact_id: int, body: dict[str, Any]) -> Any:
    return await app.patch(f"/v1/contacts/{contact_id}", json=body, headers=bearer(token))


async def card_of(app: Client, token: str, contact_id: int) -> dict[str, Any]:
    response = await app.get(f"/v1/contacts/{contact_id}", headers=bearer(token))
    assert response.status == 200, await response.text()
    card: dict[str, Any] = await response.json()
    return card


def care_of(card: dict[str, Any]) -> dict[str, Any]:
    return {k: card[k] for k in CARE}


# --- PATCH and the card ---------------------------------------------------------------------


async def test_each_care_field_is_set_shown_kept_and_cleared(app: Client, db: asyncpg.Pool) -> None:
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    contact = await new_contact(db)
    fresh = await card_of(app, supervisor, contact)
    assert care_of(fresh) == dict.fromkeys(CARE)
    assert (fresh["consent"], fresh["sms_opted_out"]) == (NEVER_ASKED, False)

    patched = await patch(
        app,
        supervisor,
        contact,
        {
            "birthday": "1990-02-28",
            "timezone": "Asia/Shanghai",
            "locale": "zh_cn",
            "preferred_channel": "SMS",
        },
    )

    assert patched.status == 200, await patched.text()
    expected = {
        "birthday": "1990-02-28",
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "preferred_channel": "sms",
    }
    assert care_of(await patched.json()) == expected
    assert care_of(await card_of(app, supervisor, contact)) == expected
    assert await care_row(db, contact) == {**expected, "birthday": date(1990, 2, 28)}

    # a field left out keeps its value; each one set alone changes only itself
    for field, value, shown in (
        ("locale", "EN", "en"),
        ("locale", "es-419", "es-419"),
        ("birthday", "2000-02-29", "2000-02-29"),
        ("timezone", "America/New_York", "America/New_York"),
        ("preferred_channel", "email", "email"),
    ):
        response = await patch(app, supervisor, contact, {field: value})
        assert response.status == 200, (field, await response.text())
        expected[field] = shown
        assert care_of(await response.json()) == expected

    # null clears each one, and only that one
    for field in CARE:
        response = await patch(app, supervisor, contact, {field: None})
        assert response.status == 200
        expected[field] = None
        assert care_of(await response.json()) == expected
    assert await care_row(db, contact) == dict.fromkeys(CARE)


async def test_a_birthday_of_today_by_the_requests_clock_is_taken_tomorrows_is_not(
    app: Client, db: asyncpg.Pool, clock: Clock
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    contact = await new_contact(db)
    today = T0.date()
    tomorrow = today + timedelta(days=1)

    refused = await patch(app, admin, contact, {"birthday": tomorrow.isoformat()})
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "invalid_birthday"
    taken = await patch(app, admin, contact, {"birthday": today.isoformat()})
    assert taken.status == 200
    assert (await taken.json())["birthday"] == today.isoformat()

    clock.advance(24 * 3600)  # a day later, tomorrow has come
    taken = await patch(app, admin, contact, {"birthday": tomorrow.isoformat()})
    assert taken.status == 200
    assert (await care_row(db, contact))["birthday"] == tomorrow


async def test_bad_care_values_are_refused_with_their_codes_and_write_nothing(
    app: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    contact = await new_contact(db)
    assert (await patch(app, admin, contact, {"consent": {"sms": False}})).status == 200
    tables = ("contacts", "contact_consents", "contact_identities", "tier_changes")
    before = await table_digests(db, tables)
    # with each bad value, good changes of every kind: none of them may be written
    good = {
        "name": "Someone Else",
        "value": 500000,
        "birthday": "1985-06-01",
        "timezone": "Europe/Paris",
        "locale": "fr-FR",
        "preferred_channel": "email",
        "consent": {"email": True, "sms": None},
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"birthday": "2026-11-24"}, "invalid_birthday"),  # after the clock's today
        ({"birthday": "2999-01-01"}, "invalid_birthday"),
        ({"birthday": "1899-12-31"}, "invalid_birthday"),
        ({"birthday": "2023-02-29"}, "invalid_birthday"),
        ({"birthday": "1990-13-01"}, "invalid_birthday"),
        ({"birthday": "01/06/1985"}, "invalid_birthday"),
        ({"birthday": "19850601"}, "invalid_birthday"),
        ({"birthday": "1985-W22-6"}, "invalid_birthday"),
        ({"birthday": "1985-06-01T00:00:00"}, "invalid_birthday"),
        ({"birthday": ""}, "invalid_birthday"),
        ({"birthday": 19850601}, "validation_error"),
        ({"timezone": "Mars/Olympus_Mons"}, "invalid_timezone"),
        ({"timezone": "asia/shanghai"}, "invalid_timezone"),
        ({"timezone": "../../etc/passwd"}, "invalid_timezone"),
        ({"timezone": "x" * 5000}, "invalid_timezone"),
        ({"timezone": "Asia/Shanghai\x00"}, "invalid_timezone"),
        ({"timezone": ""}, "invalid_timezone"),
        ({"locale": "chinese"}, "invalid_locale"),
        ({"locale": "zh-Hans-CN"}, "invalid_locale"),
        ({"locale": "e"}, "invalid_locale"),
        ({"locale": "en-"}, "invalid_locale"),
        ({"locale": ""}, "invalid_locale"),
        ({"locale": "ＥＮ"}, "invalid_locale"),  # full-width letters
        ({"preferred_channel": "fax"}, "invalid_channel"),
        ({"preferred_channel": ""}, "invalid_channel"),
        ({"consent": {"fax": True}}, "invalid_channel"),
        ({"consent": {"Email": True}}, "invalid_channel"),
        ({"consent": {"email": "yes"}}, "validation_error"),
        ({"consent": {"email": 1}}, "validation_error"),
        ({"consent": None}, "validation_error"),
        ({"consent": ["email"]}, "validation_error"),
    ]
    for body, code in cases:
        refused = await patch(app, admin, contact, {**good, **body})
        assert refused.status == 422, (body, await refused.text())
        assert (await refused.json())["error"]["code"] == code, body
    assert await table_digests(db, tables) == before

    accepted = await patch(app, admin, contact, good)
    assert accepted.status == 200, await accepted.text()
    assert await table_digests(db, tables) != before


async def test_consent_is_granted_withdrawn_and_cleared_channel_by_channel(
    app: Client, db: asyncpg.Pool, clock: Clock
) -> None:
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    contact = await new_contact(db)
    t0 = T0.isoformat()

    granted = await patch(app, supervisor, contact, {"consent": {"email": True}})

    assert granted.status == 200, await granted.text()
    assert (await granted.json())["consent"] == {
        "email": {"granted": True, "source": "api", "changed_at": t0},
        "sms": None,
        "web": None,
    }
    assert await consent_rows(db, contact) == {"email": (True, "api", T0)}

    # the same again later changes nothing: changed_at is when it last changed
    clock.advance(3600)
    t1 = clock.now
    again = await patch(app, supervisor, contact, {"consent": {"email": True}})
    assert (await again.json())["consent"]["email"]["changed_at"] == t0

    # a withdrawal and a grant at once; the channel left out keeps its consent
    changed = await patch(app, supervisor, contact, {"consent": {"email": False, "web": True}})
    assert (await changed.json())["consent"] == {
        "email": {"granted": False, "source": "api", "changed_at": t1.isoformat()},
        "sms": None,
        "web": {"granted": True, "source": "api", "changed_at": t1.isoformat()},
    }
    kept = await patch(app, supervisor, contact, {"consent": {"sms": True}})
    assert (await kept.json())["consent"]["email"]["granted"] is False

    # null: back to "never asked", the row gone; an empty object changes nothing
    cleared = await patch(app, supervisor, contact, {"consent": {"email": None, "web": None}})
    assert (await cleared.json())["consent"] == {
        "email": None,
        "sms": {"granted": True, "source": "api", "changed_at": t1.isoformat()},
        "web": None,
    }
    assert await consent_rows(db, contact) == {"sms": (True, "api", t1)}
    assert (await patch(app, supervisor, contact, {"consent": {}})).status == 200
    assert await consent_rows(db, contact) == {"sms": (True, "api", t1)}
    # clearing what was never asked is no error
    assert (await patch(app, supervisor, contact, {"consent": {"web": None}})).status == 200


async def test_agents_see_the_care_fields_on_the_card_and_in_the_conversation_but_change_none(
    app: Client, db: asyncpg.Pool
) -> None:
    _, agent = await make_agent(db)
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    contact = await new_contact(db)
    conversation = await db.fetchval(
        "INSERT INTO conversations (contact_id, channel, team_id)"
        " VALUES ($1, 'email', (SELECT id FROM teams WHERE is_default)) RETURNING id",
        contact,
    )
    set_by_supervisor = {
        "birthday": "1979-12-24",
        "timezone": "Europe/Berlin",
        "locale": "de",
        "preferred_channel": "email",
        "consent": {"email": True},
    }
    assert (await patch(app, supervisor, contact, set_by_supervisor)).status == 200
    tables = ("contacts", "contact_consents")
    before = await table_digests(db, tables)

    for body in ({"birthday": "1980-01-01"}, {"consent": {"email": False}}, {"locale": None}):
        refused = await patch(app, agent, contact, body)
        assert refused.status == 403, body
    assert await table_digests(db, tables) == before

    card = await card_of(app, agent, contact)
    view = await app.get(f"/v1/conversations/{conversation}", headers=bearer(agent))
    assert view.status == 200, await view.text()
    in_conversation = (await view.json())["contact"]
    for shown in (card, in_conversation):
        assert care_of(shown) == {
            "birthday": "1979-12-24",
            "timezone": "Europe/Berlin",
            "locale": "de",
            "preferred_channel": "email",
        }
        assert shown["consent"] == {
            "email": {"granted": True, "source": "api", "changed_at": T0.isoformat()},
            "sms": None,
            "web": None,
        }
        assert shown["sms_opted_out"] is False


# --- an SMS opt-out wins over a grant -------------------------------------------------------


@pytest.fixture
async def sms_app(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    twilio_fake: TwilioFake,
    clock: Clock,
) -> Client:
    sms_settings = settings.replace(
        public_base_url=PUBLIC,
        twilio_account_sid=twilio_fake.account_sid,
        twilio_auth_token=twilio_fake.auth_token,
        twilio_from_number=OUR_NUMBER,
        twilio_api_base=twilio_fake.url,
    )
    return await aiohttp_client(create_app(sms_settings, clock=clock))


async def customer_texts(app: Client, fake: TwilioFake, body: str, sender: str = CUSTOMER) -> None:
    """A text from the customer, posted and signed as Twilio does."""
    form = inbound_sms_form(from_=sender, to=OUR_NUMBER, body=body, account_sid=fake.account_sid)
    path = "/v1/webhooks/twilio/sms"
    answer = await post_signed(
        PUBLIC + path, form, auth_token=fake.auth_token, post_to=str(app.make_url(path))
    )
    assert answer.status == 200, answer.text


async def test_a_stop_wins_over_a_grant_of_sms_consent(
    sms_app: Client, twilio_fake: TwilioFake, db: asyncpg.Pool
) -> None:
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    await customer_texts(sms_app, twilio_fake, "Where is my order?")
    contact = int(await db.fetchval("SELECT contact_id FROM conversations"))
    await customer_texts(sms_app, twilio_fake, "STOP")
    assert (await card_of(sms_app, supervisor, contact))["sms_opted_out"] is True

    granted = await patch(sms_app, supervisor, contact, {"consent": {"sms": True}})

    assert granted.status == 200, await granted.text()
    card = await granted.json()
    assert card["consent"]["sms"] == {
        "granted": True,
        "source": "api",
        "changed_at": T0.isoformat(),
    }
    assert card["sms_opted_out"] is True  # STOP wins
    assert await db.fetchval("SELECT opted_out FROM sms_consent WHERE phone = $1", CUSTOMER)
    ledger = await db.fetch("SELECT opted_out, source FROM sms_consent_events ORDER BY id")
    assert [tuple(r) for r in ledger] == [(True, "keyword")]  # the grant wrote none

    # only the customer lifts their STOP; the grant is still recorded
    await customer_texts(sms_app, twilio_fake, "START")
    card = await card_of(sms_app, supervisor, contact)
    assert (card["sms_opted_out"], card["consent"]["sms"]["granted"]) == (False, True)


async def test_any_of_the_contacts_numbers_opted_out_shows_on_the_card(
    app: Client, db: asyncpg.Pool
) -> None:
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    contact = await new_contact(db)
    await add_phone(db, contact, "+8613800138001")
    await add_phone(db, contact, "+8613800138002")
    # someone else's number opted out: not this contact's business
    await db.execute(
        "INSERT INTO sms_consent (phone, opted_out, changed_at) VALUES"
        " ('+8613800138001', false, $1), ('+8613800139999', true, $1)",
        T0,
    )
    assert (await card_of(app, supervisor, contact))["sms_opted_out"] is False
    await db.execute(
        "INSERT INTO sms_consent (phone, opted_out, changed_at) VALUES ($1, true, $2)",
        "+8613800138002",
        T0,
    )
    assert (await card_of(app, supervisor, contact))["sms_opted_out"] is True


# --- the CSV import -------------------------------------------------------------------------


async def post_csv(app: Client, token: str, text: str) -> tuple[int, dict[str, Any]]:
    response = await app.post(
        "/v1/admin/contacts/import",
        data=text.encode(),
        headers={"Content-Type": "text/csv", **bearer(token)},
    )
    return response.status, await response.json()


async def contact_by_email(db: asyncpg.Pool, email: str) -> int | None:
    value = await db.fetchval(
        "SELECT contact_id FROM contact_identities WHERE kind = 'email' AND value = $1", email
    )
    return None if value is None else int(value)


async def test_the_import_sets_care_fields_and_consents_and_again_changes_nothing(
    app: Client, db: asyncpg.Pool, clock: Clock
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    known = await new_contact(db, "known@example.com")
    await db.execute(
        "UPDATE contacts SET birthday = '1970-01-01', timezone = 'Asia/Tokyo', locale = 'ja'"
        " WHERE id = $1",
        known,
    )
    await db.execute(
        "INSERT INTO contact_consents (contact_id, channel, granted, source, changed_at)"
        " VALUES ($1, 'email', false, 'api', $2)",
        known,
        T0 - timedelta(days=30),
    )
    csv = (
        "email,phone,Birthday,TimeZone,locale,preferred_channel,consent_email,consent_sms\n"
        "new@example.com,+8613800138000,1988-08-08,Asia/Shanghai,zh_cn,SMS,No,YES\n"
        # empty cells leave the known contact's birthday, zone and locale as they are
        "known@example.com,,,,,email,1,0\n"
        "plain@example.com,,,,,,,\n"
    )

    status, body = await post_csv(app, admin, csv)

    assert status == 200, body
    assert (body["rows"], body["created"], body["updated"], body["errors"]) == (3, 2, 1, [])
    new = await contact_by_email(db, "new@example.com")
    plain = await contact_by_email(db, "plain@example.com")
    assert new is not None and plain is not None
    assert await care_row(db, new) == {
        "birthday": date(1988, 8, 8),
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "preferred_channel": "sms",
    }
    assert await consent_rows(db, new) == {
        "email": (False, "import", T0),
        "sms": (True, "import", T0),
    }
    assert await care_row(db, known) == {
        "birthday": date(1970, 1, 1),
        "timezone": "Asia/Tokyo",
        "locale": "ja",
        "preferred_channel": "email",
    }
    assert await consent_rows(db, known) == {
        "email": (True, "import", T0),
        "sms": (False, "import", T0),
    }
    assert await care_row(db, plain) == dict.fromkeys(CARE)
    assert await consent_rows(db, plain) == {}
    card = await card_of(app, admin, new)
    assert card["consent"]["sms"] == {
        "granted": True,
        "source": "import",
        "changed_at": T0.isoformat(),
    }

    # the same file later: nothing changes, consents keep when they changed
    clock.advance(3600)
    before = await table_digests(db, ("contacts", "contact_consents"))
    status, again = await post_csv(app, admin, csv)
    assert (status, again["unchanged"], again["updated"], again["created"]) == (200, 3, 0, 0)
    assert await table_digests(db, ("contacts", "contact_consents")) == before

    # an import grant of SMS does not lift the number's opt-out either
    await db.execute(
        "INSERT INTO sms_consent (phone, opted_out, changed_at) VALUES ($1, true, $2)",
        "+8613800138000",
        T0,
    )
    status, body = await post_csv(app, admin, "email,consent_sms\nnew@example.com,yes\n")
    assert (status, body["unchanged"]) == (200, 1)
    card = await card_of(app, admin, new)
    assert (card["consent"]["sms"]["granted"], card["sms_opted_out"]) == (True, True)


async def test_bad_care_cells_are_reported_by_row_and_the_good_rows_are_written(
    app: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    csv = "\n".join(
        [
            "email,birthday,timezone,locale,preferred_channel,consent_email,consent_sms",
            "good1@example.com,2026-11-23,UTC,en-GB,web,true,false",  # 2: today is taken
            "r3@example.com,2026-11-24,,,,,",  # 3: after the clock's today
            "r4@example.com,1899-12-31,,,,,",  # 4
            "r5@example.com,31.12.1980,,,,,",  # 5
            "r6@example.com,,Moon/Base,,,,",  # 6
            "r7@example.com,,,chinese,,,",  # 7
            "r8@example.com,,,,pigeon,,",  # 8
            "r9@example.com,,,,,maybe,",  # 9
            "r10@example.com,,,,,,y",  # 10
            "good2@example.com,2000-02-29,Europe/London,fr,EMAIL,0,1",  # 11
        ]
    )

    status, body = await post_csv(app, admin, csv)

    assert status == 200, body
    assert [(e["row"], e["code"]) for e in body["errors"]] == [
        (3, "invalid_birthday"),
        (4, "invalid_birthday"),
        (5, "invalid_birthday"),
        (6, "invalid_timezone"),
        (7, "invalid_locale"),
        (8, "invalid_channel"),
        (9, "invalid_consent"),
        (10, "invalid_consent"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert (body["rows"], body["created"], body["error_count"]) == (10, 2, 8)
    assert await db.fetchval("SELECT count(*) FROM contacts") == 2
    good1 = await contact_by_email(db, "good1@example.com")
    good2 = await contact_by_email(db, "good2@example.com")
    assert good1 is not None and good2 is not None
    assert await care_row(db, good1) == {
        "birthday": date(2026, 11, 23),
        "timezone": "UTC",
        "locale": "en-GB",
        "preferred_channel": "web",
    }
    assert await consent_rows(db, good2) == {
        "email": (False, "import", T0),
        "sms": (True, "import", T0),
    }


async def test_a_later_row_of_the_file_sees_the_consent_an_earlier_row_gave(
    app: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    csv = (
        "email,consent_email,locale\n"
        "twice@example.com,yes,en\n"
        "twice@example.com,no,\n"  # the file's last word on the contact is what is kept
        "twice@example.com,,de\n"
    )
    status, body = await post_csv(app, admin, csv)
    assert (status, body["created"], body["updated"]) == (200, 1, 2), body
    contact = await contact_by_email(db, "twice@example.com")
    assert contact is not None
    assert await consent_rows(db, contact) == {"email": (False, "import", T0)}
    assert (await care_row(db, contact))["locale"] == "de"
