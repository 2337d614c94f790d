"""The SLA engine's clock rules through the product (issue 6, item 3): the policy a
conversation gets when it is routed, the first response met by the first agent reply actually
sent, next-response cycles, resolution paused while pending or snoozed and resumed by the
customer, the agent or the reconciler waking a snooze, counted in business time across nights,
weekends, Chinese holidays with their adjusted working days and a DST change, stopped by
resolving and counted on after a reopen.

Every step runs the product's own units of work (ingest, the route job's service, the inbox,
the send job's delivery, the reconciler) at a test clock, and every due instant asserted was
computed by hand. Calendars: Mon-Fri 09:00-18:00 in Asia/Shanghai (with China's holidays where
named), Europe/Berlin for DST. A timer's job is stood in for by calling sla.fire at the test
clock (the jobs themselves are tested in test_sla_timers.py: these 2026 instants are more than
a day old, and arq refuses to defer to those, logging "enqueue failed").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from arq.constants import default_queue_name

from channels.registry import build_senders
from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.business_hours import is_open, validate
from contactcenter.domain.enums import Channel, ConversationStatus, Role
from contactcenter.domain.messages import DeliveryFailed, InboundMessage, OutboundMessage
from contactcenter.services import agents, delivery, inbox, routing, sla
from contactcenter.services import business_hours as business_hours_service
from contactcenter.services import sla_policies as sla_policies_service
from contactcenter.services.ingest import ingest
from contactcenter.services.reconcile import reconcile
from tests.helpers import bearer, call, make_agent
from tests.routing_helpers import Clock, clocked, customer_writes

Client = TestClient[Any, Any]
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
NINE_TO_SIX = {day: [["09:00", "18:00"]] for day in WEEKDAYS}
ALL_DAY_EVERY_DAY = {day: [["00:00", "24:00"]] for day in (*WEEKDAYS, "sat", "sun")}
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sh(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time of 2026 in Shanghai (2026-03-02 is a Monday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def micros(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def timer_job_id(conversation_id: int, due_at: datetime) -> str:
    """The job id the issue asks for: sla:{conversation}:{due epoch micros}."""
    return f"sla:{conversation_id}:{micros(due_at)}"


def arq_score(due_at: datetime) -> int:
    """arq keeps a deferred job's instant in whole milliseconds; a timer's job is deferred to
    the next whole millisecond after its instant (for an instant still to come)."""
    return micros(due_at) // 1000 + 1


# --- a desk: the product at a test clock, with a supervisor who may do anything -----------------


@dataclass
class Desk:
    conns: Conns
    clock: Clock
    supervisor: Agent

    def at(self, instant: datetime) -> None:
        self.clock.now = instant


async def make_desk(conns: Conns, start: datetime) -> Desk:
    _, token = await make_agent(conns.db, name="Supervisor", role=Role.SUPERVISOR, online=False)
    supervisor = await agents.authenticate(conns.db, token)
    assert supervisor is not None
    clock = Clock(start)
    return Desk(clocked(conns, clock), clock, supervisor)


async def calendar(conns: Conns, name: str = "Shanghai office", **fields: Any) -> int:
    values = {"name": name, "timezone": "Asia/Shanghai", "weekly": NINE_TO_SIX, **fields}
    row = await business_hours_service.create(conns, values)
    return int(row["id"])


async def policy(conns: Conns, name: str, **values: Any) -> int:
    row = await sla_policies_service.create(conns, {"name": name, **values})
    return int(row["id"])


async def tier_default(db: asyncpg.Pool, rank: int, policy_id: int | None) -> None:
    await db.execute("UPDATE tiers SET sla_policy_id = $2 WHERE rank = $1", rank, policy_id)


async def rule(
    db: asyncpg.Pool, name: str, actions: list[dict[str, Any]], *, keyword: str | None = None
) -> int:
    """A routing rule for every message, or for those with `keyword`."""
    conditions = [{"type": "text", "keywords": [keyword]}] if keyword else []
    return int(
        await db.fetchval(
            "INSERT INTO routing_rules (name, position, conditions, actions)"
            " VALUES ($1, (SELECT coalesce(max(position), 0) + 1 FROM routing_rules),"
            " $2, $3) RETURNING id",
            name,
            {"match": "all", "conditions": conditions},
            actions,
        )
    )


async def opened(desk: Desk, text: str = "hello", *, tier: int = 4) -> int:
    """A new customer writes at the desk's time, and the route job runs at once."""
    conversation_id, _ = await customer_writes(desk.conns, text, tier=tier)
    await routing.route_conversation(desk.conns, conversation_id)
    return conversation_id


