"""Invariant 8 for the web chat API and the agent inbox: every bad input gets a clear 4xx in
the error envelope with a machine-readable code, never a 500, and nothing is written."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse, WSServerHandshakeError
from aiohttp.test_utils import TestClient

from contactcenter.settings import Settings
from tests.helpers import bearer, make_agent, new_client_id, start_chat

# every table a bad request could leave a row (or a changed row) in
WATCHED_TABLES = ("messages", "conversations", "contacts", "contact_identities", "agents")
OVER_2_63 = str(2**63)
# digits to str.isdigit() but not ASCII decimals: superscript two, Arabic-Indic one, fullwidth 5
UNICODE_DIGITS = ["\u00b2", "\u0661", "\uff15"]
WEBSOCKET_HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
}

Client = TestClient[Any, Any]
# an endpoint that reads a JSON body, by name -> (method, path, headers)
Endpoints = dict[str, tuple[str, str, dict[str, str]]]


async def assert_error(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """The status, the envelope of API.md with exactly its three keys, the code; a request id."""
    body = await response.text()
    assert response.status == status, body
    assert response.content_type == "application/json", body
    assert response.headers.get("X-Request-ID"), "every answer carries a request id"
    envelope = json.loads(body)
    assert set(envelope) == {"error"}, body
    error: dict[str, Any] = envelope["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], dict), body
    return error


def fields_named(error: dict[str, Any]) -> set[str]:
    return {field["field"] for field in error["details"]["fields"]}


async def _table_state(db: asyncpg.Pool) -> dict[str, tuple[int, str]]:
    """Per table: its row count and a digest of every row, so an UPDATE shows too."""
    state = {}
    for table in WATCHED_TABLES:
        row = await db.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), ''))"
            f" AS digest FROM {table} AS t"
        )
        state[table] = (row["n"], row["digest"])
    return state


@contextlib.asynccontextmanager
async def nothing_written(db: asyncpg.Pool) -> AsyncIterator[None]:
    before = await _table_state(db)
    yield
    assert await _table_state(db) == before


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def agent_token(db: asyncpg.Pool) -> str:
    _, token = await make_agent(db, name="Alice Chen")
    return token


@pytest.fixture
async def chat(client: Client, db: asyncpg.Pool) -> dict[str, Any]:
    """A web conversation in the default team, so an agent of that team sees it."""
    started = await start_chat(client)
    await db.execute(
        "UPDATE conversations SET team_id = (SELECT id FROM teams WHERE is_default) WHERE id = $1",
        started["conversation_id"],
    )
    return started


@pytest.fixture
def endpoints(chat: dict[str, Any], agent_token: str) -> Endpoints:
    """Every endpoint that reads a JSON body: name -> (method, path, headers)."""
    conversation = chat["conversation_id"]
    visitor, agent = bearer(chat["visitor_token"]), bearer(agent_token)
    return {
        "start": ("POST", "/v1/web/conversations", {}),
        "message": ("POST", f"/v1/web/conversations/{conversation}/messages", visitor),
        "reply": ("POST", f"/v1/conversations/{conversation}/replies", agent),
        "note": ("POST", f"/v1/conversations/{conversation}/notes", agent),
        "status": ("POST", f"/v1/conversations/{conversation}/status", agent),
        "presence": ("PUT", "/v1/agents/me/presence", agent),
    }


JSON_ENDPOINTS = ("start", "message", "reply", "note", "status", "presence")
TEXT_ENDPOINTS = ("start", "message", "reply", "note")


def valid_body(endpoint: str) -> dict[str, Any]:
    """A body the endpoint would accept, to spoil one field at a time."""
    return {
        "start": {"text": "Hello", "client_message_id": new_client_id()},
        "message": {"text": "Hello", "client_message_id": new_client_id()},
        "reply": {"text": "Hello"},
        "note": {"text": "Hello"},
        "status": {"status": "pending"},
        "presence": {"status": "away"},
    }[endpoint]


# ------------------------------------------------------------------------- the body as a whole


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"text": "hi",}',
        b"{'text': 'hi'}",
        b"\xff\xfe{}",
        b'{"text": "hi"} trailing',
        '{"text": "hi"}'.encode("utf-16"),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"text": ' + b"1" * 5000 + b"}",
    ],
    ids=[
        "empty",
        "unclosed",
        "trailing-comma",
        "single-quotes",
        "not-utf8",
        "trailing-garbage",
        "utf-16",
        "deeply-nested-list",
        "deeply-nested-object",
        "integer-of-5000-digits",
    ],
)
async def test_a_body_that_is_not_json_is_invalid_json(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str, raw: bytes
) -> None:
    method, path, headers = endpoints[endpoint]
    async with nothing_written(db):
        response = await client.request(
            method, path, data=raw, headers={**headers, "Content-Type": "application/json"}
        )
        await assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
@pytest.mark.parametrize("document", [[], ["text"], "hello", 42, None, True])
async def test_json_that_is_not_an_object_is_a_validation_error(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str, document: Any
) -> None:
    method, path, headers = endpoints[endpoint]
    async with nothing_written(db):
        response = await client.request(
            method,
            path,
            data=json.dumps(document),
            headers={**headers, "Content-Type": "application/json"},
        )
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {"body"}


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/x-www-form-urlencoded", "text=hi&client_message_id=abc"),
        ("text/plain", '{"text": "hi"}'),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"'),
        ("application/octet-stream", '{"text": "hi"}'),
        ("application/jsonp", '{"text": "hi"}'),
    ],
    ids=["form", "text", "multipart", "octet-stream", "jsonp"],
)
async def test_a_body_that_is_not_declared_json_is_an_unsupported_media_type(
    client: Client,
    db: asyncpg.Pool,
    endpoints: Endpoints,
    endpoint: str,
    content_type: str,
    data: str,
) -> None:
    method, path, headers = endpoints[endpoint]
    async with nothing_written(db):
        response = await client.request(
            method, path, data=data, headers={**headers, "Content-Type": content_type}
        )
        await assert_error(response, 415, "unsupported_media_type")


async def test_a_json_body_with_a_charset_is_accepted(client: Client, db: asyncpg.Pool) -> None:
    """The media type decides, not its parameters: the 415 above is not a blanket refusal."""
    body = {"text": "Hello", "client_message_id": new_client_id()}
    response = await client.post(
        "/v1/web/conversations",
        data=json.dumps(body),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 201, await response.text()


async def _in_chunks(raw: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_the_size_limit_is_payload_too_large(
    client: Client,
    db: asyncpg.Pool,
    settings: Settings,
    endpoints: Endpoints,
    endpoint: str,
    framing: str,
) -> None:
    method, path, headers = endpoints[endpoint]
    raw = json.dumps({**valid_body(endpoint), "text": "x" * settings.max_body_bytes}).encode()
    data = io.BytesIO(raw) if framing == "content-length" else _in_chunks(raw)
    async with nothing_written(db):
        response = await client.request(
            method, path, data=data, headers={**headers, "Content-Type": "application/json"}
        )
        await assert_error(response, 413, "payload_too_large")


# -------------------------------------------------------------------------------- the fields


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
async def test_an_unknown_field_is_refused_by_name(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str
) -> None:
    method, path, headers = endpoints[endpoint]
    body = {**valid_body(endpoint), "txet": "a typo must not be a silent no-op"}
    async with nothing_written(db):
        response = await client.request(method, path, json=body, headers=headers)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {"txet"}


@pytest.mark.parametrize(
    ("endpoint", "missing"),
    [
        ("start", "text"),
        ("start", "client_message_id"),
        ("message", "text"),
        ("message", "client_message_id"),
        ("reply", "text"),
        ("note", "text"),
        ("status", "status"),
        ("presence", "status"),
    ],
)
async def test_a_missing_required_field_is_named(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str, missing: str
) -> None:
    method, path, headers = endpoints[endpoint]
    body = valid_body(endpoint)
    del body[missing]
    async with nothing_written(db):
        response = await client.request(method, path, json=body, headers=headers)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {missing}


@pytest.mark.parametrize(
    ("endpoint", "field", "value"),
    [
        ("start", "text", 123),
        ("start", "text", None),
        ("start", "text", ["Hello"]),
        ("start", "client_message_id", 12345678901234567890),
        ("start", "name", 5),
        ("start", "email", True),
        ("start", "phone", {"number": "+14155550100"}),
        ("message", "text", {"text": "Hello"}),
        ("message", "client_message_id", None),
        ("reply", "text", False),
        ("reply", "channel", 1),
        ("reply", "channel", "carrier-pigeon"),
        ("note", "text", 1.5),
        ("status", "status", 1),
        ("status", "until", "tomorrow"),
        ("presence", "status", None),
    ],
)
async def test_a_field_of_the_wrong_type_is_named(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str, field: str, value: Any
) -> None:
    method, path, headers = endpoints[endpoint]
    body = {**valid_body(endpoint), field: value}
    async with nothing_written(db):
        response = await client.request(method, path, json=body, headers=headers)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {field}


@pytest.mark.parametrize("endpoint", TEXT_ENDPOINTS)
@pytest.mark.parametrize("text", ["", " ", "\n\t  \r\n"], ids=["empty", "space", "whitespace"])
async def test_blank_text_is_empty_text(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str, text: str
) -> None:
    method, path, headers = endpoints[endpoint]
    async with nothing_written(db):
        response = await client.request(
            method, path, json={**valid_body(endpoint), "text": text}, headers=headers
        )
        await assert_error(response, 422, "empty_text")


@pytest.mark.parametrize("endpoint", TEXT_ENDPOINTS)
async def test_text_over_the_limit_is_text_too_long(
    client: Client, db: asyncpg.Pool, settings: Settings, endpoints: Endpoints, endpoint: str
) -> None:
    method, path, headers = endpoints[endpoint]
    text = "x" * (settings.max_message_chars + 1)
    async with nothing_written(db):
        response = await client.request(
            method, path, json={**valid_body(endpoint), "text": text}, headers=headers
        )
        error = await assert_error(response, 422, "text_too_long")
    assert error["details"]["max"] == settings.max_message_chars


async def test_text_of_exactly_the_limit_is_accepted(client: Client, settings: Settings) -> None:
    """The other side of the boundary above: the limit itself is allowed."""
    chat = await start_chat(client, "é" * settings.max_message_chars)
    assert chat["message_id"]


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ("start", "text"),
        ("start", "name"),
        ("start", "email"),
        ("start", "phone"),
        ("message", "text"),
        ("reply", "text"),
        ("note", "text"),
    ],
)
@pytest.mark.parametrize("value", ["Hel\x00lo", "Hel\ud800lo"], ids=["nul", "lone-surrogate"])
async def test_text_postgresql_cannot_store_is_refused_by_name(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, endpoint: str, field: str, value: str
) -> None:
    """NUL and a lone surrogate (JSON "\\ud800") are valid JSON strings but no PostgreSQL text."""
    method, path, headers = endpoints[endpoint]
    body = {**valid_body(endpoint), field: value}
    async with nothing_written(db):
        response = await client.request(method, path, json=body, headers=headers)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "N" * 201), ("email", "a" * 310 + "@example.com"), ("phone", "1" * 41)],
)
async def test_a_contact_field_over_its_length_is_refused_by_name(
    client: Client, db: asyncpg.Pool, field: str, value: str
) -> None:
    body = {**valid_body("start"), field: value}
    async with nothing_written(db):
        response = await client.post("/v1/web/conversations", json=body)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {field}


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "@example.com", "wang@", "wang@localhost", "wang fang@example.com", "   "],
)
async def test_an_invalid_email_is_invalid_email(
    client: Client, db: asyncpg.Pool, email: str
) -> None:
    async with nothing_written(db):
        response = await client.post(
            "/v1/web/conversations", json={**valid_body("start"), "email": email}
        )
        await assert_error(response, 422, "invalid_email")


@pytest.mark.parametrize("phone", ["12", "call me", "+1 555", "+999 123 456 789", "0123456789"])
async def test_an_invalid_phone_is_invalid_phone(
    client: Client, db: asyncpg.Pool, phone: str
) -> None:
    async with nothing_written(db):
        response = await client.post(
            "/v1/web/conversations", json={**valid_body("start"), "phone": phone}
        )
        await assert_error(response, 422, "invalid_phone")


async def test_a_valid_email_with_an_invalid_phone_writes_no_contact(
    client: Client, db: asyncpg.Pool
) -> None:
    """The e-mail alone would make a contact and an identity: the bad phone stops both."""
    body = {**valid_body("start"), "email": "wang.fang@example.com", "phone": "12"}
    async with nothing_written(db):
        response = await client.post("/v1/web/conversations", json=body)
        await assert_error(response, 422, "invalid_phone")


@pytest.mark.parametrize(
    "client_message_id",
    ["", "short", "a" * 15, "a" * 129, "has spaces in it 123", "slash/es/are/not/ok", "é" * 16],
    ids=["empty", "short", "15-chars", "129-chars", "spaces", "slashes", "non-ascii"],
)
async def test_a_start_client_message_id_off_the_pattern_is_refused(
    client: Client, db: asyncpg.Pool, client_message_id: str
) -> None:
    body = {"text": "Hello", "client_message_id": client_message_id}
    async with nothing_written(db):
        response = await client.post("/v1/web/conversations", json=body)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {"client_message_id"}


@pytest.mark.parametrize(
    "client_message_id", ["", "a" * 129, "bad id", "new:ok?"], ids=["empty", "129", "space", "?"]
)
async def test_a_message_client_message_id_off_the_pattern_is_refused(
    client: Client, db: asyncpg.Pool, endpoints: Endpoints, client_message_id: str
) -> None:
    method, path, headers = endpoints["message"]
    body = {"text": "Hello", "client_message_id": client_message_id}
    async with nothing_written(db):
        response = await client.request(method, path, json=body, headers=headers)
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {"client_message_id"}


# ----------------------------------------------------------------------- the visitor's token


def _visitor_cases(chat: dict[str, Any], other: dict[str, Any]) -> list[tuple[Any, int, str]]:
    """(headers, status, code): no token, a spoilt one, and one for another conversation."""
    token = chat["visitor_token"]
    return [
        ({}, 401, "missing_token"),
        ({"Authorization": "Bearer "}, 401, "missing_token"),
        ({"Authorization": f"Basic {token}"}, 401, "missing_token"),
        (bearer("garbage"), 401, "invalid_token"),
        (bearer(token[:-4] + "AAAA"), 401, "invalid_token"),
        (bearer(other["visitor_token"]), 403, "forbidden"),
    ]


async def test_the_visitor_api_refuses_a_missing_bad_or_foreign_token(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any]
) -> None:
    other = await start_chat(client, "Someone else's question")
    path = f"/v1/web/conversations/{chat['conversation_id']}/messages"
    for headers, status, code in _visitor_cases(chat, other):
        async with nothing_written(db):
            posted = await client.post(path, json=valid_body("message"), headers=headers)
            await assert_error(posted, status, code)
            read = await client.get(path, headers=headers)
            await assert_error(read, status, code)


async def test_the_visitor_socket_refuses_a_missing_bad_or_foreign_token(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any]
) -> None:
    other = await start_chat(client, "Someone else's question")
    path = f"/v1/web/conversations/{chat['conversation_id']}/ws"
    cases = [
        ("", 401, "missing_token"),
        ("?token=", 401, "missing_token"),
        ("?token=garbage", 401, "invalid_token"),
        (f"?token={other['visitor_token']}", 403, "forbidden"),
    ]
    for query, status, code in cases:
        async with nothing_written(db):
            refused = await client.get(path + query, headers=WEBSOCKET_HANDSHAKE)
            await assert_error(refused, status, code)
            with pytest.raises(WSServerHandshakeError) as handshake:
                await client.ws_connect(path + query)
            assert handshake.value.status == status


async def test_a_visitor_token_is_checked_against_an_unknown_conversation_too(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any]
) -> None:
    """A real token cannot be used to probe other ids: it is for its own conversation only."""
    token = bearer(chat["visitor_token"])
    async with nothing_written(db):
        for conversation in ("999999", str(2**63 - 1)):
            response = await client.post(
                f"/v1/web/conversations/{conversation}/messages",
                json=valid_body("message"),
                headers=token,
            )
            await assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(
    "conversation", ["abc", "0", "-1", "1.0", "0x1", OVER_2_63, *UNICODE_DIGITS]
)
async def test_a_visitor_path_with_a_bad_id_is_not_found(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any], conversation: str
) -> None:
    token = bearer(chat["visitor_token"])
    async with nothing_written(db):
        for method, suffix in (("POST", "messages"), ("GET", "messages"), ("GET", "ws")):
            response = await client.request(
                method,
                f"/v1/web/conversations/{conversation}/{suffix}",
                json=valid_body("message") if method == "POST" else None,
                headers={**token, **(WEBSOCKET_HANDSHAKE if suffix == "ws" else {})},
            )
            await assert_error(response, 404, "not_found")


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", OVER_2_63, *UNICODE_DIGITS])
async def test_a_bad_after_is_an_invalid_query(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any], after: str
) -> None:
    base = f"/v1/web/conversations/{chat['conversation_id']}"
    token = chat["visitor_token"]
    async with nothing_written(db):
        history = await client.get(f"{base}/messages?after={after}", headers=bearer(token))
        await assert_error(history, 422, "invalid_query")
        socket = await client.get(
            f"{base}/ws?token={token}&after={after}", headers=WEBSOCKET_HANDSHAKE
        )
        await assert_error(socket, 422, "invalid_query")


# ------------------------------------------------------------------------- the agent's token

AGENT_ROUTES = [
    ("GET", "/v1/inbox", None),
    ("GET", "/v1/conversations/{id}", None),
    ("POST", "/v1/conversations/{id}/replies", {"text": "Hello"}),
    ("POST", "/v1/conversations/{id}/notes", {"text": "Hello"}),
    ("POST", "/v1/conversations/{id}/status", {"status": "resolved"}),
    ("PUT", "/v1/agents/me/presence", {"status": "away"}),
]
AGENT_ROUTE_IDS = ["inbox", "conversation", "reply", "note", "status", "presence"]


@pytest.mark.parametrize(("method", "path", "body"), AGENT_ROUTES, ids=AGENT_ROUTE_IDS)
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer"}, "missing_token"),
        ({"Authorization": "Token cc_abc"}, "missing_token"),
        (bearer("garbage"), "invalid_token"),
        (bearer("cc_" + "A" * 43), "invalid_token"),
    ],
    ids=["none", "empty-bearer", "other-scheme", "garbage", "unknown"],
)
async def test_the_inbox_refuses_a_missing_or_wrong_agent_token(
    client: Client,
    db: asyncpg.Pool,
    chat: dict[str, Any],
    agent_token: str,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    code: str,
) -> None:
    path = path.format(id=chat["conversation_id"])
    async with nothing_written(db):
        response = await client.request(method, path, json=body, headers=headers)
        await assert_error(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_visitor_token_is_not_an_agent_token(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any]
) -> None:
    async with nothing_written(db):
        response = await client.get(
            f"/v1/conversations/{chat['conversation_id']}", headers=bearer(chat["visitor_token"])
        )
        await assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ("", {}, "missing_token"),
        ("?token=", {}, "missing_token"),
        ("?token=garbage", {}, "invalid_token"),
        ("", bearer("cc_" + "A" * 43), "invalid_token"),
    ],
    ids=["none", "empty", "garbage-query", "unknown-header"],
)
async def test_the_events_socket_refuses_a_missing_or_wrong_agent_token(
    client: Client, db: asyncpg.Pool, query: str, headers: dict[str, str], code: str
) -> None:
    async with nothing_written(db):
        refused = await client.get("/v1/events" + query, headers={**headers, **WEBSOCKET_HANDSHAKE})
        await assert_error(refused, 401, code)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        with pytest.raises(WSServerHandshakeError) as handshake:
            await client.ws_connect("/v1/events" + query, headers=headers)
        assert handshake.value.status == 401


# ------------------------------------------------------------------------------- unknown ids


MALFORMED_IDS = ["abc", "0", "-1", "1e3", " 1", "0x10", OVER_2_63, "9" * 40, *UNICODE_DIGITS]


@pytest.mark.parametrize(
    ("conversation", "code"),
    [
        *((bad, "not_found") for bad in MALFORMED_IDS),
        ("999999", "conversation_not_found"),
        (str(2**63 - 1), "conversation_not_found"),
    ],
    ids=[
        "letters",
        "zero",
        "negative",
        "exponent",
        "space",
        "hex",
        "2**63",
        "40-digits",
        "superscript",
        "arabic-indic",
        "fullwidth",
        "unknown",
        "largest-id",
    ],
)
async def test_a_conversation_that_is_not_there_is_not_found(
    client: Client, db: asyncpg.Pool, agent_token: str, conversation: str, code: str
) -> None:
    headers = bearer(agent_token)
    async with nothing_written(db):
        for method, suffix, body in (
            ("GET", "", None),
            ("POST", "/replies", {"text": "Hello"}),
            ("POST", "/notes", {"text": "Hello"}),
            ("POST", "/status", {"status": "resolved"}),
        ):
            response = await client.request(
                method, f"/v1/conversations/{conversation}{suffix}", json=body, headers=headers
            )
            await assert_error(response, 404, code)


async def test_another_teams_conversation_looks_exactly_like_an_unknown_one(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any], agent_token: str
) -> None:
    await db.execute("INSERT INTO teams (name) VALUES ('Other')")
    _, outsider = await make_agent(db, name="Bob Outsider", team="Other")
    conversation = chat["conversation_id"]
    seen = await client.get(f"/v1/conversations/{conversation}", headers=bearer(agent_token))
    assert seen.status == 200, "the conversation's own team sees it"

    async with nothing_written(db):
        for method, suffix, body in (
            ("GET", "", None),
            ("POST", "/replies", {"text": "Hello"}),
            ("POST", "/notes", {"text": "Hello"}),
            ("POST", "/status", {"status": "resolved"}),
        ):
            answers = []
            for target in (conversation, 999999):
                response = await client.request(
                    method,
                    f"/v1/conversations/{target}{suffix}",
                    json=body,
                    headers=bearer(outsider),
                )
                await assert_error(response, 404, "conversation_not_found")
                answers.append(await response.json())
            assert answers[0] == answers[1], "an id never tells what it hides"

    inbox = await (await client.get("/v1/inbox", headers=bearer(outsider))).json()
    assert inbox["items"] == []


# ----------------------------------------------------------------------- the inbox's queries


@pytest.mark.parametrize(
    "query",
    [
        "view=bogus",
        "view=",
        "view=MINE",
        "status=bogus",
        "status=",
        "status=open,bogus",
        "status=open,",
        "channel=bogus",
        "channel=",
        "channel=WEB",
        "limit=0",
        "limit=101",
        "limit=1000",
        "limit=abc",
        "limit=-1",
        "limit=2.5",
        "limit=",
        "limit=" + OVER_2_63,
        *("limit=" + digit for digit in UNICODE_DIGITS),
    ],
)
async def test_a_bad_inbox_query_is_invalid_query(
    client: Client, db: asyncpg.Pool, agent_token: str, query: str
) -> None:
    async with nothing_written(db):
        response = await client.get(f"/v1/inbox?{query}", headers=bearer(agent_token))
        error = await assert_error(response, 422, "invalid_query")
    assert error["details"]["field"] == query.partition("=")[0]


def _cursor(document: Any) -> str:
    raw = json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "%00",
        _cursor({"a": 1}),
        _cursor([1, 2]),
        _cursor([0, "yesterday", 1]),
        _cursor([0, "2026-01-01T00:00:00", 1]),
        _cursor([0, "2026-01-01T00:00:00+00:00", 0]),
        _cursor([0, "2026-01-01T00:00:00+00:00", 2**63]),
        _cursor([2**15, "2026-01-01T00:00:00+00:00", 1]),
        _cursor([None, "2026-01-01T00:00:00+00:00", 1]),
        _cursor([0, 5, 1]),
        _cursor("text"),
        _cursor(7),
        _cursor([float("inf"), "2026-01-01T00:00:00+00:00", 1]),
        _cursor([0, "2026-01-01T00:00:00+00:00", float("nan")]),
        base64.urlsafe_b64encode(b'[0, "2026-01-01T00:00:00+00:00", 1e400]').decode(),
        _cursor([0, "0001-01-01T00:00:00+14:00", 1]),
        _cursor([0, "9999-12-31T23:59:59-14:00", 1]),
    ],
)
async def test_a_cursor_this_server_did_not_give_is_invalid_cursor(
    client: Client, db: asyncpg.Pool, agent_token: str, cursor: str
) -> None:
    async with nothing_written(db):
        response = await client.get(f"/v1/inbox?cursor={cursor}", headers=bearer(agent_token))
        await assert_error(response, 400, "invalid_cursor")


# ----------------------------------------------------------------- status, presence, replies


def _in(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"status": "closed"}, "validation_error"),
        ({"status": "bogus"}, "validation_error"),
        ({"status": "RESOLVED"}, "validation_error"),
        ({"status": "snoozed"}, "invalid_until"),
        ({"status": "snoozed", "until": None}, "invalid_until"),
        ({"status": "snoozed", "until": _in(-60)}, "invalid_until"),
        ({"status": "snoozed", "until": "2026-13-40T00:00:00+00:00"}, "validation_error"),
        ({"status": "snoozed", "until": "9999-12-31T23:59:59-14:00"}, "invalid_until"),
        ({"status": "open", "until": _in(60)}, "invalid_until"),
        ({"status": "resolved", "until": _in(60)}, "invalid_until"),
    ],
    ids=[
        "closed",
        "bogus",
        "upper-case",
        "snoozed-without-until",
        "snoozed-until-null",
        "snoozed-in-the-past",
        "impossible-date",
        "past-year-9999-in-utc",
        "open-with-until",
        "resolved-with-until",
    ],
)
async def test_a_bad_status_change_is_refused(
    client: Client,
    db: asyncpg.Pool,
    chat: dict[str, Any],
    agent_token: str,
    body: dict[str, Any],
    code: str,
) -> None:
    path = f"/v1/conversations/{chat['conversation_id']}/status"
    async with nothing_written(db):
        response = await client.post(path, json=body, headers=bearer(agent_token))
        await assert_error(response, 422, code)


async def test_snoozing_until_a_time_without_an_offset_is_refused(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any], agent_token: str
) -> None:
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    path = f"/v1/conversations/{chat['conversation_id']}/status"
    async with nothing_written(db):
        response = await client.post(
            path, json={"status": "snoozed", "until": naive}, headers=bearer(agent_token)
        )
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {"until"}


@pytest.mark.parametrize("status", ["bogus", "ONLINE", "", "busy"])
async def test_an_unknown_presence_is_refused(
    client: Client, db: asyncpg.Pool, agent_token: str, status: str
) -> None:
    async with nothing_written(db):
        response = await client.put(
            "/v1/agents/me/presence", json={"status": status}, headers=bearer(agent_token)
        )
        error = await assert_error(response, 422, "validation_error")
    assert fields_named(error) == {"status"}


@pytest.mark.parametrize("channel", ["sms", "email"])
async def test_a_reply_on_a_channel_the_customer_cannot_be_reached_on_is_refused(
    client: Client, db: asyncpg.Pool, chat: dict[str, Any], agent_token: str, channel: str
) -> None:
    """A web visitor who gave neither a phone number nor an address."""
    path = f"/v1/conversations/{chat['conversation_id']}/replies"
    async with nothing_written(db):
        response = await client.post(
            path, json={"text": "Hello", "channel": channel}, headers=bearer(agent_token)
        )
        await assert_error(response, 422, "no_recipient")


# ---------------------------------------------------------------- routes, methods, request ids


@pytest.mark.parametrize(
    "path", ["/v1/nowhere", "/v1/web/conversations/1/nope", "/v2/inbox", "/", "/v1/inbox/"]
)
async def test_an_unknown_route_is_not_found_in_the_envelope(
    client: Client, db: asyncpg.Pool, agent_token: str, path: str
) -> None:
    async with nothing_written(db):
        for method in ("GET", "POST"):
            response = await client.request(method, path, headers=bearer(agent_token))
            await assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/web/conversations", "POST"),
        ("DELETE", "/v1/web/conversations/1/messages", "GET"),
        ("POST", "/v1/inbox", "GET"),
        ("PATCH", "/v1/conversations/1/replies", "POST"),
        ("GET", "/v1/agents/me/presence", "PUT"),
        ("POST", "/v1/events", "GET"),
    ],
)
async def test_a_wrong_method_is_method_not_allowed_in_the_envelope(
    client: Client, db: asyncpg.Pool, agent_token: str, method: str, path: str, allowed: str
) -> None:
    async with nothing_written(db):
        response = await client.request(method, path, headers=bearer(agent_token))
        await assert_error(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"]


async def test_a_sane_caller_request_id_is_echoed_on_errors(client: Client) -> None:
    for request_id in ("req-42", "a.B_c-9", "x" * 64):
        response = await client.get("/v1/inbox", headers={"X-Request-ID": request_id})
        await assert_error(response, 401, "missing_token")
        assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize("offered", ["", "x" * 65, "has space", "semi;colon", "<script>"], ids=str)
async def test_an_insane_caller_request_id_is_replaced(client: Client, offered: str) -> None:
    response = await client.post(
        "/v1/web/conversations", data="{", headers={"X-Request-ID": offered}
    )
    await assert_error(response, 415, "unsupported_media_type")
    assert response.headers["X-Request-ID"] not in ("", offered)


async def test_every_error_carries_its_own_request_id(client: Client) -> None:
    ids = set()
    for _ in range(3):
        response = await client.get("/v1/nowhere")
        await assert_error(response, 404, "not_found")
        ids.add(response.headers["X-Request-ID"])
    assert len(ids) == 3


async def _raw_request(client: Client, request: bytes) -> tuple[int, dict[str, Any]]:
    """Bytes no HTTP client library would send (a non-ASCII header), over a raw socket."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.parametrize("path", ["/v1/inbox", "/v1/events", "/v1/web/conversations/{id}/messages"])
async def test_a_token_with_a_non_ascii_byte_is_an_invalid_token(
    client: Client, chat: dict[str, Any], path: str
) -> None:
    target = path.format(id=chat["conversation_id"]).encode()
    status, body = await _raw_request(
        client,
        b"GET " + target + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Authorization: Bearer cc_\xe9abc\r\n\r\n",
    )
    assert (status, body["error"]["code"]) == (401, "invalid_token")
