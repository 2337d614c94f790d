"""Canned responses over the real app: admin CRUD and roles, every refusal with its code and
nothing written, what each agent sees (for everyone and for their teams), search and pages,
and rendering for a conversation (the customer's name and salutation, the agent's name) with
404 for what the agent may not see."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.domain.enums import Role
from tests.helpers import bearer, call, error_code, make_agent, table_digests
from tests.routing_helpers import team

Client = TestClient[Any, Any]
ADMIN_BASE = "/v1/admin/canned-responses"
BASE = "/v1/canned-responses"
WATCHED = ("canned_responses", "teams", "agents", "conversations", "messages")
REFUND = {
    "shortcut": "Refund-Delay",
    "title": "Refund is on its way",
    "body_text": "{{ salutation }}, your refund is on its way. {{ agent }}",
    "locale": "EN_gb",
}


async def create(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    status, created = await call(client, "POST", ADMIN_BASE, headers, body)
    assert status == 201, created
    return dict(created)


def response(shortcut: str, team_id: int | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "shortcut": shortcut,
        "title": f"Title of {shortcut}",
        "body_text": f"Text of {shortcut}",
        "team_id": team_id,
        **fields,
    }


async def conversation(
    db: asyncpg.Pool,
    *,
    name: str | None,
    locale: str | None = None,
    team_id: int | None = None,
    assignee_id: int | None = None,
) -> int:
    contact_id = await db.fetchval(
        "INSERT INTO contacts (name, locale) VALUES ($1, $2) RETURNING id", name, locale
    )
    return int(
        await db.fetchval(
            "INSERT INTO conversations (contact_id, channel, team_id, assignee_id)"
            " VALUES ($1, 'web', $2, $3) RETURNING id",
            contact_id,
            team_id,
            assignee_id,
        )
    )


async def shortcuts(client: Client, headers: dict[str, str], query: str = "") -> list[str]:
    status, body = await call(client, "GET", f"{BASE}{query}", headers)
    assert status == 200, body
    return [item["shortcut"] for item in body["items"]]


async def rendered(
    client: Client, headers: dict[str, str], response_id: int, conversation_id: int
) -> tuple[int, Any]:
    return await call(
        client,
        "POST",
        f"{BASE}/{response_id}/render",
        headers,
        {"conversation_id": conversation_id},
    )


# --- admin CRUD and roles ------------------------------------------------------------------


async def test_admins_create_read_change_and_delete(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    created = await create(client, admin, REFUND)
    admin_id = await db.fetchval("SELECT id FROM agents WHERE name = 'Admin'")
    assert created["shortcut"] == "refund-delay"  # lowercased
    assert created["locale"] == "en-GB"  # normalised like the templates'
    assert created["team_id"] is None and created["created_by"] == admin_id
    assert created["title"] == REFUND["title"] and created["body_text"] == REFUND["body_text"]
    assert created["created_at"] == created["updated_at"]
    path = f"{ADMIN_BASE}/{created['id']}"

    status, fetched = await call(client, "GET", path, admin)
    assert status == 200 and fetched == created
    status, listed = await call(client, "GET", ADMIN_BASE, admin)
    assert status == 200 and listed == {"items": [created], "next_cursor": None}

    sales = await team(db, "Sales")
    status, changed = await call(
        client, "PATCH", path, admin, {"title": "  Refund delayed  ", "team_id": sales}
    )
    assert status == 200, changed
    assert changed["title"] == "Refund delayed" and changed["team_id"] == sales
    assert changed["body_text"] == REFUND["body_text"] and changed["locale"] == "en-GB"
    assert changed["updated_at"] >= created["updated_at"]
    status, changed = await call(client, "PATCH", path, admin, {"team_id": None, "locale": None})
    assert status == 200 and changed["team_id"] is None and changed["locale"] is None

    status, _ = await call(client, "DELETE", path, admin)
    assert status == 204
    status, body = await call(client, "GET", path, admin)
    assert status == 404 and error_code(body) == "canned_response_not_found"
    status, body = await call(client, "DELETE", path, admin)
    assert status == 404 and error_code(body) == "canned_response_not_found"
    status, body = await call(client, "PATCH", path, admin, {"title": "x"})
    assert status == 404 and error_code(body) == "canned_response_not_found"
    assert await db.fetchval("SELECT count(*) FROM canned_responses") == 0


async def test_supervisors_read_agents_get_403_and_strangers_401(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    created = await create(client, admin, REFUND)
    path = f"{ADMIN_BASE}/{created['id']}"
    _, supervisor_token = await make_agent(db, name="Sue", role=Role.SUPERVISOR)
    _, agent_token = await make_agent(db, name="Al")
    supervisor, agent = bearer(supervisor_token), bearer(agent_token)
    before = await table_digests(db, WATCHED)

    assert (await call(client, "GET", ADMIN_BASE, supervisor))[0] == 200
    assert (await call(client, "GET", path, supervisor))[0] == 200
    writes = [
        ("POST", ADMIN_BASE, response("other")),
        ("PATCH", path, {"title": "changed"}),
        ("DELETE", path, None),
    ]
    for method, target, body in writes:
        status, answer = await call(client, method, target, supervisor, body)
        assert (status, error_code(answer)) == (403, "forbidden"), (method, target)
    for method, target, body in [("GET", ADMIN_BASE, None), ("GET", path, None), *writes]:
        status, answer = await call(client, method, target, agent, body)
        assert (status, error_code(answer)) == (403, "forbidden"), (method, target)
        status, answer = await call(client, method, target, {}, body)
        assert (status, error_code(answer)) == (401, "missing_token"), (method, target)
    for method, target in [("GET", BASE), ("POST", f"{BASE}/{created['id']}/render")]:
        status, answer = await call(client, method, target, {}, {"conversation_id": 1})
        assert (status, error_code(answer)) == (401, "missing_token"), (method, target)
    assert await table_digests(db, WATCHED) == before


# --- refusals: a code each, nothing written ------------------------------------------------

BAD_CREATES = [
    ({"shortcut": "-refund"}, 422, "invalid_shortcut"),
    ({"shortcut": "refund delay"}, 422, "invalid_shortcut"),
    ({"shortcut": "refund_delay"}, 422, "invalid_shortcut"),
    ({"shortcut": "r" * 51}, 422, "invalid_shortcut"),
    ({"shortcut": ""}, 422, "invalid_shortcut"),
    ({"shortcut": "réfund"}, 422, "invalid_shortcut"),
    ({"title": "   "}, 422, "invalid_title"),
    ({"title": "two\nlines"}, 422, "invalid_title"),
    ({"title": "t" * 201}, 422, "invalid_title"),
    ({"body_text": " \n "}, 422, "invalid_body"),
    ({"body_text": "b" * 5001}, 422, "invalid_body"),
    ({"body_text": "{% for x in name %}{{ x }}{% endfor %}"}, 422, "invalid_template"),
    ({"body_text": "Hi {{ nmae }}"}, 422, "invalid_template"),
    ({"body_text": "Hi {{ name.__class__ }}"}, 422, "invalid_template"),
    ({"body_text": "Hi {{ name "}, 422, "invalid_template"),
    ({"locale": "english please"}, 422, "invalid_locale"),
    ({"team_id": 999_999}, 422, "unknown_team"),
    ({"team_id": "2"}, 422, "validation_error"),
    ({"team_id": 0}, 422, "validation_error"),
    ({"title": None}, 422, "validation_error"),
    ({"colour": "red"}, 422, "validation_error"),
    ({"body_text": "nul \x00 here"}, 422, "validation_error"),
]


@pytest.mark.parametrize(("change", "status", "code"), BAD_CREATES)
async def test_a_bad_response_is_refused_with_its_code_and_nothing_is_written(
    client: Client,
    admin: dict[str, str],
    db: asyncpg.Pool,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    existing = await create(client, admin, response("existing"))
    before = await table_digests(db, WATCHED)
    got, body = await call(client, "POST", ADMIN_BASE, admin, {**response("new-one"), **change})
    assert (got, error_code(body)) == (status, code), body
    got, body = await call(client, "PATCH", f"{ADMIN_BASE}/{existing['id']}", admin, change)
    assert (got, error_code(body)) == (status, code), body
    assert await table_digests(db, WATCHED) == before


async def test_a_template_refusal_says_where(client: Client, admin: dict[str, str]) -> None:
    body_text = "Hello\n{{ salutation }}\n{{ nobody }}"
    status, body = await call(
        client, "POST", ADMIN_BASE, admin, response("where", body_text=body_text)
    )
    assert status == 422 and error_code(body) == "invalid_template"
    assert body["error"]["details"] == {"field": "body_text", "line": 3}


async def test_a_shortcut_is_unique_whatever_its_case(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    await create(client, admin, REFUND)
    other = await create(client, admin, response("other"))
    before = await table_digests(db, WATCHED)
    status, body = await call(
        client, "POST", ADMIN_BASE, admin, {**REFUND, "shortcut": "REFUND-delay"}
    )
    assert (status, error_code(body)) == (409, "canned_response_exists")
    assert body["error"]["details"] == {"shortcut": "refund-delay"}
    status, body = await call(
        client, "PATCH", f"{ADMIN_BASE}/{other['id']}", admin, {"shortcut": "Refund-DELAY"}
    )
    assert (status, error_code(body)) == (409, "canned_response_exists")
    assert await table_digests(db, WATCHED) == before


async def test_two_admins_creating_one_shortcut_at_once_get_one_row(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    answers = await asyncio.gather(
        *(call(client, "POST", ADMIN_BASE, admin, response("SAME")) for _ in range(4))
    )
    assert sorted(status for status, _ in answers) == [201, 409, 409, 409]
    assert await db.fetchval("SELECT count(*) FROM canned_responses") == 1


async def test_a_null_where_a_value_is_needed_is_refused(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    created = await create(client, admin, REFUND)
    before = await table_digests(db, WATCHED)
    for field in ("shortcut", "title", "body_text"):
        status, body = await call(
            client, "PATCH", f"{ADMIN_BASE}/{created['id']}", admin, {field: None}
        )
        assert (status, error_code(body)) == (422, "validation_error"), field
    assert await table_digests(db, WATCHED) == before


async def test_a_team_with_responses_is_not_deleted_under_them(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    sales = await team(db, "Sales")
    await create(client, admin, response("sales-only", sales))
    before = await table_digests(db, WATCHED)
    status, body = await call(client, "DELETE", f"/v1/admin/teams/{sales}", admin)
    assert (status, error_code(body)) == (409, "team_in_use")
    assert await table_digests(db, WATCHED) == before


# --- what agents see, search and pages -----------------------------------------------------


async def test_agents_see_those_for_everyone_and_for_their_teams(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    sales, billing = await team(db, "Sales"), await team(db, "Billing")
    for body in (
        response("everyone"),
        response("sales-pitch", sales),
        response("billing-faq", billing),
    ):
        await create(client, admin, body)
    _, seller = await make_agent(db, name="Sam", team="Sales")
    _, generalist = await make_agent(db, name="Gina")
    _, supervisor = await make_agent(db, name="Sue", role=Role.SUPERVISOR)

    assert await shortcuts(client, bearer(seller)) == ["everyone", "sales-pitch"]
    assert await shortcuts(client, bearer(generalist)) == ["everyone"]
    everything = ["billing-faq", "everyone", "sales-pitch"]
    assert await shortcuts(client, bearer(supervisor)) == everything
    assert await shortcuts(client, admin) == everything
    # one team's own
    assert await shortcuts(client, bearer(seller), f"?team_id={sales}") == ["sales-pitch"]
    assert await shortcuts(client, bearer(seller), f"?team_id={billing}") == []
    assert await shortcuts(client, bearer(supervisor), f"?team_id={billing}") == ["billing-faq"]
    status, listed = await call(client, "GET", f"{ADMIN_BASE}?team_id={sales}", admin)
    assert status == 200 and [i["shortcut"] for i in listed["items"]] == ["sales-pitch"]


async def test_search_matches_shortcut_title_and_text_whatever_the_case(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    await create(client, admin, REFUND)
    await create(client, admin, response("shipping", title="Where is my PARCEL"))
    await create(client, admin, response("discount", body_text="Take 10% off, {{ name }}"))
    await create(client, admin, response("discount-b", body_text="Take 100 off"))
    _, token = await make_agent(db, name="Al")
    agent = bearer(token)
    assert await shortcuts(client, agent, "?q=REFUND") == ["refund-delay"]
    assert await shortcuts(client, agent, "?q=parcel") == ["shipping"]
    assert await shortcuts(client, agent, "?q=on%20its%20way") == ["refund-delay"]
    # % and _ are taken literally, not as wildcards
    assert await shortcuts(client, agent, "?q=10%25") == ["discount"]
    assert await shortcuts(client, agent, "?q=_") == []
    assert await shortcuts(client, agent, "?q=nothing-like-this") == []
    assert len(await shortcuts(client, agent, "?q=")) == 4


async def test_pages_follow_the_cursor_to_the_end(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    names = [f"reply-{n:02d}" for n in range(7)]
    for name in reversed(names):
        await create(client, admin, response(name))
    _, token = await make_agent(db, name="Al")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, page = await call(client, "GET", f"{BASE}{query}", bearer(token))
        assert status == 200 and len(page["items"]) <= 3
        seen += [item["shortcut"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?limit=0", 422, "invalid_query"),
        ("?limit=101", 422, "invalid_query"),
        ("?limit=ten", 422, "invalid_query"),
        ("?team_id=sales", 422, "invalid_query"),
        ("?team_id=0", 422, "invalid_query"),
        ("?q=" + "x" * 201, 422, "invalid_query"),
        ("?q=nul%00", 422, "invalid_query"),
        ("?cursor=%2Fnot-ours", 400, "invalid_cursor"),
        ("?cursor=" + "a" * 51, 400, "invalid_cursor"),
    ],
)
async def test_bad_list_queries_are_refused(
    client: Client, admin: dict[str, str], query: str, status: int, code: str
) -> None:
    for path in (BASE, ADMIN_BASE):
        got, body = await call(client, "GET", f"{path}{query}", admin)
        assert (got, error_code(body)) == (status, code), (path, body)


# --- rendering for a conversation ----------------------------------------------------------


async def test_render_fills_the_customer_and_the_agent(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    created = await create(
        client,
        admin,
        response(
            "hello",
            body_text="{{ salutation }}, this is {{ agent }}.{{ survey_link }}"
            "{% if name %} Thanks, {{ name|upper }}!{% endif %}",
        ),
    )
    _, token = await make_agent(db, name="Ada Lovelace")
    general = await db.fetchval("SELECT id FROM teams WHERE is_default")
    named = await conversation(db, name="  Ann   Lee ", locale="en-GB", team_id=general)
    unnamed = await conversation(db, name=None, team_id=general)
    chinese = await conversation(db, name="王芳", locale="zh-CN", team_id=general)
    before = await table_digests(db, WATCHED)

    status, body = await rendered(client, bearer(token), created["id"], named)
    assert status == 200
    assert body == {"text": "Dear Ann Lee, this is Ada Lovelace. Thanks, ANN LEE!"}
    status, body = await rendered(client, bearer(token), created["id"], unnamed)
    assert (status, body) == (200, {"text": "Hello, this is Ada Lovelace."})
    status, body = await rendered(client, bearer(token), created["id"], chinese)
    assert (status, body) == (200, {"text": "尊敬的王芳, this is Ada Lovelace. Thanks, 王芳!"})
    # rendering writes nothing
    assert await table_digests(db, WATCHED) == before


async def test_a_response_in_a_language_greets_in_that_language(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    created = await create(
        client, admin, response("zh-hello", locale="zh-cn", body_text="{{ salutation }}，您好")
    )
    assert created["locale"] == "zh-CN"
    general = await db.fetchval("SELECT id FROM teams WHERE is_default")
    english = await conversation(db, name="Ann", locale="en", team_id=general)
    status, body = await rendered(client, admin, created["id"], english)
    assert (status, body) == (200, {"text": "尊敬的Ann，您好"})


async def test_render_answers_404_for_what_the_agent_may_not_see(
    client: Client, admin: dict[str, str], db: asyncpg.Pool
) -> None:
    sales, billing = await team(db, "Sales"), await team(db, "Billing")
    for_everyone = await create(client, admin, response("everyone"))
    for_billing = await create(client, admin, response("billing-faq", billing))
    seller_id, token = await make_agent(db, name="Sam", team="Sales")
    seller = bearer(token)
    in_sales = await conversation(db, name="Ann", team_id=sales)
    in_billing = await conversation(db, name="Bob", team_id=billing)
    mine_in_billing = await conversation(db, name="Cy", team_id=billing, assignee_id=seller_id)

    # a conversation of another team: 404, exactly as one that does not exist
    for conversation_id in (in_billing, 999_999):
        status, body = await rendered(client, seller, for_everyone["id"], conversation_id)
        assert (status, error_code(body)) == (404, "conversation_not_found")
    # one assigned to them, in another team, they see (as in the inbox)
    status, body = await rendered(client, seller, for_everyone["id"], mine_in_billing)
    assert (status, body) == (200, {"text": "Text of everyone"})
    # another team's response: 404, exactly as one that does not exist
    for response_id in (for_billing["id"], 999_999):
        status, body = await rendered(client, seller, response_id, in_sales)
        assert (status, error_code(body)) == (404, "canned_response_not_found")
    status, body = await call(
        client, "POST", f"{BASE}/abc/render", seller, {"conversation_id": in_sales}
    )
    assert status == 404
    # supervisors see every response and conversation
    _, supervisor = await make_agent(db, name="Sue", role=Role.SUPERVISOR)
    status, body = await rendered(client, bearer(supervisor), for_billing["id"], in_sales)
    assert (status, body) == (200, {"text": "Text of billing-faq"})


@pytest.mark.parametrize(
    "body",
    [{}, {"conversation_id": "1"}, {"conversation_id": 0}, {"conversation_id": 1, "x": 1}],
)
async def test_a_bad_render_body_is_refused(
    client: Client, admin: dict[str, str], body: dict[str, Any]
) -> None:
    created = await create(client, admin, response("hello"))
    status, answer = await call(client, "POST", f"{BASE}/{created['id']}/render", admin, body)
    assert (status, error_code(answer)) == (422, "validation_error")