async def customer_again(desk: Desk, conversation_id: int, text: str = "and another thing") -> None:
    """The visitor writes again in their conversation (as POST /v1/web/.../messages does)."""
    await ingest(
        desk.conns,
        InboundMessage(
            channel=Channel.WEB,
            external_id=f"{conversation_id}:{uuid.uuid4().hex}",
            text=text,
            identities=(),
            conversation_id=conversation_id,
        ),
    )


async def reply_sent(desk: Desk, conversation_id: int, text: str = "We are on it") -> int:
    """An agent's reply, queued by the inbox and sent by the send job's delivery."""
    message = await inbox.reply(desk.conns, desk.supervisor, conversation_id, text, None)
    outcome = await delivery.deliver(desk.conns, message["id"], build_senders(desk.conns))
    assert outcome is delivery.Outcome.SENT
    return int(message["id"])


class RefusingProvider:
    """A provider that refuses every message for good (a 5xx: a bad address, say)."""

    async def send(self, message: OutboundMessage) -> None:
        raise DeliveryFailed("refused", "550 no such user", permanent=True)


async def status(
    desk: Desk, conversation_id: int, to: ConversationStatus, until: datetime | None = None
) -> None:
    await inbox.change_status(desk.conns, desk.supervisor, conversation_id, to, until)


async def clocks(db: asyncpg.Pool, conversation_id: int) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM conversation_sla WHERE conversation_id = $1", conversation_id
    )
    assert row is not None, f"conversation {conversation_id} has no SLA clocks"
    return row


async def sla_due_at(db: asyncpg.Pool, conversation_id: int) -> datetime | None:
    value: datetime | None = await db.fetchval(
        "SELECT sla_due_at FROM conversations WHERE id = $1", conversation_id
    )
    return value


async def fired(db: asyncpg.Pool, conversation_id: int) -> list[tuple[str, str, datetime]]:
    rows = await db.fetch(
        "SELECT kind, stage, due_at FROM sla_events WHERE conversation_id = $1"
        " ORDER BY due_at, stage DESC",
        conversation_id,
    )
    return [(r["kind"], r["stage"], r["due_at"]) for r in rows]


async def sla_jobs(redis: ArqRedis, conversation_id: int) -> dict[str, int]:
    """The conversation's SLA timer jobs waiting in arq's queue, with their scores."""
    prefix = f"sla:{conversation_id}:"
    entries = await redis.zrange(default_queue_name, 0, -1, withscores=True)
    found = {job.decode(): int(score) for job, score in entries}
    return {job: score for job, score in found.items() if job.startswith(prefix)}


def utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


# --- which policy ----------------------------------------------------------------------------


