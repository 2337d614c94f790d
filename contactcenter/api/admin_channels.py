"""/v1/admin/channels: mailboxes and (under /sms) Twilio numbers (admins write, supervisors
read; secrets sealed and never returned), and the quarantine of mails that could not be read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, Field

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Media, Page, View, documented
from contactcenter.api.parsing import Body, CleanStr, Patch, path_id, read_json, whole_number
from contactcenter.api.serialize import jsonable
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.enums import Role
from contactcenter.domain.identities import normalise_email, normalise_phone
from contactcenter.domain.mailboxes import Security
from contactcenter.sealing import seal
from contactcenter.services import audit
from contactcenter.services import mailboxes as mailbox_service
from contactcenter.store import mailboxes, routing_rules, sms

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)


def _single_line(value: str) -> str:
    # these end up in mail headers and IMAP commands, where a line break is an injection
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must be one line without control characters")
    return value


Line = Annotated[CleanStr, AfterValidator(_single_line)]
Host = Annotated[Line, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Short = Annotated[Line, Field(max_length=320)]
Secret = Annotated[CleanStr, Field(max_length=1000)]
# columns that hold a value always: null is refused, leave the field out to keep it
READS_ANOTHER_FOLDER = {"imap_host", "imap_port", "imap_user", "imap_folder"}
NOT_NULL = ("name", "address", "imap_folder", "imap_security", "smtp_security", "enabled")


class MailboxPatch(Patch):
    not_null = NOT_NULL

    name: Annotated[Line, Field(min_length=1, max_length=100)] | None = None
    address: Short | None = None
    display_name: Short | None = None
    imap_host: Host | None = None
    imap_port: Port | None = None
    # IMAP over TLS (993) or, on a trusted network, plain; IMAP STARTTLS is not supported yet
    imap_security: Literal["ssl", "none"] | None = None
    imap_user: Short | None = None
    imap_password: Secret | None = None
    imap_folder: Annotated[Line, Field(min_length=1, max_length=200)] | None = None
    smtp_host: Host | None = None
    smtp_port: Port | None = None
    smtp_security: Literal["ssl", "starttls", "none"] | None = None
    smtp_user: Short | None = None
    smtp_password: Secret | None = None
    enabled: bool | None = None


class MailboxBody(MailboxPatch):
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    address: Short


class MailboxView(View):
    """A mailbox as admins see it: the passwords are never shown, only whether one is set."""

    id: int
    name: str
    address: str
    display_name: str | None
    imap_host: str | None
    imap_port: int | None
    # the database allows starttls, though neither this API nor IMAP_SECURITY writes it now
    imap_security: Security
    imap_user: str | None
    imap_password_set: bool
    imap_folder: str
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: Security
    smtp_user: str | None
    smtp_password_set: bool
    enabled: bool
    from_environment: bool = Field(
        description="made from the IMAP_*/SMTP_* settings: read-only through this API"
    )
    created_at: datetime
    updated_at: datetime


class QuarantinedMail(View):
    """A mail that could not be read, kept for an admin to look at."""

    id: int
    mailbox_id: int | None = Field(description="null: no mailbox was known for it, or it is gone")
    uid: int | None = Field(description="its IMAP UID in that mailbox; null when not from IMAP")
    size: int = Field(
        description="bytes kept (of a mail over the size limit, only its headers are kept)"
    )
    error: str
    created_at: datetime


class QuarantineQuery(Body):
    """Documentation only: list_quarantine reads the query by hand."""

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(
        None, pattern=r"^[0-9]{1,19}$", description="the next_cursor of the previous page"
    )


def _exists() -> ApiError:
    return ApiError(409, "channel_exists", "a mailbox with that name or address exists")


def _invalid(error: Exception) -> ApiError:
    return ApiError(422, "validation_error", f"the mailbox was refused ({type(error).__name__})")


def _values(request: web.Request, body: MailboxPatch) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    if values.get("address") is not None:
        values["address"] = normalise_email(values["address"])
    return mailbox_service.seal_secrets(request.app[CONNS].settings.secret, values)


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(mailbox_service.public_view(row)))


@documented("List mailboxes", access="readers", responses={200: Page[MailboxView]})
async def list_channels(request: web.Request) -> web.Response:
    """Every mailbox, the environment's included, oldest first (one page)."""
    await require_agent(request, roles=READERS)
    rows = await mailboxes.list_all(request.app[CONNS].db)
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented("Add a mailbox", access="admin", body=MailboxBody, responses={201: MailboxView})
async def create_channel(request: web.Request) -> web.Response:
    """A mailbox to read (IMAP) and send from (SMTP); it needs at least one of the two servers.
    Passwords are sealed at rest and never shown again."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, MailboxBody)
    if not (body.imap_host or body.smtp_host):
        raise ApiError(
            422,
            "validation_error",
            "a mailbox needs an IMAP or an SMTP server",
            {"fields": [{"field": "imap_host", "message": "or smtp_host"}]},
        )
    try:
        async with request.app[CONNS].db.acquire() as conn, conn.transaction():
            row = await mailboxes.insert(conn, _values(request, body))
            await audit.record(conn, by, AuditAction.CREATE, "mailbox", row["id"], after=_view(row))
    except asyncpg.UniqueViolationError:
        raise _exists() from None
    except asyncpg.IntegrityConstraintViolationError as error:  # a backstop for the checks
        raise _invalid(error) from None
    return web.json_response(_view(row), status=201)


@documented("A mailbox", access="readers", responses={200: MailboxView})
async def get_channel(request: web.Request) -> web.Response:
    """One mailbox, without its passwords."""
    await require_agent(request, roles=READERS)
    row = await mailboxes.get(request.app[CONNS].db, path_id(request))
    if row is None:
        raise ApiError(404, "channel_not_found", "no such channel")
    return web.json_response(_view(row))


@documented("Change a mailbox", access="admin", body=MailboxPatch, responses={200: MailboxView})
async def update_channel(request: web.Request) -> web.Response:
    """Change the fields sent, keep the rest. Another IMAP server, account or folder starts
    reading from now; a mailbox from the environment cannot be changed here (409)."""
    by = await require_agent(request, roles=WRITERS)
    mailbox_id = path_id(request)
    body = await read_json(request, MailboxPatch)
    db = request.app[CONNS].db
    values = _values(request, body)
    try:
        async with db.acquire() as conn, conn.transaction():
            stored = await mailboxes.get(conn, mailbox_id)
            row = await mailboxes.update(conn, mailbox_id, values)
            if row is not None and stored is not None:
                before, after = _view(stored), _view(row)
                await audit.record(
                    conn, by, AuditAction.UPDATE, "mailbox", mailbox_id, before=before, after=after
                )
            if row is not None and READS_ANOTHER_FOLDER & values.keys():
                # another server or folder: its UIDs mean nothing here, start from now
                await mailboxes.forget_checkpoint(conn, mailbox_id)
    except asyncpg.UniqueViolationError:
        raise _exists() from None
    except asyncpg.IntegrityConstraintViolationError as error:
        raise _invalid(error) from None
    if row is None:
        await _refuse_environment(db, mailbox_id)
        raise ApiError(404, "channel_not_found", "no such channel")
    return web.json_response(_view(row))


@documented(
    "Delete a mailbox (not one in use, nor the environment's)",
    access="admin",
    responses={204: None},
)
async def delete_channel(request: web.Request) -> web.Response:
    """Delete a mailbox no conversation and no routing rule uses (409 channel_in_use
    otherwise: disable it instead)."""
    by = await require_agent(request, roles=WRITERS)
    mailbox_id = path_id(request)
    db = request.app[CONNS].db
    try:
        async with db.acquire() as conn, conn.transaction():
            stored = await mailboxes.get(conn, mailbox_id)
            deleted = await mailboxes.delete(conn, mailbox_id)
            # after the delete's row lock: a rule being saved either shows here or is refused
            if deleted:
                _refuse_named_by_rules(await routing_rules.referencing(conn, mailbox_id=mailbox_id))
                before = None if stored is None else _view(stored)
                await audit.record(
                    conn, by, AuditAction.DELETE, "mailbox", mailbox_id, before=before
                )
    except asyncpg.ForeignKeyViolationError:
        raise ApiError(
            409, "channel_in_use", "conversations use this mailbox: disable it instead"
        ) from None
    if not deleted:
        await _refuse_environment(db, mailbox_id)
        raise ApiError(404, "channel_not_found", "no such channel")
    return web.Response(status=204)


def _refuse_named_by_rules(rule_ids: list[int]) -> None:
    if rule_ids:
        raise ApiError(
            409,
            "channel_in_use",
            "routing rules name this channel: change them first",
            {"rule_ids": rule_ids},
        )


async def _refuse_environment(db: Any, mailbox_id: int) -> None:
    row = await mailboxes.get(db, mailbox_id)
    if row is not None and row["from_environment"]:
        raise ApiError(
            409, "configured_by_environment", "this mailbox comes from IMAP_*/SMTP_* settings"
        )


@documented(
    "Mails that could not be read",
    access="readers",
    query=QuarantineQuery,
    responses={200: Page[QuarantinedMail]},
)
async def list_quarantine(request: web.Request) -> web.Response:
    """The quarantine of mails intake could not read or store, newest first."""
    await require_agent(request, roles=READERS)
    limit = whole_number(request.query.get("limit", "50"), low=1, high=200)
    before = whole_number(request.query.get("cursor", str(2**63 - 1)), low=1)
    if limit is None or before is None:
        raise ApiError(422, "invalid_query", "limit is 1 to 200; cursor is one we gave")
    items = await mailboxes.list_quarantine(request.app[CONNS].db, before, limit)
    next_cursor = str(items[-1]["id"]) if len(items) == limit else None
    return web.json_response({"items": jsonable(items), "next_cursor": next_cursor})


@documented(
    "The raw source of a quarantined mail",
    access="admin",
    responses={
        200: Media(
            "message/rfc822", None, "the mail as it was kept, as an attachment quarantine-<id>.eml"
        )
    },
)
async def quarantined_raw(request: web.Request) -> web.Response:
    """The raw source of a quarantined mail, for an admin to inspect."""
    await require_agent(request, roles=WRITERS)
    row = await mailboxes.get_quarantined(request.app[CONNS].db, path_id(request))
    if row is None:
        raise ApiError(404, "not_found", "no such quarantined mail")
    return web.Response(
        body=bytes(row["raw"]),
        content_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="quarantine-{row["id"]}.eml"'},
    )


class SmsNumberBody(Body):
    name: Annotated[Line, Field(min_length=1, max_length=100)]
    account_sid: Annotated[Line, Field(pattern=r"^AC[0-9a-fA-F]{32}$")]
    auth_token: Annotated[Line, Field(min_length=8, max_length=200)]
    from_number: Short | None = None
    messaging_service_sid: Annotated[Line, Field(pattern=r"^MG[0-9a-fA-F]{32}$")] | None = None
    enabled: bool = True


class SmsNumberView(View):
    """An SMS number as admins see it: the auth token is never shown, only whether it is set."""

    id: int
    name: str
    account_sid: str
    auth_token_set: bool
    from_number: str | None = Field(description="E.164; null: the Messaging Service picks")
    messaging_service_sid: str | None
    enabled: bool
    from_environment: bool = Field(description="made from the TWILIO_* settings: read-only here")
    created_at: datetime
    updated_at: datetime


def _sms_view(row: asyncpg.Record) -> dict[str, Any]:
    """Everything but the auth token, which the API only says is set."""
    view = {k: v for k, v in dict(row).items() if k != "auth_token"}
    view["auth_token_set"] = bool(row["auth_token"])
    return dict(jsonable(view))


@documented("List SMS numbers", access="readers", responses={200: Page[SmsNumberView]})
async def list_sms_numbers(request: web.Request) -> web.Response:
    """Every Twilio number (or Messaging Service), the environment's included, oldest first."""
    await require_agent(request, roles=READERS)
    rows = await sms.list_all(request.app[CONNS].db)
    return web.json_response({"items": [_sms_view(r) for r in rows], "next_cursor": None})


