"""Scheduled care through the product, at a test clock: birthdays in each customer's time zone
(both sides of midnight, leap day), once a year with many runs, consent and opt-out, quiet
hours, follow-up visits after the tier's days (cancelled when the customer wrote again or the
conversation reopened), the account manager's task, and a greeting delivered by real SMTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.enums import ConversationStatus, Role
from contactcenter.services import care, inbox
from contactcenter.services import mailboxes as mailbox_service
from contactcenter.store import mailboxes
from tests.helpers import make_agent
from tests.mailservers import SmtpServer
from tests.routing_helpers import Clock, clocked, customer_writes, route_all, team


async def contact(
    db: asyncpg.Pool,
    *,
    name: str | None = "Wang Fang",
    birthday: date | None = None,
    timezone: str | None = None,
    locale: str | None = None,
    preferred: str | None = None,
    email: str | None = "wang@example.com",
    phone: str | None = None,
    consents: dict[str, bool] | None = None,
    tier: int = 4,
) -> int:
    contact_id = int(
        await db.fetchval(
            "INSERT INTO contacts (name, birthday, timezone, locale, preferred_channel,"
            " computed_tier, tier) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            name,
            birthday,
            timezone,
            locale,
            preferred,
            tier,
        )
    )
    for kind, value in (("email", email), ("phone", phone)):
        if value is not None:
            await db.execute(
                "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, $2, $3)",
                contact_id,
                kind,
                value,
            )
    for channel, granted in (consents or {}).items():
        await db.execute(
            "INSERT INTO contact_consents (contact_id, channel, granted, source)"
            " VALUES ($1, $2, $3, 'api')",
            contact_id,
            channel,
            granted,
        )
    return contact_id


async def sends(db: asyncpg.Pool, contact_id: int) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT kind, occasion, status, reason, due_at, channel, message_id, conversation_id"
        " FROM care_sends WHERE contact_id = $1 ORDER BY id",
        contact_id,
    )
    return [dict(r) for r in rows]


async def send_all_due(conns: Conns) -> None:
    """What the dispatcher would hand the care_send jobs, decided here at the test clock."""
    for row in await conns.db.fetch(
        "SELECT id FROM care_sends WHERE status = 'scheduled' AND due_at <= $1", conns.clock()
    ):
        await care.send(conns, row["id"])


@pytest.fixture
async def care_settings(db: asyncpg.Pool) -> Any:
    """The suite does not reset care_settings: put the defaults back after each test."""
    yield
    await db.execute("DELETE FROM care_settings")
    await db.execute("INSERT INTO care_settings DEFAULT VALUES")


# --- birthdays -------------------------------------------------------------------------------


async def test_a_birthday_is_today_in_the_customers_own_time_zone(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    # 2026-11-23 17:00 UTC is already the 24th in Shanghai (01:00) and still the 23rd in
    # Los Angeles (09:00)
    clock = Clock(datetime(2026, 11, 23, 17, tzinfo=UTC))
    timed = clocked(conns, clock)
    shanghai = await contact(db, birthday=date(1990, 11, 24), timezone="Asia/Shanghai")
    los_angeles = await contact(
        db, birthday=date(1985, 11, 23), timezone="America/Los_Angeles", email="la@example.com"
    )
    not_yet_there = await contact(
        db, birthday=date(1985, 11, 24), timezone="America/Los_Angeles", email="x@example.com"
    )
    over_in_tokyo = await contact(
        db, birthday=date(1985, 11, 23), timezone="Asia/Tokyo", email="t@example.com"
    )

    assert await care.schedule_birthdays(timed) == 2
    [greeting] = await sends(db, shanghai)
    assert (greeting["occasion"], greeting["status"]) == ("2026", "scheduled")
    assert greeting["due_at"] == datetime(2026, 11, 24, 1, tzinfo=UTC)  # 09:00 in Shanghai
    [greeting] = await sends(db, los_angeles)
    assert greeting["due_at"] == datetime(2026, 11, 23, 17, tzinfo=UTC)  # 09:00 PST
    assert await sends(db, not_yet_there) == []
    assert await sends(db, over_in_tokyo) == []  # Tokyo's 23rd ended at 15:00 UTC


@pytest.mark.parametrize(
    ("today", "greeted"),
    [
        (datetime(2027, 2, 28, 12, tzinfo=UTC), True),  # a common year: kept on the 28th
        (datetime(2027, 3, 1, 12, tzinfo=UTC), False),
        (datetime(2028, 2, 28, 12, tzinfo=UTC), False),  # a leap year: on the day itself
        (datetime(2028, 2, 29, 12, tzinfo=UTC), True),
    ],
)
async def test_a_leap_day_birthday(
    conns: Conns, db: asyncpg.Pool, care_settings: Any, today: datetime, greeted: bool
) -> None:
    leapling = await contact(db, birthday=date(2000, 2, 29), timezone="UTC")
    await care.schedule_birthdays(clocked(conns, Clock(today)))
    assert len(await sends(db, leapling)) == (1 if greeted else 0)


async def test_many_runs_and_racing_workers_greet_once_a_year(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, tzinfo=UTC))
    timed = clocked(conns, clock)
    customer = await contact(
        db, birthday=date(1990, 11, 23), timezone="UTC", consents={"email": True}
    )
    counts = await asyncio.gather(*(care.schedule_birthdays(timed) for _ in range(6)))
    assert sum(counts) == 1
    clock.advance(3600)
    assert await care.schedule_birthdays(timed) == 0
    [row] = await db.fetch("SELECT id FROM care_sends WHERE contact_id = $1", customer)
    decided = await asyncio.gather(*(care.send(timed, row["id"]) for _ in range(4)))
    assert [d.status for d in decided].count("sent") == 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.contact_id = $1 AND m.direction = 'outbound'",
            customer,
        )
        == 1
    )
    # next year is another occasion
    clock.now = datetime(2027, 11, 23, 10, tzinfo=UTC)
    assert await care.schedule_birthdays(timed) == 1


async def test_consent_and_opt_out_decide_and_the_reason_is_kept(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    timed = clocked(conns, Clock(datetime(2026, 11, 23, 10, tzinfo=UTC)))
    born = date(1990, 11, 23)
    never_asked = await contact(db, birthday=born, timezone="UTC", email="a@example.com")
    withdrew = await contact(
        db, birthday=born, timezone="UTC", email="b@example.com", consents={"email": False}
    )
    stopped = await contact(
        db,
        birthday=born,
        timezone="UTC",
        email=None,
        phone="+8613800000001",
        preferred="sms",
        consents={"sms": True},
    )
    await db.execute(
        "INSERT INTO sms_consent (phone, opted_out, changed_at) VALUES ($1, true, now())",
        "+8613800000001",
    )
    prefers_sms_without_consent = await contact(
        db,
        birthday=born,
        timezone="UTC",
        email="c@example.com",
        preferred="sms",
        phone="+8613800000002",
        consents={"email": True},
    )
    no_address = await contact(
        db, birthday=born, timezone="UTC", email=None, consents={"email": True}
    )
    await care.schedule_birthdays(timed)
    await send_all_due(timed)
    expected = {
        never_asked: "no_consent",
        withdrew: "no_consent",
        stopped: "opted_out",
        prefers_sms_without_consent: "no_consent",
        no_address: "no_address",
    }
    for contact_id, reason in expected.items():
        [row] = await sends(db, contact_id)
        assert (row["status"], row["reason"], row["message_id"]) == ("skipped", reason, None)


async def test_a_greeting_reaches_the_customer_by_real_smtp_once(
    conns: Conns, db: asyncpg.Pool, smtp_server: SmtpServer, run_jobs: Any, care_settings: Any
) -> None:
    await mailboxes.insert(
        conns.db,
        mailbox_service.seal_secrets(
            conns.settings.secret,
            {
                "name": "care",
                "address": "care@example.com",
                "smtp_host": smtp_server.host,
                "smtp_port": smtp_server.port,
                "smtp_security": "none",
                "smtp_user": smtp_server.user,
                "smtp_password": smtp_server.password,
            },
        ),
    )
    timed = clocked(conns, Clock(datetime(2026, 11, 23, 10, tzinfo=UTC)))
    customer = await contact(
        db,
        name="王芳",
        birthday=date(1990, 11, 23),
        timezone="Asia/Shanghai",
        locale="zh-CN",
        consents={"email": True},
    )
    # 18:00 in Shanghai: past the 09:00 greeting hour, inside the allowed hours
    await care.schedule_birthdays(timed)
    await send_all_due(timed)
    [row] = await sends(db, customer)
    assert (row["status"], row["channel"]) == ("sent", "email")
    status, kind = await db.fetchrow(
        "SELECT status, care_kind FROM conversations WHERE id = $1", row["conversation_id"]
    )
    assert (status, kind) == ("closed", "birthday")

    await run_jobs()
    [mail] = await smtp_server.wait_for(1, within=10)
    assert mail.rcpt_tos == ("wang@example.com",)
    subject = str(mail.message["Subject"])
    assert "王芳,生日快乐" in subject and not subject.startswith("Re:")
    assert mail.message["Auto-Submitted"] == "auto-generated"
    body = mail.message.get_body(("plain",))
    assert body is not None and "尊敬的王芳" in body.get_content()
    await send_all_due(timed)
    await run_jobs()
    assert len(smtp_server.messages) == 1


async def test_the_top_tier_greeting_is_a_task_for_the_account_manager(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    await db.execute("UPDATE care_settings SET birthday_task_tiers = '{1}'")
    await team(db, "Key accounts")
    manager_id, _ = await make_agent(db, name="Mei", team="Key accounts")
    timed = clocked(conns, Clock(datetime(2026, 11, 23, 10, tzinfo=UTC)))
    vip = await contact(
        db, birthday=date(1970, 11, 23), timezone="UTC", tier=1, consents={"email": True}
    )
    await db.execute(
        "UPDATE contacts SET account_manager_id = $2, pinned_tier = 1 WHERE id = $1",
        vip,
        manager_id,
    )
    await care.schedule_birthdays(timed)
    await send_all_due(timed)
    [row] = await sends(db, vip)
    assert row["status"] == "task"
    task = await db.fetchrow(
        "SELECT care_kind, assignee_id, status FROM conversations WHERE id = $1",
        row["conversation_id"],
    )
    assert dict(task) == {"care_kind": "birthday_task", "assignee_id": manager_id, "status": "open"}
    # nothing went to the customer: the manager writes themselves
    assert (
        await db.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 AND NOT is_note",
            row["conversation_id"],
        )
        == 0
    )


# --- quiet hours -----------------------------------------------------------------------------


async def test_what_falls_in_quiet_hours_waits_for_the_morning(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    # 20:30 in Shanghai on the birthday; the greeting hour is set to 09:00 but the cron first
    # ran late (a worker was down): at 21:30 local it may not go until 08:00 tomorrow
    clock = Clock(datetime(2026, 11, 23, 13, 30, tzinfo=UTC))
    timed = clocked(conns, clock)
    customer = await contact(
        db, birthday=date(1990, 11, 23), timezone="Asia/Shanghai", consents={"email": True}
    )
    await care.schedule_birthdays(timed)
    await send_all_due(timed)
    [row] = await sends(db, customer)
    assert (row["status"], row["due_at"]) == ("scheduled", datetime(2026, 11, 24, 0, tzinfo=UTC))
    clock.now = datetime(2026, 11, 24, 0, tzinfo=UTC)  # 08:00 in Shanghai
    await send_all_due(timed)
    assert (await sends(db, customer))[0]["status"] == "sent"


# --- follow-up visits ------------------------------------------------------------------------


async def resolved_chat(conns: Conns, db: asyncpg.Pool, clock: Clock) -> tuple[int, int, Agent]:
    """A web conversation answered by an agent and resolved at the clock's time."""
    agent_id, _ = await make_agent(db, name="Ann", role=Role.SUPERVISOR)
    conversation_id, contact_id = await customer_writes(clocked(conns, clock), "help")
    await route_all(clocked(conns, clock), [conversation_id])
    agent = Agent(agent_id, "Ann", "ann@example.com", Role.SUPERVISOR, ())
    await inbox.change_status(
        clocked(conns, clock), agent, conversation_id, ConversationStatus.RESOLVED, None
    )
    return conversation_id, contact_id, agent


