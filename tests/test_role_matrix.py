"""Issue 8, item 1: the role matrix. Every route of the real app has a row saying who may call
it; each agent-authenticated route is called with no token, an agent's, a supervisor's and an
admin's, with a minimal valid request, and must answer 401 / 2xx / 403 exactly as its row says.
An agent of another team reaches nothing of team A's through an id: 404 conversation_not_found
(or contact_not_found), exactly as for an id that does not exist, and nothing is written.

Public routes (web visitor, webhooks, survey page, healthz/readyz) are only checked for "no
agent token needed" and "an agent token is not a visitor's"; HEAD and OPTIONS are not rows.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from contactcenter.api.app import create_app
from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.settings import Settings
from tests.helpers import bearer, call, error_code, make_agent, start_chat, table_digests
from tests.routing_helpers import customer_writes, team
from tests.test_admin_care import SEEDED as CARE_SETTINGS
from tests.test_admin_care import restored_care_tables  # noqa: F401  (autouse fixture)

Client = TestClient[Any, Any]

# who may call a route: "any" agent token, "readers" (supervisors and admins), "admin" only,
# or "public" (no agent token: visitor, webhook, survey page, probes)
ANY, READERS, ADMIN, PUBLIC = "any", "readers", "admin", "public"
ROLES = ("agent", "supervisor", "admin")
ALLOWED = {
    ANY: {"agent", "supervisor", "admin"},
    READERS: {"supervisor", "admin"},
    ADMIN: {"admin"},
}
WS_OPEN = 101  # what a call that opened its WebSocket counts as

_unique = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_unique)}-{uuid.uuid4().hex[:6]}"


@dataclass
class Request:
    path: str
    json: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    websocket: bool = False


@dataclass
class World:
    client: Client
    db: asyncpg.Pool
    conns: Conns
    team_a: int
    team_b: int
    tokens: dict[str, str]  # role -> token; "agent" is in team A
    agent_b: str  # an agent of team B only
    agent_b_id: int

    async def conversation(self) -> int:
        """A fresh open, unassigned web conversation in team A."""
        conversation_id, _ = await customer_writes(self.conns, unique("hello"))
        await self.db.execute(
            "UPDATE conversations SET team_id = $2 WHERE id = $1", conversation_id, self.team_a
        )
        return conversation_id

    async def contact(self) -> int:
        """A fresh contact whose only conversation is in team A."""
        conversation_id = await self.conversation()
        return int(
            await self.db.fetchval(
                "SELECT contact_id FROM conversations WHERE id = $1", conversation_id
            )
        )

    async def created(self, path: str, body: Any) -> int:
        """An object made through the API by the admin (setup, not under test)."""
        status, answer = await call(self.client, "POST", path, bearer(self.tokens["admin"]), body)
        assert status == 201, (path, status, answer)
        return int(answer["id"])


Make = Callable[[World], Awaitable[Request]]


def fixed(path: str, body: Any = None) -> Make:
    async def make(w: World) -> Request:
        return Request(path, json=body)

    return make


# --- bodies ------------------------------------------------------------------------------


def mailbox() -> dict[str, Any]:
    name = unique("mbx")
    return {
        "name": name,
        "address": f"{name}@example.com",
        "imap_host": "imap.example.com",
        "imap_user": "support@example.com",
        "imap_password": "imap-password-123",
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
    }


def sms_number() -> dict[str, Any]:
    return {
        "name": unique("sms"),
        "account_sid": "AC" + "0" * 32,
        "auth_token": "twilio-token-0123456789",
        "from_number": f"+1415555{next(_unique) % 10000:04d}",
    }


def calendar() -> dict[str, Any]:
    return {
        "name": unique("hours"),
        "timezone": "Asia/Shanghai",
        "weekly": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    }


def policy() -> dict[str, Any]:
    return {"name": unique("policy"), "first_response_minutes": 15}


def rule() -> dict[str, Any]:
    return {
        "name": unique("rule"),
        "conditions": {"match": "all", "conditions": []},
        "actions": [{"type": "priority", "value": 1}],
    }


# templates are unique by purpose, channel and locale: each made here has a locale of its own
LOCALES = (
    f"{language}-{region}"
    for language, region in itertools.product(
        ("fr", "de", "es", "it", "nl", "pt", "sv", "da"),
        ("AT", "BE", "CA", "CH", "DK", "ES", "FI", "GB", "IE", "LU", "MX", "NZ", "SE", "ZA"),
    )
)


def template() -> dict[str, Any]:
    return {
        "purpose": "help",
        "channel": "sms",
        "locale": next(LOCALES),
        "body_text": "Hi {{ name }}, reply HELP for a person.",
    }


def canned() -> dict[str, Any]:
    return {
        "shortcut": unique("c").lower(),
        "title": "A title",
        "body_text": "{{ salutation }}, thanks. {{ agent }}",
    }


TIERS_BODY = {
    "method": "shares",
    "tiers": [
        {"rank": 1, "label": "platinum", "share_percent": 1},
        {"rank": 2, "label": "gold", "share_percent": 4},
        {"rank": 3, "label": "silver", "share_percent": 15},
        {"rank": 4, "label": "bronze"},
    ],
}


# --- factories needing objects -----------------------------------------------------------


def on_conversation(suffix: str, body: Any = None) -> Make:
    async def make(w: World) -> Request:
        return Request(f"/v1/conversations/{await w.conversation()}{suffix}", json=body)

    return make


def on_contact(template_path: str, body: Any = None) -> Make:
    async def make(w: World) -> Request:
        return Request(template_path.format(id=await w.contact()), json=body)

    return make


def on_created(
    create_path: str, body: Callable[[], Any], suffix: str = "", json: Any = None
) -> Make:
    """A fresh object per call (made by the admin), then the route on it."""

    async def make(w: World) -> Request:
        object_id = await w.created(create_path, body())
        return Request(f"{create_path}/{object_id}{suffix}", json=json)

    return make


def creating(path: str, body: Callable[[], Any]) -> Make:
    async def make(w: World) -> Request:
        return Request(path, json=body())

    return make


async def assign(w: World) -> Request:
    return Request(f"/v1/conversations/{await w.conversation()}/assign", json={"team_id": w.team_a})


async def events(w: World) -> Request:
    return Request("/v1/events", websocket=True)


async def sms_delete(w: World) -> Request:
    number_id = await w.created("/v1/admin/channels/sms", sms_number())
    return Request(f"/v1/admin/channels/sms/{number_id}")


async def quarantined(w: World) -> Request:
    quarantine_id = await w.db.fetchval(
        "INSERT INTO email_quarantine (raw, error) VALUES ($1, 'unreadable') RETURNING id",
        b"Subject: broken\r\n\r\nbody",
    )
    return Request(f"/v1/admin/email/quarantine/{quarantine_id}/raw")


def agent_object(body: Any = None) -> Make:
    async def make(w: World) -> Request:
        agent_id, _ = await make_agent(w.db, name="Someone", online=False)
        return Request(f"/v1/admin/agents/{agent_id}", json=body)

    return make


async def team_members(w: World) -> Request:
    team_id = await w.created("/v1/admin/teams", {"name": unique("team")})
    return Request(f"/v1/admin/teams/{team_id}/members", json={"agent_ids": []})


async def rules_order(w: World) -> Request:
    await w.created("/v1/admin/routing-rules", rule())
    ids = [r["id"] for r in await w.db.fetch("SELECT id FROM routing_rules ORDER BY position")]
    return Request("/v1/admin/routing-rules/order", json={"ids": list(reversed(ids))})


async def template_preview(w: World) -> Request:
    return Request(
        "/v1/admin/templates/preview",
        json={"template": template(), "contact_id": await w.contact()},
    )


async def render(w: World) -> Request:
    response_id = await w.created("/v1/admin/canned-responses", canned())
    return Request(
        f"/v1/canned-responses/{response_id}/render",
        json={"conversation_id": await w.conversation()},
    )


async def merge(w: World) -> Request:
    return Request(
        "/v1/contacts/merge", json={"into_id": await w.contact(), "from_id": await w.contact()}
    )


async def contact_import(w: World) -> Request:
    email = unique("imported") + "@example.com"
    return Request(
        "/v1/admin/contacts/import",
        data=f"email,name\n{email},Imported\n".encode(),
        headers={"Content-Type": "text/csv"},
    )


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # the route's canonical path
    who: str
    make: Make | None = None  # None: public (checked by test_public_routes)


CONV = "/v1/conversations/{id}"
CH = "/v1/admin/channels"
TEAMS = "/v1/admin/teams"
AGENTS = "/v1/admin/agents"
HOURS = "/v1/admin/business-hours"
SLA = "/v1/admin/sla-policies"
RULES = "/v1/admin/routing-rules"
TEMPLATES = "/v1/admin/templates"
CANNED = "/v1/admin/canned-responses"

MATRIX: tuple[Row, ...] = (
    # operations
    Row("GET", "/healthz", PUBLIC),
    Row("GET", "/readyz", PUBLIC),
    Row("GET", "/v1/openapi.json", PUBLIC),
    Row("GET", "/metrics", READERS, fixed("/metrics")),
    # the inbox
    Row("GET", "/v1/inbox", ANY, fixed("/v1/inbox?view=all")),
    Row("GET", CONV, ANY, on_conversation("")),
    Row("POST", CONV + "/replies", ANY, on_conversation("/replies", {"text": "Hello there"})),
    Row("POST", CONV + "/notes", ANY, on_conversation("/notes", {"text": "internal"})),
    Row("POST", CONV + "/tags", ANY, on_conversation("/tags", {"add": ["refund"]})),
    Row("POST", CONV + "/status", ANY, on_conversation("/status", {"status": "pending"})),
    Row("POST", CONV + "/assign", ANY, assign),
    Row("PUT", "/v1/agents/me/presence", ANY, fixed("/v1/agents/me/presence", {"status": "away"})),
    Row("GET", "/v1/events", ANY, events),
    Row("GET", "/v1/canned-responses", ANY, fixed("/v1/canned-responses")),
    Row("POST", "/v1/canned-responses/{id}/render", ANY, render),
    # contacts
    Row("GET", "/v1/contacts/{id}", ANY, on_contact("/v1/contacts/{id}")),
    Row("PATCH", "/v1/contacts/{id}", READERS, on_contact("/v1/contacts/{id}", {"name": "N"})),
    Row("POST", "/v1/contacts/merge", READERS, merge),
    Row("GET", "/v1/contacts/{id}/merges", READERS, on_contact("/v1/contacts/{id}/merges")),
    # channels
    Row("GET", CH + "/sms", READERS, fixed(CH + "/sms")),
    Row("POST", CH + "/sms", ADMIN, creating(CH + "/sms", sms_number)),
    Row("DELETE", CH + "/sms/{id}", ADMIN, sms_delete),
    Row("GET", CH, READERS, fixed(CH)),
    Row("POST", CH, ADMIN, creating(CH, mailbox)),
    Row("GET", CH + "/{id}", READERS, on_created(CH, mailbox)),
    Row("PATCH", CH + "/{id}", ADMIN, on_created(CH, mailbox, json={"display_name": "Desk"})),
    Row("DELETE", CH + "/{id}", ADMIN, on_created(CH, mailbox)),
    Row("GET", "/v1/admin/email/quarantine", READERS, fixed("/v1/admin/email/quarantine")),
    # the raw source of a bad mail is kept "for an admin" (migrations/0002_email.sql)
    Row("GET", "/v1/admin/email/quarantine/{id}/raw", ADMIN, quarantined),
    # teams and agents
    Row("GET", TEAMS, READERS, fixed(TEAMS)),
    Row("POST", TEAMS, ADMIN, creating(TEAMS, lambda: {"name": unique("team")})),
    Row("GET", TEAMS + "/{id}", READERS, on_created(TEAMS, lambda: {"name": unique("team")})),
    Row(
        "PATCH",
        TEAMS + "/{id}",
        ADMIN,
        on_created(TEAMS, lambda: {"name": unique("team")}, json={"sticky_last_agent": True}),
    ),
    Row("DELETE", TEAMS + "/{id}", ADMIN, on_created(TEAMS, lambda: {"name": unique("team")})),
    Row("PUT", TEAMS + "/{id}/members", ADMIN, team_members),
    Row("GET", AGENTS, READERS, fixed(AGENTS)),
    Row(
        "POST",
        AGENTS,
        ADMIN,
        creating(
            AGENTS,
            lambda: {"name": "New", "email": unique("new") + "@agents.example", "role": "agent"},
        ),
    ),
    Row("GET", AGENTS + "/{id}", READERS, agent_object()),
    Row("PATCH", AGENTS + "/{id}", ADMIN, agent_object({"name": "Someone else"})),
    # business hours
    Row("GET", HOURS, READERS, fixed(HOURS)),
    Row("POST", HOURS, ADMIN, creating(HOURS, calendar)),
    Row("GET", HOURS + "/{id}", READERS, on_created(HOURS, calendar)),
    Row("PATCH", HOURS + "/{id}", ADMIN, on_created(HOURS, calendar, json={"timezone": "UTC"})),
    Row("DELETE", HOURS + "/{id}", ADMIN, on_created(HOURS, calendar)),
    Row(
        "GET",
        HOURS + "/{id}/open",
        READERS,
        on_created(HOURS, calendar, suffix="/open?at=2026-03-02T10:00:00%2B08:00"),
    ),
    # SLA policies
    Row("GET", SLA, READERS, fixed(SLA)),
    Row("POST", SLA, ADMIN, creating(SLA, policy)),
    Row("GET", SLA + "/{id}", READERS, on_created(SLA, policy)),
    Row("PATCH", SLA + "/{id}", ADMIN, on_created(SLA, policy, json={"warning_percent": 70})),
    Row("DELETE", SLA + "/{id}", ADMIN, on_created(SLA, policy)),
    # routing rules
    Row("PUT", RULES + "/order", ADMIN, rules_order),
    Row(
        "POST",
        RULES + "/test",
        READERS,
        fixed(RULES + "/test", {"message": {"channel": "web", "text": "hello"}}),
    ),
    Row("GET", RULES, READERS, fixed(RULES)),
    Row("POST", RULES, ADMIN, creating(RULES, rule)),
    Row("GET", RULES + "/{id}", READERS, on_created(RULES, rule)),
    Row("PATCH", RULES + "/{id}", ADMIN, on_created(RULES, rule, json={"enabled": False})),
    Row("DELETE", RULES + "/{id}", ADMIN, on_created(RULES, rule)),
    # tiers
    Row("GET", "/v1/admin/tiers", READERS, fixed("/v1/admin/tiers")),
    Row("PUT", "/v1/admin/tiers", ADMIN, fixed("/v1/admin/tiers", TIERS_BODY)),
    Row("POST", "/v1/admin/tiers/recompute", ADMIN, fixed("/v1/admin/tiers/recompute")),
    Row(
        "PUT",
        "/v1/admin/contacts/{id}/tier",
        ADMIN,
        on_contact("/v1/admin/contacts/{id}/tier", {"tier": 1, "note": "reseller"}),
    ),
    Row(
        "GET",
        "/v1/admin/contacts/{id}/tier-history",
        READERS,
        on_contact("/v1/admin/contacts/{id}/tier-history"),
    ),
    Row("POST", "/v1/admin/contacts/import", ADMIN, contact_import),
    # templates and care
    Row("GET", TEMPLATES, READERS, fixed(TEMPLATES)),
    Row("POST", TEMPLATES, ADMIN, creating(TEMPLATES, template)),
    Row("POST", TEMPLATES + "/preview", READERS, template_preview),
    Row("GET", TEMPLATES + "/{id}", READERS, on_created(TEMPLATES, template)),
    Row(
        "PATCH",
        TEMPLATES + "/{id}",
        ADMIN,
        on_created(TEMPLATES, template, json={"body_text": "Hello {{ name }}"}),
    ),
    Row("DELETE", TEMPLATES + "/{id}", ADMIN, on_created(TEMPLATES, template)),
    Row("GET", "/v1/admin/care", READERS, fixed("/v1/admin/care")),
    Row("PUT", "/v1/admin/care", ADMIN, fixed("/v1/admin/care", CARE_SETTINGS)),
    # canned responses
    Row("GET", CANNED, READERS, fixed(CANNED)),
    Row("POST", CANNED, ADMIN, creating(CANNED, canned)),
    Row("GET", CANNED + "/{id}", READERS, on_created(CANNED, canned)),
    Row("PATCH", CANNED + "/{id}", ADMIN, on_created(CANNED, canned, json={"title": "Other"})),
    Row("DELETE", CANNED + "/{id}", ADMIN, on_created(CANNED, canned)),
    # the audit log of admin changes: "readable by admins" (issue 8, item 4)
    Row("GET", "/v1/admin/audit", ADMIN, fixed("/v1/admin/audit")),
    # reports
    Row("GET", "/v1/reports/sla", READERS, fixed("/v1/reports/sla")),
    Row("GET", "/v1/reports/csat", READERS, fixed("/v1/reports/csat")),
    Row("GET", "/v1/reports/volume", READERS, fixed("/v1/reports/volume")),
    # public: the survey page, the web visitor, the webhooks
    Row("GET", "/v1/care/survey/{token}", PUBLIC),
    Row("POST", "/v1/care/survey/{token}", PUBLIC),
    Row("POST", "/v1/web/conversations", PUBLIC),
    Row("POST", "/v1/web/conversations/{id}/messages", PUBLIC),
    Row("GET", "/v1/web/conversations/{id}/messages", PUBLIC),
    Row("GET", "/v1/web/conversations/{id}/ws", PUBLIC),
    Row("POST", "/v1/webhooks/email/raw", PUBLIC),
    Row("POST", "/v1/webhooks/twilio/sms", PUBLIC),
    Row("POST", "/v1/webhooks/twilio/status", PUBLIC),
)
AUTHENTICATED = [row for row in MATRIX if row.who != PUBLIC]


@pytest.fixture
async def world(client: Client, db: asyncpg.Pool, conns: Conns) -> World:
    team_a = await team(db, "Team A")
    team_b = await team(db, "Team B")
    _, agent = await make_agent(db, name="Agent A", team="Team A")
    agent_b_id, agent_b = await make_agent(db, name="Agent B", team="Team B")
    _, supervisor = await make_agent(db, name="Supervisor", role=Role.SUPERVISOR)
    _, admin = await make_agent(db, name="Admin", role=Role.ADMIN)
    return World(
        client,
        db,
        conns,
        team_a,
        team_b,
        {"agent": agent, "supervisor": supervisor, "admin": admin},
        agent_b,
        agent_b_id,
    )


async def send(client: Client, method: str, request: Request, token: str | None) -> tuple[int, Any]:
    """(status, body); a WebSocket that opened is WS_OPEN."""
    headers = {**request.headers, **(bearer(token) if token else {})}
    if request.websocket:
        try:
            ws = await client.ws_connect(request.path, headers=headers)
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status, None
        hello = await ws.receive_json(timeout=5)
        await ws.close()
        return WS_OPEN, hello
    response = await client.request(
        method,
        request.path,
        json=request.json if request.data is None else None,
        data=request.data,
        headers=headers,
    )
    text = await response.text()
    kind = response.headers.get("Content-Type", "")
    return response.status, (text if "json" not in kind else await response.json())


def _ok(status: int) -> bool:
    return 200 <= status < 300 or status == WS_OPEN


# --- the tests ---------------------------------------------------------------------------


def test_the_matrix_has_exactly_one_row_per_route(settings: Settings) -> None:
    app = create_app(settings)
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS") and route.resource is not None
    }
    rows = [(row.method, row.path) for row in MATRIX]
    assert len(rows) == len(set(rows)), "a route has two rows"
    assert sorted(routes - set(rows)) == [], "routes without a row in the matrix"
    assert sorted(set(rows) - routes) == [], "rows naming no route"


@pytest.mark.parametrize("row", AUTHENTICATED, ids=[f"{r.method} {r.path}" for r in AUTHENTICATED])
async def test_each_role_gets_exactly_what_it_should(
    client: Client, world: World, row: Row
) -> None:
    assert row.make is not None
    mismatches = []
    status, body = await send(client, row.method, await row.make(world), None)
    if status != 401 or (body is not None and error_code(body) != "missing_token"):
        mismatches.append(("no token", "401 missing_token", status, body))
    for role in ROLES:
        status, body = await send(client, row.method, await row.make(world), world.tokens[role])
        if role in ALLOWED[row.who]:
            if not _ok(status):
                mismatches.append((role, "2xx", status, body))
        elif status != 403 or error_code(body) != "forbidden":
            mismatches.append((role, "403 forbidden", status, body))
    assert mismatches == [], f"{row.method} {row.path} ({row.who}): {mismatches}"


async def test_public_routes_need_no_agent_token_and_take_none_as_a_visitor(
    client: Client, world: World
) -> None:
    admin = world.tokens["admin"]
    # the probes answer anyone
    for path in ("/healthz", "/readyz", "/v1/openapi.json"):
        assert (await client.get(path)).status == 200
    # a visitor starts a chat without any token; an agent's token is not a visitor's
    chat = await start_chat(client)
    conversation = chat["conversation_id"]
    messages = f"/v1/web/conversations/{conversation}/messages"
    status, _ = await call(client, "GET", messages, bearer(chat["visitor_token"]))
    assert status == 200
    status, _ = await call(client, "GET", messages, bearer(admin))
    assert status == 401
    status, _ = await call(
        client, "POST", messages, bearer(admin), {"text": "hi", "client_message_id": unique("m")}
    )
    assert status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/v1/web/conversations/{conversation}/ws?token={admin}")
    assert refused.value.status == 401
    # the webhooks and the survey page check their own secrets: an agent token changes nothing
    for method, path in (
        ("POST", "/v1/webhooks/email/raw"),
        ("POST", "/v1/webhooks/twilio/sms"),
        ("POST", "/v1/webhooks/twilio/status"),
        ("GET", "/v1/care/survey/not-a-survey-token"),
        ("POST", "/v1/care/survey/not-a-survey-token"),
    ):
        bare = await client.request(method, path, data=b"")
        with_token = await client.request(method, path, data=b"", headers=bearer(admin))
        assert bare.status == with_token.status, path
        assert 400 <= bare.status < 500, (path, bare.status)
    assert await world.db.fetchval("SELECT count(*) FROM conversations") == 1


async def test_no_route_shows_another_teams_conversation_through_its_id(
    client: Client, world: World
) -> None:
    """Agent B (team B) against a conversation of team A: every conversation-id route answers
    exactly as for an id that does not exist, and nothing is written."""
    hidden = await world.conversation()
    contact = await world.db.fetchval("SELECT contact_id FROM conversations WHERE id = $1", hidden)
    missing = hidden + 1000
    response_id = await world.created(CANNED, canned())
    other_agent, _ = await make_agent(world.db, name="Other", team="Team A")
    as_b = bearer(world.agent_b)
    probes: list[tuple[str, Callable[[int], str], Any]] = [
        ("GET", lambda c: f"/v1/conversations/{c}", None),
        ("POST", lambda c: f"/v1/conversations/{c}/replies", {"text": "hi"}),
        ("POST", lambda c: f"/v1/conversations/{c}/notes", {"text": "hi"}),
        ("POST", lambda c: f"/v1/conversations/{c}/tags", {"add": ["spam"]}),
        ("POST", lambda c: f"/v1/conversations/{c}/status", {"status": "resolved"}),
        ("POST", lambda c: f"/v1/conversations/{c}/assign", {"team_id": world.team_b}),
        ("POST", lambda c: f"/v1/conversations/{c}/assign", {"agent_id": world.agent_b_id}),
        ("POST", lambda c: f"/v1/conversations/{c}/assign", {"agent_id": other_agent}),
    ]
    before = await table_digests(world.db)
    for method, path, body in probes:
        status, answer = await call(client, method, path(hidden), as_b, body)
        missing_status, missing_answer = await call(client, method, path(missing), as_b, body)
        assert (status, answer) == (missing_status, missing_answer), path(hidden)
        if body != {"agent_id": other_agent}:  # giving to someone else is refused first
            assert status == 404, (path(hidden), answer)
            assert error_code(answer) == "conversation_not_found"
    render = f"/v1/canned-responses/{response_id}/render"
    for conversation in (hidden, missing):
        status, answer = await call(client, "POST", render, as_b, {"conversation_id": conversation})
        assert (status, error_code(answer)) == (404, "conversation_not_found"), answer
    # the contact reached only through team A's conversation
    for contact_id in (contact, contact + 1000):
        status, answer = await call(client, "GET", f"/v1/contacts/{contact_id}", as_b)
        assert (status, error_code(answer)) == (404, "contact_not_found"), answer
    # nor does the inbox list it, whatever the view
    for view in ("all", "team", "unassigned", "mine"):
        status, page = await call(client, "GET", f"/v1/inbox?view={view}", as_b)
        assert status == 200
        assert hidden not in [item["id"] for item in page["items"]]
    assert await table_digests(world.db) == before
    # and the agent of team A does see it (the probes above were not refused for a bad body)
    status, detail = await call(
        client, "GET", f"/v1/conversations/{hidden}", bearer(world.tokens["agent"])
    )
    assert (status, detail["id"]) == (200, hidden)


async def test_giving_a_conversation_to_someone_else_is_for_supervisors_and_admins(
    client: Client, world: World
) -> None:
    colleague, _ = await make_agent(world.db, name="Colleague", team="Team A")
    for role, expected in (("agent", 403), ("supervisor", 200), ("admin", 200)):
        conversation = await world.conversation()
        status, answer = await call(
            client,
            "POST",
            f"/v1/conversations/{conversation}/assign",
            bearer(world.tokens[role]),
            {"agent_id": colleague},
        )
        assert status == expected, (role, answer)
        if expected == 403:
            assert error_code(answer) == "forbidden"
            assert (
                await world.db.fetchval(
                    "SELECT assignee_id FROM conversations WHERE id = $1", conversation
                )
                is None
            )
