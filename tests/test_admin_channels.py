"""/v1/admin/channels: admins configure mailboxes; secrets are sealed and never returned."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.enums import Role
from contactcenter.services import mailboxes
from tests.helpers import bearer, make_agent

MAILBOX = {
    "name": "support",
    "address": "Support@Example.com",
    "display_name": "Example Support",
    "imap_host": "imap.example.com",
    "imap_user": "support@example.com",
    "imap_password": "imap-password-123",
    "smtp_host": "smtp.example.com",
    "smtp_port": 587,
    "smtp_user": "support@example.com",
    "smtp_password": "smtp-password-456",
}


async def test_an_admin_configures_a_mailbox_whose_secrets_never_come_back(
    client: TestClient[Any, Any], db: asyncpg.Pool, conns: Conns
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    created = await client.post("/v1/admin/channels", json=MAILBOX, headers=bearer(admin))
    assert created.status == 201
    body = await created.json()
    text = await created.text()
    assert "imap-password-123" not in text and "smtp-password-456" not in text
    assert (body["address"], body["imap_password_set"], body["smtp_password_set"]) == (
        "support@example.com",
        True,
        True,
    )

    # sealed at rest, and opened only with this SECRET_KEY
    stored = await db.fetchrow("SELECT imap_password, smtp_password FROM mailboxes")
    assert "imap-password-123" not in stored["imap_password"]
    mailbox = await mailboxes.load(conns, body["id"])
    assert mailbox is not None and mailbox.imap is not None and mailbox.smtp is not None
    assert (mailbox.imap.password, mailbox.imap.port) == ("imap-password-123", 993)
    assert (mailbox.smtp.password, mailbox.smtp.port) == ("smtp-password-456", 587)

    changed = await client.patch(
        f"/v1/admin/channels/{body['id']}",
        json={"display_name": "Help desk", "enabled": False},
        headers=bearer(admin),
    )
    assert changed.status == 200
    assert (await changed.json())["display_name"] == "Help desk"
    listed = await client.get("/v1/admin/channels", headers=bearer(admin))
    assert "password-" not in await listed.text()

    again = await client.post("/v1/admin/channels", json=MAILBOX, headers=bearer(admin))
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "channel_exists"

    gone = await client.delete(f"/v1/admin/channels/{body['id']}", headers=bearer(admin))
    assert gone.status == 204


async def test_supervisors_read_channels_and_agents_do_not_see_them(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    _, agent = await make_agent(db)
    await client.post("/v1/admin/channels", json=MAILBOX, headers=bearer(admin))
    assert (await client.get("/v1/admin/channels", headers=bearer(supervisor))).status == 200
    written = await client.post(
        "/v1/admin/channels", json={**MAILBOX, "name": "x"}, headers=bearer(supervisor)
    )
    assert written.status == 403
    assert (await client.get("/v1/admin/channels", headers=bearer(agent))).status == 403


async def test_a_mailbox_without_a_server_or_with_a_bad_address_is_refused(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    no_server = await client.post(
        "/v1/admin/channels",
        json={"name": "x", "address": "x@example.com"},
        headers=bearer(admin),
    )
    assert no_server.status == 422
    bad_address = await client.post(
        "/v1/admin/channels", json={**MAILBOX, "address": "not an address"}, headers=bearer(admin)
    )
    assert (bad_address.status, (await bad_address.json())["error"]["code"]) == (
        422,
        "invalid_email",
    )
    bad_port = await client.post(
        "/v1/admin/channels", json={**MAILBOX, "imap_port": 70000}, headers=bearer(admin)
    )
    assert bad_port.status == 422
    assert await db.fetchval("SELECT count(*) FROM mailboxes") == 0


async def test_nulls_line_breaks_and_imap_starttls_are_refused(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    created = await client.post("/v1/admin/channels", json=MAILBOX, headers=bearer(admin))
    mailbox_id = (await created.json())["id"]
    before = await db.fetchrow("SELECT * FROM mailboxes")
    for change in (
        {"name": None},
        {"enabled": None},
        {"imap_folder": None},
        {"address": None},
        {"display_name": "Support\r\nBcc: everyone@example.com"},
        {"imap_folder": "INBOX\r\nA1 DELETE INBOX"},
        {"imap_security": "starttls"},
    ):
        answer = await client.patch(
            f"/v1/admin/channels/{mailbox_id}", json=change, headers=bearer(admin)
        )
        assert answer.status == 422, (change, await answer.text())
        assert (await answer.json())["error"]["code"] == "validation_error"
    assert await db.fetchrow("SELECT * FROM mailboxes") == before


async def test_an_admin_configures_an_sms_number_whose_token_never_comes_back(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    _, agent = await make_agent(db)
    number = {
        "name": "support-sms",
        "account_sid": "AC" + "0" * 32,
        "auth_token": "twilio-token-0123456789",
        "from_number": "+1 (415) 555-2671",
    }
    assert (
        await client.post("/v1/admin/channels/sms", json=number, headers=bearer(agent))
    ).status == 403
    created = await client.post("/v1/admin/channels/sms", json=number, headers=bearer(admin))
    assert created.status == 201
    assert "twilio-token" not in await created.text()
    body = await created.json()
    assert (body["from_number"], body["auth_token_set"]) == ("+14155552671", True)
    stored = await db.fetchval("SELECT auth_token FROM sms_numbers")
    assert "twilio-token" not in stored
    listed = await client.get("/v1/admin/channels/sms", headers=bearer(admin))
    assert [n["name"] for n in (await listed.json())["items"]] == ["support-sms"]
    bad = await client.post(
        "/v1/admin/channels/sms",
        json={**number, "name": "x", "from_number": "not a number"},
        headers=bearer(admin),
    )
    assert (bad.status, (await bad.json())["error"]["code"]) == (422, "invalid_phone")
    gone = await client.delete(f"/v1/admin/channels/sms/{body['id']}", headers=bearer(admin))
    assert gone.status == 204


async def test_a_channel_a_routing_rule_names_cannot_be_deleted(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    mailbox = await (
        await client.post("/v1/admin/channels", json=MAILBOX, headers=bearer(admin))
    ).json()
    number = await (
        await client.post(
            "/v1/admin/channels/sms",
            json={
                "name": "sms",
                "account_sid": "AC" + "0" * 32,
                "auth_token": "twilio-token-0123456789",
                "from_number": "+14155552671",
            },
            headers=bearer(admin),
        )
    ).json()
    rule = await client.post(
        "/v1/admin/routing-rules",
        json={
            "name": "Support inbox and line",
            "conditions": {
                "match": "any",
                "conditions": [
                    {"type": "mailbox", "in": [mailbox["id"]]},
                    {"type": "sms_number", "in": [number["id"]]},
                ],
            },
            "actions": [{"type": "priority", "value": 1}],
        },
        headers=bearer(admin),
    )
    assert rule.status == 201, await rule.text()
    rule_id = (await rule.json())["id"]
    for url in (f"/v1/admin/channels/{mailbox['id']}", f"/v1/admin/channels/sms/{number['id']}"):
        refused = await client.delete(url, headers=bearer(admin))
        assert refused.status == 409
        error = (await refused.json())["error"]
        assert (error["code"], error["details"]["rule_ids"]) == ("channel_in_use", [rule_id])
    assert await db.fetchval("SELECT count(*) FROM mailboxes") == 1
    assert await db.fetchval("SELECT count(*) FROM sms_numbers") == 1

    dropped = await client.delete(f"/v1/admin/routing-rules/{rule_id}", headers=bearer(admin))
    assert dropped.status == 204
    for url in (f"/v1/admin/channels/{mailbox['id']}", f"/v1/admin/channels/sms/{number['id']}"):
        assert (await client.delete(url, headers=bearer(admin))).status == 204
