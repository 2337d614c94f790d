"""Mailboxes: from the environment and the admin API, with their passwords sealed at rest."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Executor
from contactcenter.domain.identities import normalise_email
from contactcenter.domain.mailboxes import IMAP_PORTS, SMTP_PORTS, Mailbox, Security, ServerAccount
from contactcenter.sealing import UnsealError, seal, unseal
from contactcenter.settings import Settings
from contactcenter.store import mailboxes

logger = logging.getLogger(__name__)

ENVIRONMENT_MAILBOX = "default"
SECRET_COLUMNS = ("imap_password", "smtp_password")


def _account(
    row: asyncpg.Record, kind: str, secret_key: str, ports: dict[Security, int]
) -> ServerAccount | None:
    host = row[f"{kind}_host"]
    if not host:
        return None
    security = Security(row[f"{kind}_security"])
    sealed = row[f"{kind}_password"]
    password = None
    if sealed:
        try:
            password = unseal(secret_key, sealed)
        except UnsealError:
            logger.error("mailbox password unreadable", extra={"mailbox_id": row["id"]})
    return ServerAccount(
        host=host,
        port=row[f"{kind}_port"] or ports[security],
        security=security,
        user=row[f"{kind}_user"],
        password=password,
    )


def to_mailbox(row: asyncpg.Record, secret_key: str) -> Mailbox:
    return Mailbox(
        id=row["id"],
        name=row["name"],
        address=row["address"],
        display_name=row["display_name"],
        imap=_account(row, "imap", secret_key, IMAP_PORTS),
        imap_folder=row["imap_folder"],
        smtp=_account(row, "smtp", secret_key, SMTP_PORTS),
        enabled=row["enabled"],
    )


def public_view(row: asyncpg.Record) -> dict[str, Any]:
    """What the admin API shows: everything but the secrets, which it only says are set."""
    view = {k: v for k, v in dict(row).items() if k not in SECRET_COLUMNS}
    for column in SECRET_COLUMNS:
        view[f"{column}_set"] = bool(row[column])
    return view


def seal_secrets(secret_key: str, values: dict[str, Any]) -> dict[str, Any]:
    sealed = dict(values)
    for column in SECRET_COLUMNS:
        if sealed.get(column):
            sealed[column] = seal(secret_key, sealed[column])
    return sealed


async def sync_environment_mailbox(db: Executor, settings: Settings) -> int | None:
    """The mailbox of the IMAP_* / SMTP_* / EMAIL_FROM environment, kept as row 'default'."""
    if not settings.email_from or not (settings.imap_host or settings.smtp_host):
        return None
    values = {
        "name": ENVIRONMENT_MAILBOX,
        "address": normalise_email(settings.email_from),
        "display_name": settings.email_from_name,
        "imap_host": settings.imap_host,
        "imap_port": settings.imap_port,
        "imap_security": settings.imap_security,
        "imap_user": settings.imap_user,
        "imap_password": settings.imap_password,
        "imap_folder": settings.imap_folder,
        "smtp_host": settings.smtp_host,
        "smtp_port": settings.smtp_port,
        "smtp_security": settings.smtp_security,
        "smtp_user": settings.smtp_user,
        "smtp_password": settings.smtp_password,
        "enabled": True,
    }
    try:
        row = await mailboxes.upsert_environment(db, seal_secrets(settings.secret, values))
    except asyncpg.UniqueViolationError:
        logger.error(
            "EMAIL_FROM is the address of a mailbox configured through the admin API; the "
            "environment's mailbox is not used"
        )
        return None
    return int(row["id"])


async def listening(conns: Conns) -> list[Mailbox]:
    rows = await mailboxes.list_listening(conns.db)
    return [to_mailbox(row, conns.settings.secret) for row in rows]


async def load(conns: Conns, mailbox_id: int) -> Mailbox | None:
    row = await mailboxes.get(conns.db, mailbox_id)
    return None if row is None else to_mailbox(row, conns.settings.secret)


async def first_sending(conns: Conns) -> Mailbox | None:
    row = await mailboxes.first_sending(conns.db)
    return None if row is None else to_mailbox(row, conns.settings.secret)


async def for_addresses(conns: Conns, addresses: list[str]) -> Mailbox | None:
    """The mailbox a mail was written to, else the first enabled one."""
    row = await mailboxes.by_address(conns.db, addresses) or await mailboxes.first_enabled(conns.db)
    return None if row is None else to_mailbox(row, conns.settings.secret)