@documented("Add an SMS number", access="admin", body=SmsNumberBody, responses={201: SmsNumberView})
async def create_sms_number(request: web.Request) -> web.Response:
    """A Twilio account's number, or a Messaging Service (from_number or
    messaging_service_sid, at least one). The auth token is sealed and never shown again."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, SmsNumberBody)
    if not (body.from_number or body.messaging_service_sid):
        raise ApiError(
            422,
            "validation_error",
            "an SMS number needs from_number or messaging_service_sid",
            {"fields": [{"field": "from_number", "message": "or messaging_service_sid"}]},
        )
    values = body.model_dump()
    if body.from_number:
        region = request.app[CONNS].settings.default_phone_region
        values["from_number"] = normalise_phone(body.from_number, region)
    values["auth_token"] = seal(request.app[CONNS].settings.secret, body.auth_token)
    try:
        async with request.app[CONNS].db.acquire() as conn, conn.transaction():
            row = await sms.insert(conn, values)
            await audit.record(
                conn, by, AuditAction.CREATE, "sms_number", row["id"], after=_sms_view(row)
            )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "channel_exists", "an SMS number with that name or number exists"
        ) from None
    return web.json_response(_sms_view(row), status=201)


@documented(
    "Delete an SMS number (not one in use, nor the environment's)",
    access="admin",
    responses={204: None},
)
async def delete_sms_number(request: web.Request) -> web.Response:
    """Delete a number no conversation and no routing rule uses (409 channel_in_use
    otherwise); the one from TWILIO_* answers 404."""
    by = await require_agent(request, roles=WRITERS)
    number_id = path_id(request)
    try:
        async with request.app[CONNS].db.acquire() as conn, conn.transaction():
            stored = await sms.get(conn, number_id)
            deleted = await sms.delete(conn, number_id)
            if deleted:
                _refuse_named_by_rules(
                    await routing_rules.referencing(conn, sms_number_id=number_id)
                )
                before = None if stored is None else _sms_view(stored)
                await audit.record(
                    conn, by, AuditAction.DELETE, "sms_number", number_id, before=before
                )
    except asyncpg.ForeignKeyViolationError:
        raise ApiError(409, "channel_in_use", "conversations use this number") from None
    if not deleted:
        raise ApiError(404, "channel_not_found", "no such SMS number (or it comes from TWILIO_*)")
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    # before /{id}, which would take "sms" for an id
    app.router.add_get("/v1/admin/channels/sms", list_sms_numbers)
    app.router.add_post("/v1/admin/channels/sms", create_sms_number)
    app.router.add_delete("/v1/admin/channels/sms/{id}", delete_sms_number)
    app.router.add_get("/v1/admin/channels", list_channels)
    app.router.add_post("/v1/admin/channels", create_channel)
    app.router.add_get("/v1/admin/channels/{id}", get_channel)
    app.router.add_patch("/v1/admin/channels/{id}", update_channel)
    app.router.add_delete("/v1/admin/channels/{id}", delete_channel)
    app.router.add_get("/v1/admin/email/quarantine", list_quarantine)
    app.router.add_get("/v1/admin/email/quarantine/{id}/raw", quarantined_raw)