async def test_a_resolved_conversation_is_visited_after_its_tiers_days(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    clock = Clock(datetime(2026, 11, 23, 3, tzinfo=UTC))  # 03:00 UTC (default zone)
    conversation_id, contact_id, _ = await resolved_chat(conns, db, clock)
    [row] = await sends(db, contact_id)
    # tier 4: three days, at 03:00 UTC — quiet — so at 08:00
    assert (row["kind"], row["status"], row["conversation_id"]) == (
        "follow_up",
        "scheduled",
        conversation_id,
    )
    assert row["due_at"] == datetime(2026, 11, 26, 8, tzinfo=UTC)
    clock.now = row["due_at"]
    await send_all_due(clocked(conns, clock))
    [row] = await sends(db, contact_id)
    assert (row["status"], row["channel"]) == ("sent", "web")
    text, automatic = await db.fetchrow(
        "SELECT body_text, is_automatic FROM messages WHERE id = $1", row["message_id"]
    )
    assert automatic and "/v1/care/survey/" in text
    # the visit does not reopen the conversation
    status = await db.fetchval("SELECT status FROM conversations WHERE id = $1", conversation_id)
    assert status == "resolved"


async def test_a_visit_is_cancelled_when_the_customer_wrote_again_or_it_was_reopened(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, tzinfo=UTC))
    first, first_contact, _ = await resolved_chat(conns, db, clock)
    second, second_contact, agent = await resolved_chat(conns, db, clock)
    clock.advance(3600)
    # the first customer writes on another chat; the second conversation is reopened
    await customer_writes(clocked(conns, clock), "still broken", contact_id=first_contact)
    await inbox.change_status(clocked(conns, clock), agent, second, ConversationStatus.OPEN, None)
    clock.now = datetime(2026, 11, 26, 10, tzinfo=UTC)
    await send_all_due(clocked(conns, clock))
    assert [(r["status"], r["reason"]) for r in await sends(db, first_contact)] == [
        ("cancelled", "written_again")
    ]
    assert [(r["status"], r["reason"]) for r in await sends(db, second_contact)] == [
        ("cancelled", "reopened")
    ]
    assert first and second