async def test_a_rules_policy_wins_over_the_tiers_default_and_no_policy_means_no_clocks(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    desk = await make_desk(conns, sh(3, 2, 10))  # Monday 10:00
    office = await calendar(conns)
    tiers_policy = await policy(
        conns,
        "Bronze",
        first_response_minutes=120,
        resolution_minutes=960,
        business_hours_id=office,
        warning_percent=80,
    )
    refunds = await policy(
        conns,
        "Refunds",
        first_response_minutes=30,
        resolution_minutes=480,
        business_hours_id=office,
        warning_percent=80,
    )
    await tier_default(db, 4, tiers_policy)
    await rule(
        db, "Refunds fast", [{"type": "sla_policy", "sla_policy_id": refunds}], keyword="refund"
    )

    refund_id, _ = await customer_writes(desk.conns, "I want a refund", tier=4)
    plain_id, _ = await customer_writes(desk.conns, "hello there", tier=4)
    no_policy_id, _ = await customer_writes(desk.conns, "hello there", tier=3)
    desk.at(sh(3, 2, 10, 5))  # the route job runs five minutes later
    for conversation_id in (refund_id, plain_id, no_policy_id):
        await routing.route_conversation(desk.conns, conversation_id)

    # the rule's policy, counted from the customer's message, not from the routing
    refund = await clocks(db, refund_id)
    assert refund["policy_id"] == refunds
    assert refund["started_at"] == sh(3, 2, 10)
    assert refund["first_response_due_at"] == sh(3, 2, 10, 30)
    assert refund["first_response_warning_at"] == sh(3, 2, 10, 24)  # 80 % of 30 minutes
    assert refund["resolution_due_at"] == sh(3, 2, 18)  # 8 business hours: Monday 10-18
    assert refund["resolution_warning_at"] == sh(3, 2, 16, 24)  # 6 h 24 min
    assert refund["next_timer_at"] == sh(3, 2, 10, 24)
    assert refund["state"] == "ok"
    assert await sla_due_at(db, refund_id) == sh(3, 2, 10, 30)
    assert (
        await db.fetchval("SELECT sla_policy_id FROM conversations WHERE id = $1", refund_id)
        == refunds
    )

    # the tier's default where no rule names one
    plain = await clocks(db, plain_id)
    assert plain["policy_id"] == tiers_policy
    assert plain["first_response_due_at"] == sh(3, 2, 12)
    assert plain["first_response_warning_at"] == sh(3, 2, 11, 36)  # 96 minutes
    assert plain["resolution_due_at"] == sh(3, 3, 17)  # Monday 10-18, Tuesday 9-17
    assert await sla_due_at(db, plain_id) == sh(3, 2, 12)

    # a tier without a default and no rule: no clocks, no due time, no timer
    assert (
        await db.fetchval(
            "SELECT count(*) FROM conversation_sla WHERE conversation_id = $1", no_policy_id
        )
        == 0
    )
    assert await sla_due_at(db, no_policy_id) is None
    assert await sla_jobs(redis, no_policy_id) == {}
    # and the customer writing again starts nothing either
    desk.at(sh(3, 2, 11))
    await customer_again(desk, no_policy_id)
    assert await db.fetchval("SELECT count(*) FROM conversation_sla") == 2


async def test_a_later_routing_keeps_the_clocks_and_the_policy_they_started_under(
    conns: Conns, db: asyncpg.Pool
) -> None:
    desk = await make_desk(conns, sh(3, 2, 10))
    office = await calendar(conns)
    first = await policy(conns, "First", first_response_minutes=60, business_hours_id=office)
    later = await policy(conns, "Later", first_response_minutes=10, business_hours_id=office)
    await tier_default(db, 4, first)
    conversation_id = await opened(desk)
    await status(desk, conversation_id, ConversationStatus.RESOLVED)
    await tier_default(db, 4, later)
    desk.at(sh(3, 2, 11))
    await customer_again(desk, conversation_id)  # reopens: routed again
    await routing.route_conversation(desk.conns, conversation_id)
    row = await clocks(db, conversation_id)
    assert row["policy_id"] == first
    assert row["started_at"] == sh(3, 2, 10)
    assert row["first_response_due_at"] == sh(3, 2, 11)


# --- first response --------------------------------------------------------------------------


async def test_only_an_agent_reply_actually_sent_meets_the_first_response(
    conns: Conns, db: asyncpg.Pool
) -> None:
    desk = await make_desk(conns, sh(3, 2, 10))
    office = await calendar(conns)
    standard = await policy(
        conns,
        "Standard",
        first_response_minutes=60,
        resolution_minutes=480,
        business_hours_id=office,
    )
    await rule(
        db,
        "Everyone",
        [
            {"type": "sla_policy", "sla_policy_id": standard},
            {"type": "auto_reply", "text": "Thanks for writing, we will answer soon."},
        ],
    )
    conversation_id = await opened(desk)
    before = await clocks(db, conversation_id)
    assert before["first_response_due_at"] == sh(3, 2, 11)

    # the rule's auto-reply goes out: not an answer
    auto_reply_id = await db.fetchval(
        "SELECT id FROM messages WHERE conversation_id = $1 AND is_automatic", conversation_id
    )
    desk.at(sh(3, 2, 10, 1))
    outcome = await delivery.deliver(desk.conns, auto_reply_id, build_senders(desk.conns))
    assert outcome is delivery.Outcome.SENT
    # an internal note: not an answer
    desk.at(sh(3, 2, 10, 2))
    await inbox.add_note(desk.conns, desk.supervisor, conversation_id, "checking the order")
    # a reply the provider refuses: not an answer
    desk.at(sh(3, 2, 10, 3))
    refused = await inbox.reply(desk.conns, desk.supervisor, conversation_id, "Hi!", None)
    outcome = await delivery.deliver(desk.conns, refused["id"], {Channel.WEB: RefusingProvider()})
    assert outcome is delivery.Outcome.FAILED

    row = await clocks(db, conversation_id)
    assert row["first_responded_at"] is None and row["first_response_time"] is None
    assert row["first_response_due_at"] == sh(3, 2, 11)
    assert row["next_timer_at"] == sh(3, 2, 11)
    assert (
        await db.fetchval(
            "SELECT first_responded_at FROM conversations WHERE id = $1", conversation_id
        )
        is None
    )
    assert await sla_due_at(db, conversation_id) == sh(3, 2, 11)

    # the first reply that reaches the customer meets it
    desk.at(sh(3, 2, 10, 20))
    await reply_sent(desk, conversation_id)
    row = await clocks(db, conversation_id)
    assert row["first_responded_at"] == sh(3, 2, 10, 20)
    assert row["first_response_time"] == 20 * MINUTE
    assert row["first_response_due_at"] == sh(3, 2, 11)  # kept for reports
    assert row["awaiting_customer"] is True
    assert row["next_timer_at"] == sh(3, 2, 18)  # only resolution runs now
    assert await sla_due_at(db, conversation_id) == sh(3, 2, 18)
    assert await db.fetchval(
        "SELECT first_responded_at FROM conversations WHERE id = $1", conversation_id
    ) == sh(3, 2, 10, 20)

    # the first-response timer, when it comes, finds its clock met and does nothing
    desk.at(sh(3, 2, 11))
    assert await sla.fire(desk.conns, conversation_id) == []
    assert await fired(db, conversation_id) == []

    # a second reply changes nothing about the first response
    desk.at(sh(3, 2, 11, 30))
    await reply_sent(desk, conversation_id)
    assert (await clocks(db, conversation_id))["first_responded_at"] == sh(3, 2, 10, 20)


async def test_the_conversation_shows_its_sla_to_the_agent(
    conns: Conns, db: asyncpg.Pool, client: Client
) -> None:
    desk = await make_desk(conns, sh(3, 2, 17, 30))  # Monday 17:30
    office = await calendar(conns)
    gold = await policy(
        conns, "Gold", first_response_minutes=60, resolution_minutes=480, business_hours_id=office
    )
    await tier_default(db, 4, gold)
    conversation_id = await opened(desk)
    _, token = await make_agent(db, role=Role.SUPERVISOR, online=False)
    answer_status, detail = await call(
        client, "GET", f"/v1/conversations/{conversation_id}", bearer(token)
    )
    assert answer_status == 200, detail
    shown = detail["sla"]
    assert shown["policy"] == {"id": gold, "name": "Gold"}
    assert shown["state"] == "ok"
    # half an hour on Monday, half an hour on Tuesday
    assert datetime.fromisoformat(shown["first_response"]["due_at"]) == sh(3, 3, 9, 30)
    assert datetime.fromisoformat(shown["resolution"]["due_at"]) == sh(3, 3, 16, 30)
    assert shown["resolution"]["paused"] is False


# --- next response ---------------------------------------------------------------------------


async def test_next_response_cycles_start_at_the_customer_and_stop_at_the_answer(
    conns: Conns, db: asyncpg.Pool
) -> None:
    desk = await make_desk(conns, sh(3, 2, 10))  # Monday 10:00
    office = await calendar(conns)
    standard = await policy(
        conns,
        "Standard",
        first_response_minutes=60,
        next_response_minutes=120,
        resolution_minutes=2400,  # 40 business hours: due Friday 14:00
        business_hours_id=office,
        warning_percent=80,
    )
    await tier_default(db, 4, standard)
    conversation_id = await opened(desk)
    resolution_due = sh(3, 6, 14)
    assert (await clocks(db, conversation_id))["resolution_due_at"] == resolution_due

    desk.at(sh(3, 2, 10, 30))
    await reply_sent(desk, conversation_id)
    row = await clocks(db, conversation_id)
    assert row["next_response_due_at"] is None  # nothing asked since the answer

    # the customer writes: 2 business hours from Monday 17:00 is Tuesday 10:00
    desk.at(sh(3, 2, 17))
    await customer_again(desk, conversation_id)
    row = await clocks(db, conversation_id)
    assert row["next_response_started_at"] == sh(3, 2, 17)
    assert row["next_response_due_at"] == sh(3, 3, 10)
    assert row["next_response_warning_at"] == sh(3, 3, 9, 36)  # 96 business minutes
    assert row["next_timer_at"] == sh(3, 3, 9, 36)
    assert await sla_due_at(db, conversation_id) == sh(3, 3, 10)

    # writing again before the answer does not restart it
    desk.at(sh(3, 3, 9, 15))
    await customer_again(desk, conversation_id, "hello?")
    row = await clocks(db, conversation_id)
    assert row["next_response_started_at"] == sh(3, 2, 17)
    assert row["next_response_due_at"] == sh(3, 3, 10)

    desk.at(sh(3, 3, 9, 36))
    await sla.fire(desk.conns, conversation_id)
    assert (await clocks(db, conversation_id))["state"] == "at_risk"

    # the answer stops it
    desk.at(sh(3, 3, 9, 40))
    await reply_sent(desk, conversation_id)
    row = await clocks(db, conversation_id)
    assert (row["next_response_started_at"], row["next_response_due_at"]) == (None, None)
    assert row["state"] == "ok"
    assert await sla_due_at(db, conversation_id) == resolution_due
    desk.at(sh(3, 3, 10))
    assert await sla.fire(desk.conns, conversation_id) == []  # the old timer is stale

    # a new cycle: a new due instant, a new timer, new events
    desk.at(sh(3, 3, 14))
    await customer_again(desk, conversation_id, "one more question")
    row = await clocks(db, conversation_id)
    assert row["next_response_due_at"] == sh(3, 3, 16)
    desk.at(sh(3, 3, 16))
    await sla.fire(desk.conns, conversation_id)  # warning and breach, both due by now
    assert (await clocks(db, conversation_id))["state"] == "breached"
    desk.at(sh(3, 3, 16, 30))
    await reply_sent(desk, conversation_id)

    # and another: Wednesday 09:00 + 2 h
    desk.at(sh(3, 4, 9))
    await customer_again(desk, conversation_id, "still there?")
    assert (await clocks(db, conversation_id))["next_response_due_at"] == sh(3, 4, 11)
    desk.at(sh(3, 4, 11))
    await sla.fire(desk.conns, conversation_id)

    assert await fired(db, conversation_id) == [
        ("next_response", "warning", utc(sh(3, 3, 9, 36))),
        ("next_response", "warning", utc(sh(3, 3, 15, 36))),
        ("next_response", "breach", utc(sh(3, 3, 16))),
        ("next_response", "warning", utc(sh(3, 4, 10, 36))),
        ("next_response", "breach", utc(sh(3, 4, 11))),
    ]


# --- resolution ------------------------------------------------------------------------------


async def test_resolution_pauses_and_resumes_in_business_time_across_chinas_national_day(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """24 business hours, Mon-Fri 09:00-18:00 Shanghai with China's calendar: Friday
    2026-09-25 is Mid-Autumn Festival, 10-01 to 10-07 are National Day, Saturday 10-10 is
    worked (Monday's hours)."""
    desk = await make_desk(conns, sh(9, 24, 17))  # Thursday 17:00
    china = await calendar(conns, "Shanghai office, China", country="CN")
    resolve_in_a_day = await policy(
        conns, "Three days", resolution_minutes=1440, business_hours_id=china
    )
    await tier_default(db, 4, resolve_in_a_day)
    conversation_id = await opened(desk)
    row = await clocks(db, conversation_id)
    # Thu 1 h, Fri a holiday, the weekend, Mon 9 h, Tue 9 h, Wed 09:00-14:00
    assert row["resolution_due_at"] == sh(9, 30, 14)
    assert await sla_due_at(db, conversation_id) == sh(9, 30, 14)

    # pending on the customer from Monday noon: 1 h + 3 h counted, nothing due while it waits
    desk.at(sh(9, 28, 12))
    await status(desk, conversation_id, ConversationStatus.PENDING)
    row = await clocks(db, conversation_id)
    assert row["resolution_spent"] == 4 * HOUR
    assert (row["resolution_due_at"], row["resolution_running_since"]) == (None, None)
    assert row["next_timer_at"] is None
    assert await sla_due_at(db, conversation_id) is None
    desk.at(sh(9, 30, 14))
    assert await sla.fire(desk.conns, conversation_id) == []  # paused: the old timer is stale

    # the customer answers on Wednesday 17:00: 20 h to go, Wed 1 h, National Day, Thu 10-08
    # 9 h, Fri 10-09 9 h, and the worked Saturday 10-10 09:00-10:00
    desk.at(sh(9, 30, 17))
    await customer_again(desk, conversation_id, "here is the photo")
    row = await clocks(db, conversation_id)
    assert row["resolution_running_since"] == sh(9, 30, 17)
    assert row["resolution_due_at"] == sh(10, 10, 10)
    assert await sla_due_at(db, conversation_id) == sh(10, 10, 10)

    # snoozed on Thursday 10-08 at 10:00 until Friday noon: 4 + 1 + 1 = 6 h counted
    desk.at(sh(10, 8, 10))
    await status(desk, conversation_id, ConversationStatus.SNOOZED, sh(10, 9, 12))
    row = await clocks(db, conversation_id)
    assert row["resolution_spent"] == 6 * HOUR and row["resolution_due_at"] is None

    # the reconciler wakes it at Friday noon: 18 h to go, Fri 6 h, Sat 10-10 9 h, Mon 3 h
    desk.at(sh(10, 9, 12))
    report = await reconcile(desk.conns)
    assert report.woken == 1
    row = await clocks(db, conversation_id)
    assert row["resolution_running_since"] == sh(10, 9, 12)
    assert row["resolution_due_at"] == sh(10, 12, 12)
    assert row["next_timer_at"] == sh(10, 12, 12)
    assert (
        await db.fetchval("SELECT status FROM conversations WHERE id = $1", conversation_id)
        == "open"
    )

    # resolved on Monday 10:00: 6 + 6 + 9 + 1 = 22 h; every clock stops
    desk.at(sh(10, 12, 10))
    await status(desk, conversation_id, ConversationStatus.RESOLVED)
    row = await clocks(db, conversation_id)
    assert row["stopped_at"] == sh(10, 12, 10)
    assert row["resolution_spent"] == 22 * HOUR
    assert row["resolution_time"] == 22 * HOUR
    assert (row["resolution_due_at"], row["next_timer_at"]) == (None, None)
    assert await sla_due_at(db, conversation_id) is None

    # reopened by the agent on Tuesday 09:30: the last 2 h count on from there
    desk.at(sh(10, 13, 9, 30))
    await status(desk, conversation_id, ConversationStatus.OPEN)
    row = await clocks(db, conversation_id)
    assert row["stopped_at"] is None
    assert row["resolution_due_at"] == sh(10, 13, 11, 30)
    assert row["next_response_due_at"] is None  # an agent's reopen asks no answer
    assert await sla_due_at(db, conversation_id) == sh(10, 13, 11, 30)
    assert await fired(db, conversation_id) == []


async def test_business_time_in_berlin_across_the_end_of_summer_time(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """2026-10-25, the last Sunday of October: at 03:00 CEST Berlin goes back to 02:00 CET, so
    that Sunday lasts 25 hours."""
    desk = await make_desk(conns, datetime(2026, 10, 23, 17, tzinfo=BERLIN))  # Fri 17:00 CEST
    weekdays = await calendar(conns, "Berlin office", timezone="Europe/Berlin")
    always = await calendar(
        conns, "Berlin, always open", timezone="Europe/Berlin", weekly=ALL_DAY_EVERY_DAY
    )
    answer = await policy(
        conns, "Answer in 2 h", first_response_minutes=120, business_hours_id=weekdays
    )
    resolve = await policy(
        conns, "Resolve in 24 h", resolution_minutes=1440, business_hours_id=always
    )
    await tier_default(db, 4, answer)
    await tier_default(db, 3, resolve)

    # Friday 17:00-18:00 CEST, then Monday 09:00-10:00 CET: 09:00 UTC (not 08:00)
    friday = await opened(desk, tier=4)
    assert (await clocks(db, friday))["first_response_due_at"] == datetime(
        2026, 10, 26, 9, tzinfo=UTC
    )

    # always open, 24 h from Saturday 12:00 CEST (10:00 UTC) ...
    desk.at(datetime(2026, 10, 24, 12, tzinfo=BERLIN))
    weekend = await opened(desk, tier=3)
    assert (await clocks(db, weekend))["resolution_due_at"] == datetime(
        2026, 10, 25, 10, tzinfo=UTC
    )  # 11:00 CET: 24 real hours, not 24 on the wall clock
    # ... paused from 18:00 CEST (6 h counted), resumed at midnight before the change
    desk.at(datetime(2026, 10, 24, 18, tzinfo=BERLIN))
    await status(desk, weekend, ConversationStatus.PENDING)
    desk.at(datetime(2026, 10, 25, 0, tzinfo=BERLIN))  # 22:00 UTC on Saturday
    await customer_again(desk, weekend)
    row = await clocks(db, weekend)
    assert row["resolution_spent"] == 6 * HOUR
    # 18 h more: Sunday 16:00 UTC, 17:00 CET on the wall clock
    assert row["resolution_due_at"] == datetime(2026, 10, 25, 16, tzinfo=UTC)
    assert row["resolution_due_at"] == datetime(2026, 10, 25, 17, tzinfo=BERLIN)


async def test_resolving_stops_every_clock_and_a_customer_reopening_counts_on(
    conns: Conns, db: asyncpg.Pool
) -> None:
    desk = await make_desk(conns, sh(3, 2, 10))  # Monday 10:00
    office = await calendar(conns)
    standard = await policy(
        conns,
        "Standard",
        first_response_minutes=60,
        next_response_minutes=120,
        resolution_minutes=480,
        business_hours_id=office,
        warning_percent=50,
    )
    await tier_default(db, 4, standard)
    conversation_id = await opened(desk)
    desk.at(sh(3, 2, 10, 30))
    await reply_sent(desk, conversation_id)
    desk.at(sh(3, 2, 11))
    await customer_again(desk, conversation_id)
    assert (await clocks(db, conversation_id))["next_response_due_at"] == sh(3, 2, 13)

    desk.at(sh(3, 2, 12))
    await status(desk, conversation_id, ConversationStatus.RESOLVED)
    row = await clocks(db, conversation_id)
    assert row["stopped_at"] == sh(3, 2, 12)
    assert row["resolution_time"] == 2 * HOUR
    for column in (
        "next_response_due_at",
        "next_response_warning_at",
        "resolution_due_at",
        "resolution_warning_at",
        "next_timer_at",
    ):
        assert row[column] is None, column
    assert row["state"] == "ok"
    assert await sla_due_at(db, conversation_id) is None
    # the timers armed before (the next response at 12:00 and 13:00, resolution at 14:00 and
    # 18:00) find nothing when they come
    for instant in (sh(3, 2, 13), sh(3, 2, 18), sh(3, 9, 9)):
        desk.at(instant)
        assert await sla.fire(desk.conns, conversation_id) == []
    # only the warnings reached at the very instants of the reply (10:30) and of resolving
    # (12:00) fired: with each change, what is due by then is acted on first
    assert await fired(db, conversation_id) == [
        ("first_response", "warning", sh(3, 2, 10, 30)),
        ("next_response", "warning", sh(3, 2, 12)),
    ]

    # the customer writes on Tuesday 10:00: reopened, 6 h of resolution left, and their
    # message asks for an answer within 2 h
    desk.at(sh(3, 3, 10))
    await customer_again(desk, conversation_id, "it broke again")
    row = await clocks(db, conversation_id)
    assert row["stopped_at"] is None
    assert row["resolution_spent"] == 2 * HOUR
    assert row["resolution_due_at"] == sh(3, 3, 16)
    assert row["resolution_warning_at"] == sh(3, 3, 12)  # 4 h counted in all
    assert row["next_response_started_at"] == sh(3, 3, 10)
    assert row["next_response_due_at"] == sh(3, 3, 12)
    assert row["first_responded_at"] == sh(3, 2, 10, 30)
    assert row["next_timer_at"] == sh(3, 3, 11)  # the next response's warning
    assert await sla_due_at(db, conversation_id) == sh(3, 3, 12)


async def test_resolved_before_any_answer_the_first_response_never_comes_back(
    conns: Conns, db: asyncpg.Pool
) -> None:
    desk = await make_desk(conns, sh(3, 2, 10))
    office = await calendar(conns)
    standard = await policy(
        conns,
        "Standard",
        first_response_minutes=60,
        next_response_minutes=120,
        resolution_minutes=480,
        business_hours_id=office,
    )
    await tier_default(db, 4, standard)
    conversation_id = await opened(desk)
    desk.at(sh(3, 2, 10, 10))
    await status(desk, conversation_id, ConversationStatus.RESOLVED)
    row = await clocks(db, conversation_id)
    assert row["first_response_stopped_at"] == sh(3, 2, 10, 10)
    desk.at(sh(3, 2, 11))
    assert await sla.fire(desk.conns, conversation_id) == []
    # reopened by the customer: the answer now owed is a next response, not a first one
    desk.at(sh(3, 2, 15))
    await customer_again(desk, conversation_id)
    row = await clocks(db, conversation_id)
    assert row["first_responded_at"] is None
    assert row["next_response_due_at"] == sh(3, 2, 17)
    assert row["resolution_due_at"] == sh(3, 3, 13, 50)  # 7 h 50 min left: Mon 3 h, Tue 4 h 50
    assert await sla_due_at(db, conversation_id) == sh(3, 2, 17)


async def test_a_conversation_held_to_a_policy_keeps_it_from_being_deleted(
    conns: Conns, db: asyncpg.Pool, client: Client, admin: dict[str, str]
) -> None:
    """PRODUCT BUG (services/sla_policies.py _refuse_in_use): "a policy in use is not deleted
    while an open conversation is held to it" checks conversations.sla_policy_id, which each
    routing overwrites with its own decision, while the clocks keep running by the policy they
    started under (conversation_sla.policy_id). After a reroute under another policy, the
    policy the open conversation's clocks run by can be deleted: its clocks lose their policy
    (ON DELETE SET NULL) and never move or fire again."""
    desk = await make_desk(conns, sh(3, 2, 10))
    office = await calendar(conns)
    first = await policy(conns, "First", first_response_minutes=60, business_hours_id=office)
    later = await policy(conns, "Later", first_response_minutes=10, business_hours_id=office)
    await tier_default(db, 4, first)
    conversation_id = await opened(desk)
    await status(desk, conversation_id, ConversationStatus.RESOLVED)
    await tier_default(db, 4, later)
    desk.at(sh(3, 2, 11))
    await customer_again(desk, conversation_id)  # reopened and routed again, under "Later"
    await routing.route_conversation(desk.conns, conversation_id)
    assert (await clocks(db, conversation_id))["policy_id"] == first

    answer_status, answer = await call(client, "DELETE", f"/v1/admin/sla-policies/{first}", admin)
    assert answer_status == 409, answer
    assert answer["error"]["code"] == "sla_policy_in_use"
    assert (await clocks(db, conversation_id))["policy_id"] == first


def test_the_china_calendar_knows_the_days_these_tests_rely_on() -> None:
    """The premises of the National Day test, from the calendar itself."""
    china = validate(name="c", timezone="Asia/Shanghai", weekly=NINE_TO_SIX, country="CN")
    assert not is_open(china, sh(9, 25, 10))  # Mid-Autumn Festival, a Friday
    assert all(not is_open(china, sh(10, day, 10)) for day in range(1, 8))
    assert is_open(china, sh(10, 10, 10))  # Saturday, worked
    assert not is_open(china, sh(10, 11, 10))
    assert date(2026, 10, 10).weekday() == 5
