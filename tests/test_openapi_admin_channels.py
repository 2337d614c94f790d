"""The admin routes of channels, agents, business hours and SLA policies in the OpenAPI
document: answers the rest of the suite does not ask for (a mailbox and a number from the
environment, quarantine pages, a target stored in seconds, an agent's per-channel limits)
fit their views. Each answer is checked here, and by the `client` fixture on teardown."""

from __future__ import annotations

from typing import Any, get_args

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.api.admin_business_hours import Weekday
from contactcenter.domain.business_hours import WEEKDAYS
from contactcenter.domain.enums import Role
from contactcenter.services.mailboxes import sync_environment_mailbox
from contactcenter.services.sms import sync_environment_number
from contactcenter.settings import Settings
from tests.helpers import bearer, call, error_code, make_agent
from tests.openapi_check import product_document
from tests.routing_helpers import default_team

Client = TestClient[Any, Any]
ACCOUNT_SID = "AC" + "0" * 32
SERVICE_SID = "MG" + "1" * 32


def misfits(client: Client, method: str, path: str, status: int, body: Any) -> list[str]:
    """Where `body` does not fit the JSON the document gives `method path` for `status`."""
    document = product_document(client.app)
    answer = document.document["paths"][path][method.lower()]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in document.validator(schema).iter_errors(body)
    ]


def test_the_weekdays_of_the_view_are_the_domains() -> None:
    assert get_args(Weekday) == WEEKDAYS


async def test_a_mailbox_and_a_number_from_the_environment_fit_their_views(
    client: Client, db: asyncpg.Pool, settings: Settings
) -> None:
    environment = settings.replace(
        email_from="help@example.com",
        imap_host="imap.example.com",
        imap_security="none",
        imap_user="help",
        imap_password="imap-secret-1",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token="twilio-secret-2",
        twilio_messaging_service_sid=SERVICE_SID,
    )
    mailbox_id = await sync_environment_mailbox(db, environment)
    number_id = await sync_environment_number(db, environment)
    assert mailbox_id is not None and number_id is not None
    _, admin = await make_agent(db, role=Role.ADMIN)

    for path, template in [
        ("/v1/admin/channels", "/v1/admin/channels"),
        (f"/v1/admin/channels/{mailbox_id}", "/v1/admin/channels/{id}"),
        ("/v1/admin/channels/sms", "/v1/admin/channels/sms"),
    ]:
        status, body = await call(client, "GET", path, bearer(admin))
        assert status == 200, body
        assert misfits(client, "GET", template, 200, body) == []
        assert "secret" not in str(body)
    status, body = await call(client, "GET", "/v1/admin/channels", bearer(admin))
    [mailbox] = body["items"]
    assert (mailbox["from_environment"], mailbox["smtp_host"], mailbox["imap_password_set"]) == (
        True,
        None,
        True,
    )
    status, body = await call(client, "GET", "/v1/admin/channels/sms", bearer(admin))
    [number] = body["items"]
    assert (number["from_number"], number["messaging_service_sid"]) == (None, SERVICE_SID)

    # read-only here: the mailbox answers 409, the number 404 (the error envelope, 4XX)
    status, body = await call(
        client, "PATCH", f"/v1/admin/channels/{mailbox_id}", bearer(admin), {"enabled": False}
    )
    assert (status, error_code(body)) == (409, "configured_by_environment")
    status, body = await call(
        client, "DELETE", f"/v1/admin/channels/sms/{number_id}", bearer(admin)
    )
    assert (status, error_code(body)) == (404, "channel_not_found")


async def test_the_quarantine_pages_fit_the_view_and_its_query(
    client: Client, db: asyncpg.Pool, settings: Settings
) -> None:
    mailbox_id = await sync_environment_mailbox(
        db, settings.replace(email_from="help@example.com", smtp_host="smtp.example.com")
    )
    for mailbox, uid in [(None, None), (mailbox_id, 7), (mailbox_id, 8)]:
        await db.execute(
            "INSERT INTO email_quarantine (mailbox_id, uid, raw, error) VALUES ($1, $2, $3, 'bad')",
            mailbox,
            uid,
            b"Subject: broken\r\n\r\nbody",
        )
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    path = "/v1/admin/email/quarantine"

    status, first = await call(client, "GET", f"{path}?limit=2", bearer(supervisor))
    assert status == 200, first
    assert misfits(client, "GET", path, 200, first) == []
    assert [item["uid"] for item in first["items"]] == [8, 7]
    assert first["items"][0]["size"] == len(b"Subject: broken\r\n\r\nbody")
    status, rest = await call(
        client, "GET", f"{path}?limit=2&cursor={first['next_cursor']}", bearer(supervisor)
    )
    assert status == 200, rest
    assert misfits(client, "GET", path, 200, rest) == []
    assert [(item["mailbox_id"], item["uid"]) for item in rest["items"]] == [(None, None)]
    assert rest["next_cursor"] is None

    for query in ("limit=0", "limit=201", "cursor=0", "cursor=x"):
        status, body = await call(client, "GET", f"{path}?{query}", bearer(supervisor))
        assert (status, error_code(body)) == (422, "invalid_query"), query


async def test_a_policy_with_a_whole_escalation_and_a_target_in_seconds_fits_the_view(
    client: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    escalation = {
        "raise_priority_to": 10,
        "team_id": await default_team(db),
        "notify_email": "boss@example.com",
    }
    status, created = await call(
        client,
        "POST",
        "/v1/admin/sla-policies",
        bearer(admin),
        {"name": "Gold", "first_response_minutes": 30, "escalation": escalation},
    )
    assert status == 201, created
    assert misfits(client, "POST", "/v1/admin/sla-policies", 201, created) == []
    assert created["escalation"] == escalation

    # written in seconds that are not whole minutes (not through this API): a fraction
    await db.execute(
        "UPDATE sla_policies SET first_response_seconds = 90, escalation = '{}' WHERE id = $1",
        created["id"],
    )
    status, body = await call(
        client, "GET", f"/v1/admin/sla-policies/{created['id']}", bearer(admin)
    )
    assert status == 200, body
    assert misfits(client, "GET", "/v1/admin/sla-policies/{id}", 200, body) == []
    assert (body["first_response_minutes"], body["escalation"]) == (1.5, {})


async def test_agents_with_per_channel_limits_fit_the_view_page_by_page(
    client: Client, db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    status, created = await call(
        client,
        "POST",
        "/v1/admin/agents",
        bearer(admin),
        {
            "name": "Ann",
            "email": "ann@agents.example",
            "role": "agent",
            "channel_capacity": {"email": 2, "web": None},
            "skills": ["billing"],
        },
    )
    assert status == 201, created
    assert misfits(client, "POST", "/v1/admin/agents", 201, created) == []
    assert (created["channel_capacity"], created["token"] != "") == ({"email": 2}, True)
    await db.execute("UPDATE agents SET last_assigned_at = now() WHERE id = $1", created["id"])

    status, first = await call(client, "GET", "/v1/admin/agents?limit=1", bearer(admin))
    assert status == 200, first
    assert first["next_cursor"] is not None
    status, rest = await call(
        client, "GET", f"/v1/admin/agents?limit=1&cursor={first['next_cursor']}", bearer(admin)
    )
    assert status == 200, rest
    for page in (first, rest):
        assert misfits(client, "GET", "/v1/admin/agents", 200, page) == []
        assert "token" not in page["items"][0]
    assert rest["items"][0]["last_assigned_at"] is not None