async def test_what_care_opened_gets_no_follow_up_visit_when_resolved(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, tzinfo=UTC))
    conversation_id, contact_id, agent = await resolved_chat(conns, db, clock)
    await db.execute("DELETE FROM care_sends")
    for kind in ("birthday_task", "recovery"):
        await db.execute(
            "UPDATE conversations SET care_kind = $2, status = 'open', resolved_at = NULL"
            " WHERE id = $1",
            conversation_id,
            kind,
        )
        clock.advance(60)
        await inbox.change_status(
            clocked(conns, clock), agent, conversation_id, ConversationStatus.RESOLVED, None
        )
    assert await sends(db, contact_id) == []


async def test_a_send_that_keeps_failing_is_marked_failed_not_retried_for_ever(
    conns: Conns, db: asyncpg.Pool, care_settings: Any
) -> None:
    timed = clocked(conns, Clock(datetime(2026, 11, 23, 10, tzinfo=UTC)))
    customer = await contact(
        db, birthday=date(1990, 11, 23), timezone="UTC", consents={"email": True}
    )
    await care.schedule_birthdays(timed)
    # five decisions were begun on it and none finished (each raised and rolled back)
    await db.execute("UPDATE care_sends SET attempts = $1", care.MAX_ATTEMPTS)
    await send_all_due(timed)
    [row] = await sends(db, customer)
    assert (row["status"], row["reason"], row["message_id"]) == (
        "failed",
        "too_many_attempts",
        None,
    )
    assert await care.dispatch(timed) == 0
