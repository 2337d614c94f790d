"""SMS numbers (environment and admin-configured, tokens sealed) and the consent ledger."""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection, Executor
from contactcenter.domain.errors import Invalid
from contactcenter.domain.identities import normalise_phone
from contactcenter.domain.sms_numbers import SmsNumber
from contactcenter.sealing import seal, unseal
from contactcenter.services.ingest import IngestResult, InTransaction
from contactcenter.settings import Settings
from contactcenter.store import sms

logger = logging.getLogger(__name__)

ENVIRONMENT_NUMBER = "default"


def to_number(row: asyncpg.Record, secret_key: str) -> SmsNumber:
    return SmsNumber(
        id=row["id"],
        name=row["name"],
        account_sid=row["account_sid"],
        auth_token=unseal(secret_key, row["auth_token"]),
        from_number=row["from_number"],
        messaging_service_sid=row["messaging_service_sid"],
    )


async def sync_environment_number(db: Executor, settings: Settings) -> int | None:
    """The number of the TWILIO_* environment, kept as row 'default'."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
        logger.error("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is needed to send SMS")
        return None
    from_number = settings.twilio_from_number
    if from_number:
        try:
            from_number = normalise_phone(from_number, settings.default_phone_region)
        except Invalid:
            logger.error("TWILIO_FROM_NUMBER is not a phone number; SMS is off")
            return None
    try:
        row = await sms.upsert_environment(
            db,
            {
                "name": ENVIRONMENT_NUMBER,
                "account_sid": settings.twilio_account_sid,
                "auth_token": seal(settings.secret, settings.twilio_auth_token),
                "from_number": from_number,
                "messaging_service_sid": settings.twilio_messaging_service_sid,
            },
        )
    except asyncpg.UniqueViolationError:
        logger.error(
            "TWILIO_FROM_NUMBER is a number configured through the admin API; the "
            "environment's number is not used"
        )
        return None
    return int(row["id"])


async def for_inbound(
    conns: Conns, account_sid: str, to_number: str | None, service_sid: str | None
) -> SmsNumber | None:
    row = await sms.for_inbound(conns.db, account_sid, to_number, service_sid)
    return None if row is None else to_number_or_none(row, conns)


async def for_account(conns: Conns, account_sid: str) -> SmsNumber | None:
    row = await sms.by_account(conns.db, account_sid)
    return None if row is None else to_number_or_none(row, conns)


async def for_conversation(conns: Conns, number_id: int | None) -> SmsNumber | None:
    row = await sms.get(conns.db, number_id) if number_id is not None else None
    row = row or await sms.first_enabled(conns.db)
    return None if row is None else to_number_or_none(row, conns)


def to_number_or_none(row: asyncpg.Record, conns: Conns) -> SmsNumber | None:
    try:
        return to_number(row, conns.settings.secret)
    except Exception:  # sealed with another SECRET_KEY
        logger.error("SMS number token unreadable", extra={"sms_number_id": row["id"]})
        return None


def record_keyword(phone: str, *, opted_out: bool, word: str, now: datetime) -> InTransaction:
    """The consent change a STOP / START message asks for, in the transaction storing it."""

    async def record(conn: Connection, result: IngestResult) -> None:
        if result.duplicate:
            return  # Twilio's retry of a message already recorded
        await sms.record_consent(
            conn,
            phone,
            opted_out=opted_out,
            source="keyword",
            detail=word,
            message_id=result.message_id,
            now=now,
        )

    return record


async def record_carrier_opt_out(conns: Conns, phone: str, detail: str) -> None:
    """Twilio refused a send because the number opted out with the carrier (21610)."""
    async with conns.db.acquire() as conn, conn.transaction():
        await sms.record_consent(
            conn,
            phone,
            opted_out=True,
            source="carrier",
            detail=detail,
            message_id=None,
            now=conns.clock(),
        )


async def is_opted_out(db: Executor, phone: str) -> bool:
    return await sms.opted_out(db, phone)
