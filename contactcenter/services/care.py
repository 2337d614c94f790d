"""Scheduled care: birthday greetings and follow-up visits, from schedule to sent message.

- Scheduling: the birthday cron inserts, in one set-based statement, a care_sends row for
  every customer whose birthday is today in their own time zone (due at the settings' local
  hour); resolving a conversation schedules its follow-up visit (due the tier's days later,
  moved out of quiet hours). The unique (contact, kind, occasion) key makes each happen once,
  whatever runs it and how often (invariant 7).
- Dispatch: the dispatcher cron enqueues a `care_send` job for every row due, in batches.
- Sending (`send`, the job): the row is locked and decided once. Everything is checked again
  at that moment: quiet hours in the customer's time zone (outside them the row waits for the
  next allowed time), consent and opt-out, an address on the channel, a template; a follow-up
  is cancelled when the customer wrote again or the conversation was reopened (or resolved
  again: that resolution has its own visit). The message is an automatic outbound message,
  delivered by the send job like every reply (retries, SMS opt-out, bounces). A greeting
  opens a closed conversation of its own; a visit goes into the resolved conversation without
  reopening it; for a tier whose greeting is a task, the account manager gets a conversation
  waiting for them (capacity holds: the assignment engine gives it when they have room).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from contactcenter import jobs
from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain import care
from contactcenter.domain.care import CareKind, CareSettings, CareStatus, Reach, SkipReason
from contactcenter.domain.enums import Channel, ConversationStatus
from contactcenter.domain.errors import Invalid
from contactcenter.domain.templates import Purpose, Rendered, RenderFailed, render
from contactcenter.services import assignment, email_replies, sms_outbound, surveys, templates
from contactcenter.store import care as store
from contactcenter.store import care_settings, conversations, messages, teams

logger = logging.getLogger(__name__)

# how many due sends one dispatcher pass enqueues (the rest come on the next pass)
DISPATCH_BATCH = 5000
# decisions begun on one send before it is marked failed (each counted before it is tried, so
# one that keeps raising stops being handed to a job every minute)
MAX_ATTEMPTS = 5
# an account manager's birthday task waits this long for them before their team may take it
TASK_WAITS_FOR_MANAGER = timedelta(hours=8)
REPLY_DIGITS = "1-5"


# --- scheduling ------------------------------------------------------------------------------


async def schedule_birthdays(conns: Conns) -> int:
    """Today's greetings, in every time zone (the cron): how many were scheduled now."""
    settings = await care_settings.load(conns.db)
    if not settings.birthday_enabled:
        return 0
    scheduled = await store.schedule_birthdays(
        conns.db,
        conns.clock(),
        hour=settings.birthday_hour,
        default_timezone=settings.default_timezone,
    )
    return len(scheduled)


async def schedule_follow_up(
    conn: Connection, conversation: asyncpg.Record, now: datetime
) -> int | None:
    """In the resolve's transaction: the conversation's follow-up visit, when its tier gets
    one. What care itself opened (a birthday task, a recovery) gets none: a recovery's
    customer was asked already, and a greeting asks nothing."""
    if conversation["care_kind"] is not None:
        return None
    settings = await care_settings.load(conn)
    contact = await store.contact(conn, conversation["contact_id"])
    if contact is None:
        return None
    tz = care.zone(contact["timezone"], settings)
    due = care.follow_up_due(now, conversation["tier"], tz, settings)
    if due is None:
        return None
    return await store.schedule_follow_up(conn, conversation, now, due)


async def dispatch(conns: Conns) -> int:
    """Enqueue a send job for every care send due (the cron); how many were enqueued."""
    due = await store.due_sends(conns.db, conns.clock(), DISPATCH_BATCH)
    enqueued = 0
    for care_send_id in due:
        enqueued += await jobs.enqueue_care_send(conns, care_send_id)
    return enqueued


# --- sending ---------------------------------------------------------------------------------


@dataclass
class Decided:
    status: CareStatus | None = None  # None: postponed (quiet hours)
    reason: str | None = None
    message_id: int | None = None
    team_to_fill: int | None = None


