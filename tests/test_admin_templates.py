"""/v1/admin/templates over the real app: CRUD, roles, every refusal with its code and nothing
written, the preview for a contact (names, salutations in en and zh-CN, HTML escaping, missing
values), and load_for(), which the care sender picks a template with."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.domain.templates import Purpose
from contactcenter.services import templates
from contactcenter.store import templates as templates_store
from tests.helpers import bearer, call, error_code, make_agent, table_digests
from tests.test_admin_care import restored_care_tables  # noqa: F401  (autouse fixture)

Client = TestClient[Any, Any]
BASE = "/v1/admin/templates"
PREVIEW = f"{BASE}/preview"
WATCHED = ("templates", "care_settings", "contacts")
HELP_SMS = {
    "purpose": "help",
    "channel": "sms",
    "locale": "en",
    "body_text": "Hi {{ name }}, reply HELP for a person.",
}
RECOVERY_EMAIL = {
    "purpose": "recovery",
    "channel": "email",
    "locale": "EN-gb",
    "subject": "Sorry, {{ name }}",
    "body_text": "{{ salutation }}, we are sorry.",
    "body_html": "<p>{{ salutation }}, we are sorry.</p>",
}


async def create(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    status, created = await call(client, "POST", BASE, headers, body)
    assert status == 201, created
    return dict(created)


async def contact(db: asyncpg.Pool, name: str | None, locale: str | None) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO contacts (name, locale) VALUES ($1, $2) RETURNING id", name, locale
        )
    )


async def seeded_id(db: asyncpg.Pool, purpose: str, channel: str, locale: str) -> int:
    return int(
        await db.fetchval(
            "SELECT id FROM templates WHERE purpose = $1 AND channel = $2 AND locale = $3",
            purpose,
            channel,
            locale,
        )
    )


async def preview(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    status, rendered = await call(client, "POST", PREVIEW, headers, body)
    assert status == 200, rendered
    return dict(rendered)


# --- CRUD --------------------------------------------------------------------------------------


async def test_the_seeded_templates_are_listed_and_filtered(
    client: Client, admin: dict[str, str], conns: Conns
) -> None:
    status, body = await call(client, "GET", BASE, admin)
    assert status == 200 and body["next_cursor"] is None
    keys = {(t["purpose"], t["channel"], t["locale"]) for t in body["items"]}
    assert ("birthday", "email", "en") in keys and ("follow_up", "web", "zh-CN") in keys
    # every seeded template passes the checks an admin's would
    for item in body["items"]:
        stored = templates_store.template_from_row(await templates_store.get(conns.db, item["id"]))
        assert templates.check(stored) == stored
    status, body = await call(
        client, "GET", f"{BASE}?purpose=follow_up&channel=sms&locale=ZH-cn", admin
    )
    assert status == 200
    assert [(t["purpose"], t["channel"], t["locale"]) for t in body["items"]] == [
        ("follow_up", "sms", "zh-CN")
    ]
    assert body["items"][0]["subject"] is None and body["items"][0]["body_html"] is None
    for query, field in (
        ("purpose=party", "purpose"),
        ("channel=fax", "channel"),
        ("locale=x", "locale"),
    ):
        status, body = await call(client, "GET", f"{BASE}?{query}", admin)
        assert (status, error_code(body), body["error"]["details"]) == (
            422,
            "invalid_query",
            {"field": field},
        )


async def test_an_admin_creates_reads_changes_and_deletes_a_template(
    client: Client, admin: dict[str, str]
) -> None:
    created = await create(client, admin, RECOVERY_EMAIL)
    # the locale is kept as language lower case, region upper case
    assert created["locale"] == "en-GB"
    assert {k: created[k] for k in ("purpose", "channel", "subject", "body_text", "body_html")} == {
        k: RECOVERY_EMAIL[k] for k in ("purpose", "channel", "subject", "body_text", "body_html")
    }
    path = f"{BASE}/{created['id']}"
    assert await call(client, "GET", path, admin) == (200, created)

    status, changed = await call(
        client, "PATCH", path, admin, {"subject": "  We are sorry  ", "body_html": None}
    )
    assert status == 200, changed
    assert (changed["subject"], changed["body_html"]) == ("We are sorry", None)
    assert changed["body_text"] == RECOVERY_EMAIL["body_text"]
    assert changed["updated_at"] >= created["updated_at"]
    # to SMS: what only an e-mail has goes with it, in the same change
    status, changed = await call(client, "PATCH", path, admin, {"channel": "sms", "subject": None})
    assert status == 200, changed
    assert (changed["channel"], changed["subject"], changed["body_html"]) == ("sms", None, None)

    response = await client.delete(path, headers=admin)
    assert response.status == 204
    for method in ("GET", "PATCH", "DELETE"):
        status, body = await call(client, method, path, admin, {} if method == "PATCH" else None)
        assert (status, error_code(body)) == (404, "template_not_found"), method
    status, body = await call(client, "GET", f"{BASE}/nope", admin)
    assert status == 404


async def test_one_template_per_purpose_channel_and_locale(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    before = await table_digests(db, WATCHED)
    # the seeded zh-CN birthday SMS, written another way
    status, body = await call(
        client, "POST", BASE, admin, {**HELP_SMS, "purpose": "birthday", "locale": "zh_cn"}
    )
    assert (status, error_code(body)) == (409, "template_exists")
    assert body["error"]["details"] == {"purpose": "birthday", "channel": "sms", "locale": "zh-CN"}
    assert await table_digests(db, WATCHED) == before
    # a change onto another's key
    created = await create(client, admin, HELP_SMS)
    before = await table_digests(db, WATCHED)
    status, body = await call(
        client, "PATCH", f"{BASE}/{created['id']}", admin, {"purpose": "birthday"}
    )
    assert (status, error_code(body)) == (409, "template_exists")
    assert await table_digests(db, WATCHED) == before


async def test_two_admins_creating_the_same_template_at_once_make_one(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    answers = await asyncio.gather(*(call(client, "POST", BASE, admin, HELP_SMS) for _ in range(4)))
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409]
    count = await db.fetchval("SELECT count(*) FROM templates WHERE purpose = 'help'")
    assert count == 1


# --- roles -------------------------------------------------------------------------------------


async def test_supervisors_read_and_preview_admins_write_agents_do_neither(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    _, agent_token = await make_agent(db, name="Agent", role=Role.AGENT)
    _, supervisor_token = await make_agent(db, name="Sup", role=Role.SUPERVISOR)
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    template_id = await seeded_id(db, "birthday", "sms", "en")
    contact_id = await contact(db, "Ann", "en")
    path = f"{BASE}/{template_id}"
    preview_body = {"template_id": template_id, "contact_id": contact_id}
    before = await table_digests(db, WATCHED)

    assert (await call(client, "GET", BASE, supervisor))[0] == 200
    assert (await call(client, "GET", path, supervisor))[0] == 200
    assert (await call(client, "POST", PREVIEW, supervisor, preview_body))[0] == 200
    writes = [("POST", BASE, HELP_SMS), ("PATCH", path, {"locale": "fr"}), ("DELETE", path, None)]
    for method, where, body in writes:
        status, answer = await call(client, method, where, supervisor, body)
        assert (status, error_code(answer)) == (403, "forbidden"), method
    reads = [("GET", BASE, None), ("GET", path, None), ("POST", PREVIEW, preview_body)]
    for method, where, body in [*reads, *writes]:
        status, answer = await call(client, method, where, agent, body)
        assert (status, error_code(answer)) == (403, "forbidden"), (method, where)
        status, answer = await call(client, method, where, {}, body)
        assert (status, error_code(answer)) == (401, "missing_token"), (method, where)
    assert await table_digests(db, WATCHED) == before


# --- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"purpose": "party"}, "validation_error", "purpose"),
        ({"channel": "fax"}, "validation_error", "channel"),
        ({"body_text": None}, "validation_error", "body_text"),
        ({"locale": 7}, "validation_error", "locale"),
        ({"body_text": "a\u0000b"}, "validation_error", "body_text"),
        ({"colour": "red"}, "validation_error", "colour"),
        ({"locale": "english"}, "invalid_locale", "locale"),
        ({"locale": "zh-"}, "invalid_locale", "locale"),
        ({"subject": "Hi"}, "email_only", "subject"),
        ({"body_html": "<p>Hi</p>"}, "email_only", "body_html"),
        ({"body_text": "   "}, "invalid_template", "body_text"),
        ({"body_text": "Hi {{ name "}, "invalid_template", "body_text"),
        ({"body_text": "{{ ''.__class__ }}"}, "invalid_template", "body_text"),
        (
            {"body_text": "{{ name.__class__.__mro__[1].__subclasses__() }}"},
            "invalid_template",
            "body_text",
        ),
        ({"body_text": "{% for i in range(10) %}x{% endfor %}"}, "invalid_template", "body_text"),
        ({"body_text": "Dear {{ nmae }}"}, "invalid_template", "body_text"),
        ({"body_text": "x" * 20_001}, "invalid_template", "body_text"),
    ],
)
async def test_a_bad_sms_template_is_refused_with_its_code_and_nothing_written(
    client: Client,
    admin: dict[str, str],
    db: asyncpg.Pool,
    change: dict[str, Any],
    code: str,
    field: str,
) -> None:
    await refused(client, admin, db, {**HELP_SMS, **change}, code, field)


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"subject": "Line one\nline two"}, "invalid_subject", "subject"),
        ({"subject": "   "}, "invalid_subject", "subject"),
        ({"subject": "x" * 301}, "invalid_subject", "subject"),
        ({"subject": "Hi {% if name %}"}, "invalid_template", "subject"),
        ({"subject": "{{ name|safe }}"}, "invalid_template", "subject"),
        ({"body_html": "<p>{{ name | safe }}</p>"}, "invalid_template", "body_html"),
        (
            {"body_html": "<p>\n{% autoescape false %}{{ name }}{% endautoescape %}"},
            "invalid_template",
            "body_html",
        ),
        ({"body_html": ""}, "invalid_template", "body_html"),
        ({"body_html": "<p>{{ 'x' * 100000000 }}</p>"}, "invalid_template", "body_html"),
    ],
)
async def test_a_bad_email_template_is_refused_with_its_code_and_nothing_written(
    client: Client,
    admin: dict[str, str],
    db: asyncpg.Pool,
    change: dict[str, Any],
    code: str,
    field: str,
) -> None:
    await refused(client, admin, db, {**RECOVERY_EMAIL, **change}, code, field)


async def refused(
    client: Client,
    headers: dict[str, str],
    db: asyncpg.Pool,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    """Refused as a new template, and as a change to a stored one (and as a draft to preview),
    with the code and field, and nothing written."""
    stored = await seeded_id(db, "birthday", "sms", "en")
    contact_id = await contact(db, "Ann", "en")
    before = await table_digests(db, WATCHED)
    for method, path, sent in (
        ("POST", BASE, body),
        ("PATCH", f"{BASE}/{stored}", body),
        ("POST", PREVIEW, {"template": body, "contact_id": contact_id}),
    ):
        status, answer = await call(client, method, path, headers, sent)
        assert (status, error_code(answer)) == (422, code), (method, answer)
        details = answer["error"]["details"]
        fields = (
            [f["field"].removeprefix("template.") for f in details["fields"]]
            if "fields" in details
            else [details["field"]]
        )
        # a PATCH's null where a value is needed is the body's error, naming the field
        messages = [f["message"] for f in details.get("fields", [])]
        assert field in fields or any(field in m for m in messages), (method, answer)
        if code == "invalid_template":
            assert "line" in details, answer
    assert await table_digests(db, WATCHED) == before


async def test_a_refused_template_error_says_which_line(
    client: Client, admin: dict[str, str]
) -> None:
    body = {**RECOVERY_EMAIL, "body_html": "<p>Hello</p>\n<p>{{ ''.__class__ }}</p>"}
    status, answer = await call(client, "POST", BASE, admin, body)
    assert (status, error_code(answer)) == (422, "invalid_template")
    assert answer["error"]["details"] == {"field": "body_html", "line": 2}


async def test_changing_to_sms_while_a_subject_is_stored_is_refused_whole(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    template_id = await seeded_id(db, "follow_up", "email", "en")
    before = await table_digests(db, WATCHED)
    status, answer = await call(
        client, "PATCH", f"{BASE}/{template_id}", admin, {"channel": "sms", "locale": "de"}
    )
    assert (status, error_code(answer)) == (422, "email_only")
    assert answer["error"]["details"] == {"field": "subject"}
    assert await table_digests(db, WATCHED) == before


# --- preview -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "locale", "subject", "first_line"),
    [
        ("王芳", "zh-CN", "王芳,生日快乐!", "尊敬的王芳:"),
        (None, "zh-CN", ",生日快乐!", "您好:"),
        ("Ann Lee", "en", "Happy birthday, Ann Lee!", "Dear Ann Lee,"),
        (None, "en", "Happy birthday, !", "Hello,"),
    ],
)
async def test_the_preview_greets_the_contact_in_their_locale(
    client: Client,
    admin: dict[str, str],
    db: asyncpg.Pool,
    name: str | None,
    locale: str,
    subject: str,
    first_line: str,
) -> None:
    template_id = await seeded_id(db, "birthday", "email", locale)
    contact_id = await contact(db, name, locale)
    before = await table_digests(db, WATCHED)
    rendered = await preview(client, admin, {"template_id": template_id, "contact_id": contact_id})
    assert rendered["subject"] == subject
    assert rendered["text"].splitlines()[0] == first_line
    assert rendered["html"].startswith(f"<p>{first_line}</p>")
    # a preview writes nothing
    assert await table_digests(db, WATCHED) == before


async def test_a_contact_without_a_locale_gets_the_care_default(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    template_id = await seeded_id(db, "birthday", "sms", "zh-CN")
    contact_id = await contact(db, "王芳", None)
    draft = {**HELP_SMS, "body_text": "{{ salutation }}"}
    body = {"template": draft, "contact_id": contact_id}
    assert (await preview(client, admin, body))["text"] == "Dear 王芳"
    status, _ = await call(client, "PUT", "/v1/admin/care", admin, {"default_locale": "zh-CN"})
    assert status == 200
    assert (await preview(client, admin, body))["text"] == "尊敬的王芳"
    rendered = await preview(client, admin, {"template_id": template_id, "contact_id": contact_id})
    assert rendered == {
        "subject": None,
        "text": "王芳,祝您生日快乐,新的一岁万事如意!",
        "html": None,
    }


async def test_a_contacts_name_is_escaped_in_html_and_plain_in_text(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    template_id = await seeded_id(db, "birthday", "email", "en")
    contact_id = await contact(db, "<script>alert(1)</script>", "en")
    rendered = await preview(client, admin, {"template_id": template_id, "contact_id": contact_id})
    assert "<script>" not in rendered["html"]
    assert rendered["html"].startswith("<p>Dear &lt;script&gt;alert(1)&lt;/script&gt;,</p>")
    assert rendered["text"].startswith("Dear <script>alert(1)</script>,")
    assert rendered["subject"] == "Happy birthday, <script>alert(1)</script>!"


async def test_a_draft_previews_with_missing_values_as_nothing_and_the_values_given(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    contact_id = await contact(db, "Ann", None)
    draft = {
        **RECOVERY_EMAIL,
        "subject": "{{ company }} for {{ name }}",
        "body_text": "[{{ company }}][{{ agent }}][{{ reply_digits }}] {{ survey_link }}",
        "body_html": '<a href="{{ survey_link }}">{{ agent|default("us", true) }}</a>',
    }
    rendered = await preview(client, admin, {"template": draft, "contact_id": contact_id})
    assert rendered == {
        "subject": "for Ann",
        "text": "[][][] https://example.invalid/survey/preview",
        "html": '<a href="https://example.invalid/survey/preview">us</a>',
    }
    values = {"agent": "Li & Lei", "survey_link": "https://care.example/s/abc?x=1&y=2"}
    rendered = await preview(
        client, admin, {"template": draft, "contact_id": contact_id, "values": values}
    )
    assert rendered["text"] == "[][Li & Lei][] https://care.example/s/abc?x=1&y=2"
    assert rendered["html"] == '<a href="https://care.example/s/abc?x=1&amp;y=2">Li &amp; Lei</a>'


async def test_a_preview_of_what_is_not_there_is_not_found(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    template_id = await seeded_id(db, "birthday", "sms", "en")
    contact_id = await contact(db, "Ann", "en")
    for body, code in (
        ({"template_id": template_id, "contact_id": contact_id + 1000}, "contact_not_found"),
        ({"template": HELP_SMS, "contact_id": contact_id + 1000}, "contact_not_found"),
        ({"template_id": template_id + 1000, "contact_id": contact_id}, "template_not_found"),
    ):
        status, answer = await call(client, "POST", PREVIEW, admin, body)
        assert (status, error_code(answer)) == (404, code)
    for body in (
        {"contact_id": contact_id},
        {"template_id": template_id, "template": HELP_SMS, "contact_id": contact_id},
        {"template_id": template_id},
        {"template_id": template_id, "contact_id": contact_id, "values": {"name": "x"}},
        {"template_id": template_id, "contact_id": contact_id, "values": {"agent": "x" * 201}},
    ):
        status, answer = await call(client, "POST", PREVIEW, admin, body)
        assert (status, error_code(answer)) == (422, "validation_error"), body


# --- what the care sender picks ----------------------------------------------------------------


async def test_load_for_finds_the_locale_then_the_language_then_the_default(
    client: Client, admin: dict[str, str], conns: Conns
) -> None:
    async def locale_of(purpose: Purpose, channel: str, locale: str, default: str) -> str | None:
        found = await templates.load_for(conns.db, purpose, channel, locale, default)
        return None if found is None else found.locale

    assert await locale_of(Purpose.BIRTHDAY, "email", "zh-CN", "en") == "zh-CN"
    assert await locale_of(Purpose.BIRTHDAY, "email", "zh-TW", "en") == "zh-CN"
    assert await locale_of(Purpose.BIRTHDAY, "sms", "fr", "en") == "en"
    assert await locale_of(Purpose.BIRTHDAY, "sms", "fr", "zh-CN") == "zh-CN"
    assert await locale_of(Purpose.BIRTHDAY, "web", "en", "en") is None
    # a template an admin adds is found at once, in its own locale
    await create(client, admin, {**HELP_SMS, "purpose": "birthday", "locale": "zh-tw"})
    assert await locale_of(Purpose.BIRTHDAY, "sms", "zh-TW", "en") == "zh-TW"
    assert await locale_of(Purpose.BIRTHDAY, "sms", "zh-CN", "en") == "zh-CN"
    async with conns.db.acquire() as conn:
        found = await templates.load_for(conn, Purpose.FOLLOW_UP, "sms", "en-US", "en")
    assert found is not None and found.locale == "en" and "{{ reply_digits }}" in found.body_text


async def test_a_stored_template_that_fails_to_render_previews_as_render_failed(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    # written before the checks existed (or by hand): the preview says so, it does not crash
    template_id = await db.fetchval(
        "INSERT INTO templates (purpose, channel, locale, body_text)"
        " VALUES ('help', 'sms', 'en', '{% if name < 3 %}x{% endif %}') RETURNING id"
    )
    contact_id = await contact(db, "Ann", "en")
    status, answer = await call(
        client, "POST", PREVIEW, admin, {"template_id": template_id, "contact_id": contact_id}
    )
    assert (status, error_code(answer)) == (422, "render_failed")
