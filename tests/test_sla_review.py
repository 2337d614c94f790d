"""Review of the SLA engine (issue 6): failing tests that show bugs found in review.

Each test drives the product's own units of work (ingest, the route job's service, the inbox,
the send job's delivery, the reconciler) at a test clock, as tests/test_sla_engine.py does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from channels.registry import build_senders
from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.enums import Channel, ConversationStatus, Role
from contactcenter.domain.messages import InboundMessage
from contactcenter.services import agents, delivery, inbox, routing
from contactcenter.services import business_hours as business_hours_service
from contactcenter.services import sla_policies as sla_policies_service
from contactcenter.services.ingest import ingest
from contactcenter.services.reconcile import reconcile
from contactcenter.store import sla_reports
from contactcenter.store.sla_reports import SlaReportQuery
from tests.helpers import make_agent
from tests.routing_helpers import Clock, clocked, customer_writes

T = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
HOUR = timedelta(hours=1)
NINE_TO_SIX = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


async def _desk(conns: Conns) -> tuple[Conns, Clock, Agent]:
    _, token = await make_agent(conns.db, name="Supervisor", role=Role.SUPERVISOR, online=False)
    supervisor = await agents.authenticate(conns.db, token)
    assert supervisor is not None
    clock = Clock(T)
    return clocked(conns, clock), clock, supervisor


async def _calendar(conns: Conns, weekly: dict[str, Any]) -> int:
    row = await business_hours_service.create(
        conns,
        {"name": f"cal-{uuid.uuid4().hex[:8]}", "timezone": "Asia/Shanghai", "weekly": weekly},
    )
    return int(row["id"])


async def _tier_policy(conns: Conns, **values: Any) -> int:
    row = await sla_policies_service.create(conns, {"name": f"p-{uuid.uuid4().hex[:8]}", **values})
    await conns.db.execute("UPDATE tiers SET sla_policy_id = $1 WHERE rank = 4", row["id"])
    return int(row["id"])


async def _clocks(db: asyncpg.Pool, conversation_id: int) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM conversation_sla WHERE conversation_id = $1", conversation_id
    )
    assert row is not None
    return row


async def _customer_again(conns: Conns, conversation_id: int, text: str) -> None:
    await ingest(
        conns,
        InboundMessage(
            channel=Channel.WEB,
            external_id=f"{conversation_id}:{uuid.uuid4().hex}",
            text=text,
            identities=(),
            conversation_id=conversation_id,
        ),
    )


# --- a calendar with no open time -------------------------------------------------------------


async def test_a_policy_calendar_with_no_open_time_does_not_stop_routing(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """The admin API accepts a calendar with no weekly hours (e.g. one meant to open only on
    custom dates, or whose open dates have passed). sla.start then raises
    Invalid(no_business_hours) inside the route job's transaction: the conversation is never
    queued in any team, and the reconciler retries it forever."""
    desk, _, _ = await _desk(conns)
    closed = await _calendar(conns, {})
    await _tier_policy(conns, first_response_minutes=60, business_hours_id=closed)
    conversation_id, _ = await customer_writes(desk, "hello", tier=4)
    try:
        await routing.route_conversation(desk, conversation_id)
    except Exception as error:
        raise AssertionError(f"routing failed because of the SLA calendar: {error!r}") from error
    team_id = await db.fetchval("SELECT team_id FROM conversations WHERE id = $1", conversation_id)
    assert team_id is not None


async def test_a_customer_message_is_kept_when_the_calendar_loses_its_open_time(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """A calendar edited to have no open time (PUT /v1/admin/business-hours/{id} accepts
    weekly {}) makes every running conversation under it refuse the customer's next message:
    ingest's transaction raises Invalid(no_business_hours) while resuming the resolution clock,
    and the message is not stored."""
    desk, clock, supervisor = await _desk(conns)
    office = await _calendar(conns, NINE_TO_SIX)
    await _tier_policy(
        conns, first_response_minutes=60, resolution_minutes=480, business_hours_id=office
    )
    conversation_id, _ = await customer_writes(desk, "hello", tier=4)
    await routing.route_conversation(desk, conversation_id)
    clock.now = T + HOUR
    await inbox.change_status(desk, supervisor, conversation_id, ConversationStatus.PENDING, None)

    await business_hours_service.update(conns, office, {"weekly": {}})
    clock.now = T + 2 * HOUR
    try:
        await _customer_again(desk, conversation_id, "here is the photo you asked for")
    except Exception as error:
        raise AssertionError(f"the customer's message was refused: {error!r}") from error
    stored = await db.fetchval(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND body_text = $2",
        conversation_id,
        "here is the photo you asked for",
    )
    assert stored == 1


# --- reply and resolve ------------------------------------------------------------------------


async def test_a_reply_queued_before_resolving_and_sent_after_is_the_first_response(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """ "Reply and resolve": the agent's reply is queued, the agent resolves a moment later, and
    the send job delivers the reply after that. The customer was answered (and
    conversations.first_responded_at says so), but the SLA clocks record the first response as
    never given (first_response_stopped_at) and the report counts it resolved_unanswered."""
    desk, clock, supervisor = await _desk(conns)
    await _tier_policy(conns, first_response_minutes=60, clock="calendar")
    conversation_id, _ = await customer_writes(desk, "hello", tier=4)
    await routing.route_conversation(desk, conversation_id)

    clock.now = T + timedelta(minutes=5)
    message = await inbox.reply(desk, supervisor, conversation_id, "Done, refunded.", None)
    await inbox.change_status(desk, supervisor, conversation_id, ConversationStatus.RESOLVED, None)
    clock.now = T + timedelta(minutes=5, seconds=1)
    outcome = await delivery.deliver(desk, message["id"], build_senders(desk))
    assert outcome is delivery.Outcome.SENT

    legacy = await db.fetchval(
        "SELECT first_responded_at FROM conversations WHERE id = $1", conversation_id
    )
    assert legacy == T + timedelta(minutes=5, seconds=1)
    row = await _clocks(db, conversation_id)
    assert row["first_responded_at"] == legacy, (
        "the SLA says the first response was never given",
        row["first_response_stopped_at"],
    )
    report = await sla_reports.sla_report(
        db, SlaReportQuery(start=T - HOUR, end=T + HOUR), T + HOUR
    )
    assert report["overall"]["first_response"]["met"] == 1


# --- snooze woken late ------------------------------------------------------------------------


async def test_resolution_counts_from_the_end_of_the_snooze_not_from_when_the_reconciler_ran(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """The reconciler resumes the resolution clock at its own `now`, not at snoozed_until: with
    the workers down (or swamped) for hours, that time is silently not counted, though the
    conversation was no longer snoozed by its own terms."""
    desk, clock, supervisor = await _desk(conns)
    await _tier_policy(conns, resolution_minutes=600, clock="calendar")
    conversation_id, _ = await customer_writes(desk, "hello", tier=4)
    await routing.route_conversation(desk, conversation_id)

    clock.now = T + HOUR
    until = T + 2 * HOUR
    await inbox.change_status(desk, supervisor, conversation_id, ConversationStatus.SNOOZED, until)
    clock.now = T + 5 * HOUR  # the reconciler runs three hours after the snooze ended
    report = await reconcile(desk)
    assert report.woken == 1
    row = await _clocks(db, conversation_id)
    # 1 h counted before the snooze: 9 h to go from the snooze's end
    assert row["resolution_running_since"] == until
    assert row["resolution_due_at"] == until + 9 * HOUR