async def send(conns: Conns, care_send_id: int) -> Decided:
    """Decide and queue one care send (safe to run twice: a decided row is left alone)."""
    now = conns.clock()
    decided = Decided()
    attempt = await store.begin_attempt(conns.db, care_send_id)
    if attempt is None:
        return decided
    async with conns.db.acquire() as conn, conn.transaction():
        row = await store.get_for_update(conn, care_send_id)
        if row is None or row["status"] != CareStatus.SCHEDULED:
            return decided
        if attempt > MAX_ATTEMPTS:
            decided = await _finish(conn, row, now, CareStatus.FAILED, "too_many_attempts")
        else:
            decided = await _decide(conn, conns, row, now)
    if decided.message_id is not None:
        await jobs.enqueue_send(conns, decided.message_id)
    if decided.team_to_fill is not None:
        await assignment.assign_waiting(conns, decided.team_to_fill)
    logger.info(
        "care send",
        extra={
            "care_send_id": care_send_id,
            "kind": row["kind"],
            "status": decided.status or "postponed",
            "reason": decided.reason,
        },
    )
    return decided


async def _decide(conn: Connection, conns: Conns, row: asyncpg.Record, now: datetime) -> Decided:
    settings = await care_settings.load(conn)
    contact = await store.contact(conn, row["contact_id"])
    if contact is None:
        return await _finish(conn, row, now, CareStatus.SKIPPED, SkipReason.NO_ADDRESS)
    tz = care.zone(contact["timezone"], settings)
    allowed = care.next_allowed(now, tz, settings)
    if allowed > now:
        await store.postpone(conn, row["id"], allowed, now)
        return Decided()
    reach = Reach(
        preferred_channel=contact["preferred_channel"],
        consents=dict(contact["consents"]),
        sms_opted_out=contact["sms_opted_out"],
        has_email=contact["has_email"],
        has_phone=contact["has_phone"],
    )
    locale = contact["locale"] or settings.default_locale
    try:
        if row["kind"] == CareKind.BIRTHDAY:
            return await _birthday(conn, conns, row, contact, reach, locale, settings, now)
        return await _follow_up(conn, conns, row, contact, reach, locale, settings, now)
    except _Undeliverable as refused:
        return await _finish(conn, row, now, refused.status, refused.reason)


class _Undeliverable(Exception):
    """The message cannot be made (no template, or one that fails): the send ends so."""

    def __init__(self, status: CareStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _render_care(
    conn: Connection,
    purpose: Purpose,
    channel: str,
    locale: str,
    settings: CareSettings,
    **values: str | None,
) -> Rendered:
    """The care message for the customer's locale, its salutation in the template's language
    (a fallback may be another than theirs); _Undeliverable when there is none to render."""
    template = await templates.load_for(conn, purpose, channel, locale, settings.default_locale)
    if template is None:
        raise _Undeliverable(CareStatus.SKIPPED, SkipReason.NO_TEMPLATE)
    try:
        return render(template, care.placeholder_values(locale=template.locale, **values))
    except RenderFailed:
        raise _Undeliverable(CareStatus.FAILED, "template_failed") from None


async def _finish(
    conn: Connection,
    row: asyncpg.Record,
    now: datetime,
    status: CareStatus,
    reason: str | None = None,
    **values: Any,
) -> Decided:
    await store.finish(conn, row["id"], status, now, reason=reason, **values)
    return Decided(status=status, reason=reason, message_id=values.get("message_id"))


async def _birthday(
    conn: Connection,
    conns: Conns,
    row: asyncpg.Record,
    contact: asyncpg.Record,
    reach: Reach,
    locale: str,
    settings: CareSettings,
    now: datetime,
) -> Decided:
    if not settings.birthday_enabled:
        return await _finish(conn, row, now, CareStatus.CANCELLED, SkipReason.DISABLED)
    manager = contact["account_manager_id"]
    if contact["tier"] in settings.birthday_task_tiers and manager is not None:
        return await _birthday_task(conn, row, contact, locale, settings, manager, now)
    channel, refused = care.greeting_channel(reach)
    if channel is None:
        return await _finish(conn, row, now, CareStatus.SKIPPED, refused)
    rendered = await _render_care(
        conn, Purpose.BIRTHDAY, channel, locale, settings, name=contact["name"]
    )
    opened = await store.open_conversation(
        conn,
        contact_id=contact["id"],
        channel=channel,
        subject=rendered.subject,
        status=ConversationStatus.CLOSED,
        now=now,
        care_kind="birthday",
        mailbox_id=await store.default_mailbox(conn) if channel == Channel.EMAIL else None,
        sms_number_id=await store.default_sms_number(conn) if channel == Channel.SMS else None,
    )
    return await _queue_message(conn, conns, row, opened, rendered, channel, locale, now)


async def _birthday_task(
    conn: Connection,
    row: asyncpg.Record,
    contact: asyncpg.Record,
    locale: str,
    settings: CareSettings,
    manager: int,
    now: datetime,
) -> Decided:
    """The top of the pyramid gets the personal touch: a conversation waiting for its account
    manager, with the greeting to adapt as a note."""
    channel = contact["preferred_channel"] or Channel.EMAIL
    if channel == Channel.WEB:
        channel = Channel.EMAIL
    template = await templates.load_for(
        conn, Purpose.BIRTHDAY_TASK, Channel.EMAIL, locale, settings.default_locale
    )
    values = care.placeholder_values(
        name=contact["name"], locale=template.locale if template else locale
    )
    note = f"Birthday today: {contact['name'] or 'customer'}"
    subject = note
    if template is not None:
        try:
            rendered = render(template, values)
            note, subject = rendered.text, rendered.subject or subject
        except RenderFailed:
            pass
    # the manager's team (else the default one) holds it, waiting for them
    team_id = await store.agent_team(conn, manager) or await teams.default_team_id(conn)
    opened = await store.open_conversation(
        conn,
        contact_id=contact["id"],
        channel=channel,
        subject=subject,
        status=ConversationStatus.OPEN,
        now=now,
        care_kind="birthday_task",
        team_id=team_id,
        waiting_since=now if team_id is not None else None,
        preferred_agent_id=manager,
        preferred_until=now + TASK_WAITS_FOR_MANAGER,
    )
    await messages.insert_outbound(
        conn, opened["id"], channel, None, note, now, is_note=True, automatic=True
    )
    decided = await _finish(
        conn, row, now, CareStatus.TASK, channel=channel, conversation_id=opened["id"]
    )
    decided.team_to_fill = team_id
    return decided


async def _follow_up(
    conn: Connection,
    conns: Conns,
    row: asyncpg.Record,
    contact: asyncpg.Record,
    reach: Reach,
    locale: str,
    settings: CareSettings,
    now: datetime,
) -> Decided:
    conversation = await conversations.get_for_update(conn, row["conversation_id"])
    resolved_at = store.resolved_at_of(row["occasion"])
    if (
        conversation is None
        or conversation["status"] not in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED)
        or conversation["resolved_at"] != resolved_at
    ):
        return await _finish(conn, row, now, CareStatus.CANCELLED, SkipReason.REOPENED)
    if resolved_at is not None and await store.written_since(conn, contact["id"], resolved_at):
        return await _finish(conn, row, now, CareStatus.CANCELLED, SkipReason.WRITTEN_AGAIN)
    if not settings.follow_up_enabled:
        return await _finish(conn, row, now, CareStatus.CANCELLED, SkipReason.DISABLED)
    channel = conversation["channel"]
    refused = care.follow_up_refusal(channel, reach)
    if refused is not None:
        return await _finish(conn, row, now, CareStatus.SKIPPED, refused)
    by_sms = channel == Channel.SMS
    rendered = await _render_care(
        conn,
        Purpose.FOLLOW_UP,
        channel,
        locale,
        settings,
        name=contact["name"],
        agent=await store.agent_name(conn, conversation["id"], conversation["assignee_id"]),
        survey_link=None if by_sms else surveys.survey_link(conns.settings, row["id"]),
        reply_digits=REPLY_DIGITS if by_sms else None,
    )
    return await _queue_message(conn, conns, row, conversation, rendered, channel, locale, now)


async def _queue_message(
    conn: Connection,
    conns: Conns,
    row: asyncpg.Record,
    conversation: asyncpg.Record,
    rendered: Rendered,
    channel: str,
    locale: str,
    now: datetime,
) -> Decided:
    """The care message as an automatic outbound message of the conversation, for the send
    job; an SMS that could never go (opted out, no number, too long) is skipped with why."""
    if channel == Channel.SMS:
        try:
            await sms_outbound.check_reply(
                conn, conversation, rendered.text, conns.settings.sms_max_segments
            )
        except Invalid as refused:
            return await _finish(conn, row, now, CareStatus.SKIPPED, refused.code)
    message = await messages.insert_outbound(
        conn,
        conversation["id"],
        channel,
        None,
        rendered.text,
        now,
        external_id=await email_replies.outbound_message_id(conn, conversation),
        automatic=True,
        html=rendered.html if channel == Channel.EMAIL else None,
    )
    return await _finish(
        conn,
        row,
        now,
        CareStatus.SENT,
        channel=channel,
        locale=locale,
        message_id=message["id"],
        conversation_id=conversation["id"],
    )
