"""SLA timers, escalation and notices (issue 6, items 4 and 5): the deferred arq job of each due
instant, what a firing does (an sla_events row, the state, the real-time event, the policy's
escalation, the supervisor's e-mail), firing twice, the sweeper after Redis lost its jobs, and
a breach that fires on time with a real worker on the real clock.

The clocks here use calendar-clock policies (every second counts), so a due instant is the
start plus the target. Test clocks are set a couple of hours before the real now: arq keeps a
deferred job only while its instant is less than a day old (see
test_a_timer_long_overdue_is_still_queued_as_a_job_that_runs), and a worker takes a job as soon
as its instant has passed by the real clock, then acts at the test clock it is given.

Redis: `redis.flushdb()` empties this suite's own database; FLUSHALL would also empty the other
databases of the shared server, and for this database it loses exactly the same keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.worker import Worker

from contactcenter.clock import utc_now
from contactcenter.conns import Conns
from contactcenter.domain.enums import ConversationStatus, Presence, Role
from contactcenter.services import agents, inbox, mailboxes, sla
from contactcenter.services.reconcile import reconcile
from contactcenter.settings import Settings
from contactcenter.store import mailboxes as mailboxes_store
from tests.helpers import bearer, eventually, make_agent, make_worker, stop_worker
from tests.mailservers import SmtpServer
from tests.routing_helpers import Clock, customer_writes, default_team, team
from tests.test_sla_engine import (
    Desk,
    arq_score,
    make_desk,
    micros,
    opened,
    policy,
    reply_sent,
    rule,
    sla_jobs,
    status,
    tier_default,
    timer_job_id,
)

Client = TestClient[Any, Any]
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
TICK = timedelta(microseconds=1)
BOSS = "boss@example.com"
SUPPORT = "support@example.com"


def a_while_ago() -> datetime:
    """A whole minute two hours before the real now (see the module's notes)."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)


def in_a_while() -> datetime:
    """A whole minute two hours after the real now: timers armed from here are still to come
    for arq, so their jobs keep their own instants as scores."""
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)


async def answer_in_an_hour(conns: Conns, **values: Any) -> int:
    """The tier-4 default: a first response within 60 minutes of calendar time."""
    policy_id = await policy(
        conns, "Answer in an hour", first_response_minutes=60, clock="calendar", **values
    )
    await tier_default(conns.db, 4, policy_id)
    return policy_id


async def events_of(db: asyncpg.Pool, conversation_id: int) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT * FROM sla_events WHERE conversation_id = $1 ORDER BY due_at, stage DESC",
            conversation_id,
        )
    )


async def conversation(db: asyncpg.Pool, conversation_id: int) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM conversations WHERE id = $1", conversation_id)
    assert row is not None
    return row


async def sla_row(db: asyncpg.Pool, conversation_id: int) -> asyncpg.Record:
    row = await db.fetchrow(
        "SELECT * FROM conversation_sla WHERE conversation_id = $1", conversation_id
    )
    assert row is not None
    return row


async def run_worker_at(settings: Settings, clock: Clock) -> int:
    """A real worker in burst mode whose jobs act at the test clock; jobs completed."""
    worker = make_worker(settings, clock=clock, burst=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker.jobs_complete


async def job_is_stored(redis: ArqRedis, job_id: str) -> bool:
    return bool(await redis.exists(job_key_prefix + job_id))


# --- the timer job ---------------------------------------------------------------------------


async def test_each_due_instant_has_its_job_in_arq_named_and_scored_by_that_instant(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    base = in_a_while()
    desk = await make_desk(conns, base + timedelta(microseconds=123_456))
    tight = await policy(
        conns,
        "Tight",
        first_response_minutes=60,
        resolution_minutes=120,
        clock="calendar",
        warning_percent=50,
    )
    await tier_default(db, 4, tight)
    conversation_id = await opened(desk)
    warning = base + 30 * MINUTE + timedelta(microseconds=123_456)
    breach = base + 60 * MINUTE + timedelta(microseconds=123_456)
    assert (await sla_row(db, conversation_id))["next_timer_at"] == warning

    job_id = f"sla:{conversation_id}:{micros(warning)}"
    assert job_id == timer_job_id(conversation_id, warning)
    assert job_id.endswith("123456")  # to the microsecond
    assert await sla_jobs(redis, conversation_id) == {job_id: arq_score(warning)}
    assert arq_score(warning) == micros(warning) // 1000 + 1  # ...123.456 ms: 124 ms
    assert await job_is_stored(redis, job_id)

    # the warning fired, the next instant (the breach, with the resolution's warning) is armed
    desk.at(warning)
    [fired] = await sla.fire(desk.conns, conversation_id)
    assert (fired.timer.kind, fired.timer.stage) == ("first_response", "warning")
    next_job = timer_job_id(conversation_id, breach)
    jobs = await sla_jobs(redis, conversation_id)
    assert jobs[next_job] == arq_score(breach)
    assert await job_is_stored(redis, next_job)
    # arming the same instant again is the same job
    await sla.arm(desk.conns, conversation_id, sla.Moved(next_timer_at=breach))
    assert await sla_jobs(redis, conversation_id) == jobs


async def test_a_timer_fires_at_its_due_microsecond_not_one_before(
    conns: Conns, db: asyncpg.Pool
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns)
    conversation_id = await opened(desk)
    due = base + 60 * MINUTE
    desk.at(due - TICK)
    assert await sla.fire(desk.conns, conversation_id) == []
    assert await events_of(db, conversation_id) == []
    assert (await sla_row(db, conversation_id))["state"] == "ok"
    # unanswered at the due instant: that instant is the breach
    desk.at(due)
    [fired] = await sla.fire(desk.conns, conversation_id)
    [event] = await events_of(db, conversation_id)
    assert (event["kind"], event["stage"], event["due_at"], event["fired_at"]) == (
        "first_response",
        "breach",
        due,
        due,
    )
    assert fired.event_id == event["id"]
    assert (await sla_row(db, conversation_id))["state"] == "breached"


async def test_a_stale_timer_does_nothing_when_its_job_runs(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis, run_jobs: Any
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns, escalation={"raise_priority_to": 9})
    conversation_id = await opened(desk)
    job_id = timer_job_id(conversation_id, base + 60 * MINUTE)
    assert job_id in await sla_jobs(redis, conversation_id)
    desk.at(base + 10 * MINUTE)
    await reply_sent(desk, conversation_id)  # answered in time

    # the job runs (by the real clock, long after its instant) and finds the clock met
    assert await run_jobs() >= 1
    assert await sla_jobs(redis, conversation_id) == {}
    assert await events_of(db, conversation_id) == []
    row = await conversation(db, conversation_id)
    assert row["priority"] == 0 and row["routing"].get("escalations") is None
    assert (await sla_row(db, conversation_id))["state"] == "ok"


async def test_two_firings_at_once_record_one_event_and_one_escalation(
    conns: Conns, db: asyncpg.Pool
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    escalations = await team(db, "Escalations")
    await answer_in_an_hour(conns, escalation={"raise_priority_to": 5, "team_id": escalations})
    conversation_id = await opened(desk)
    desk.at(base + 60 * MINUTE + SECOND)
    first, second = await asyncio.gather(
        sla.fire(desk.conns, conversation_id), sla.fire(desk.conns, conversation_id)
    )
    assert sorted([len(first), len(second)]) == [0, 1]
    [event] = await events_of(db, conversation_id)
    assert (event["kind"], event["stage"]) == ("first_response", "breach")
    row = await conversation(db, conversation_id)
    assert len(row["routing"]["escalations"]) == 1
    assert (row["priority"], row["team_id"]) == (5, escalations)


async def test_the_job_and_the_sweeper_firing_together_act_once(
    conns: Conns, db: asyncpg.Pool, settings: Settings
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    escalations = await team(db, "Escalations")
    await answer_in_an_hour(conns, escalation={"raise_priority_to": 5, "team_id": escalations})
    conversation_ids = [await opened(desk) for _ in range(5)]
    # well past SWEEP_LATE: the sweeper acts on them itself while the worker runs their jobs
    desk.at(base + 60 * MINUTE + sla.SWEEP_LATE + 5 * SECOND)
    await asyncio.gather(run_worker_at(settings, desk.clock), sla.sweep(desk.conns))
    for conversation_id in conversation_ids:
        [event] = await events_of(db, conversation_id)
        assert (event["kind"], event["stage"]) == ("first_response", "breach")
        row = await conversation(db, conversation_id)
        assert len(row["routing"]["escalations"]) == 1
        assert (row["priority"], row["team_id"]) == (5, escalations)


# --- warning, breach, state ------------------------------------------------------------------


async def test_a_warning_then_a_breach_move_the_state_and_the_queue_key(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    standard = await policy(
        conns,
        "Standard",
        first_response_minutes=60,
        resolution_minutes=240,
        clock="calendar",
        warning_percent=50,
    )
    await tier_default(db, 4, standard)
    conversation_id = await opened(desk)
    at = {minutes: base + minutes * MINUTE for minutes in (30, 60, 70, 120, 240)}

    async def state() -> tuple[str, datetime | None, datetime | None]:
        clocks = await sla_row(db, conversation_id)
        return (
            clocks["state"],
            clocks["next_timer_at"],
            (await conversation(db, conversation_id))["sla_due_at"],
        )

    assert await state() == ("ok", at[30], at[60])
    desk.at(at[30])
    await sla.fire(desk.conns, conversation_id)
    assert await state() == ("at_risk", at[60], at[60])
    assert timer_job_id(conversation_id, at[60]) in await sla_jobs(redis, conversation_id)
    desk.at(at[60])
    await sla.fire(desk.conns, conversation_id)
    # still unanswered: the breached first response is the queue's key
    assert await state() == ("breached", at[120], at[60])
    # answered late: what still runs is the resolution
    desk.at(at[70])
    await reply_sent(desk, conversation_id)
    assert await state() == ("ok", at[120], at[240])
    desk.at(at[120])
    await sla.fire(desk.conns, conversation_id)
    assert await state() == ("at_risk", at[240], at[240])
    desk.at(at[240])
    await sla.fire(desk.conns, conversation_id)
    assert await state() == ("breached", None, at[240])

    fired = [
        (e["kind"], e["stage"], e["due_at"], e["fired_at"])
        for e in await events_of(db, conversation_id)
    ]
    assert fired == [
        ("first_response", "warning", at[30], at[30]),
        ("first_response", "breach", at[60], at[60]),
        ("resolution", "warning", at[120], at[120]),
        ("resolution", "breach", at[240], at[240]),
    ]
    # the inbox finds it among the breached, not among those at risk
    for wanted, found in ((("breached",), [conversation_id]), (("at_risk",), [])):
        items, _ = await inbox.list_inbox(
            desk.conns,
            desk.supervisor,
            view="all",
            statuses=("open",),
            channel=None,
            limit=25,
            after=None,
            sla_states=wanted,
        )
        assert [item["id"] for item in items] == found


# --- escalation ------------------------------------------------------------------------------


async def routed_to_an_agent(desk: Desk, db: asyncpg.Pool) -> tuple[int, int]:
    """An online agent of the default team, and a conversation routed (and given) to them."""
    agent_id, _ = await make_agent(db, name="Ann")
    conversation_id = await opened(desk)
    assert (await conversation(db, conversation_id))["assignee_id"] == agent_id
    return agent_id, conversation_id


async def test_a_breach_moves_the_conversation_to_the_escalation_team_and_a_member_takes_it(
    conns: Conns, db: asyncpg.Pool
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    general = await default_team(db)
    escalations = await team(db, "Escalations")
    senior_id, _ = await make_agent(db, name="Senior", team="Escalations")
    policy_id = await answer_in_an_hour(
        conns, escalation={"raise_priority_to": 5, "team_id": escalations}
    )
    ann, conversation_id = await routed_to_an_agent(desk, db)
    due = base + 60 * MINUTE

    desk.at(due)
    [fired] = await sla.fire(desk.conns, conversation_id)
    done = {
        "at": due.isoformat(),
        "kind": "first_response",
        "policy_id": policy_id,
        "priority": [0, 5],
        "team": [general, escalations],
        "unassigned": ann,  # Ann is not in the escalation team
    }
    assert fired.escalation == done
    [event] = await events_of(db, conversation_id)
    assert event["escalation"] == done
    # as it was when it fired
    assert (event["team_id"], event["assignee_id"], event["tier"], event["channel"]) == (
        general,
        ann,
        4,
        "web",
    )
    row = await conversation(db, conversation_id)
    assert row["routing"]["escalations"] == [done]
    assert (row["priority"], row["team_id"], row["team_since"]) == (5, escalations, due)
    # the escalation team is filled at once: its online member with room has it
    assert row["assignee_id"] == senior_id
    assert row["routing"]["assignment"]["agent_id"] == senior_id


async def test_an_assignee_who_is_in_the_escalation_team_keeps_the_conversation(
    conns: Conns, db: asyncpg.Pool
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    general = await default_team(db)
    escalations = await team(db, "Escalations")
    await answer_in_an_hour(conns, escalation={"team_id": escalations})
    ann, conversation_id = await routed_to_an_agent(desk, db)
    await db.execute(
        "INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2)", escalations, ann
    )
    desk.at(base + 60 * MINUTE)
    [fired] = await sla.fire(desk.conns, conversation_id)
    assert fired.escalation["team"] == [general, escalations]
    assert "unassigned" not in fired.escalation and "priority" not in fired.escalation
    row = await conversation(db, conversation_id)
    assert (row["team_id"], row["assignee_id"]) == (escalations, ann)


async def test_the_priority_is_raised_never_lowered(conns: Conns, db: asyncpg.Pool) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    policy_id = await answer_in_an_hour(conns, escalation={"raise_priority_to": 5})
    await rule(db, "VIP", [{"type": "priority", "value": 8}], keyword="vip")
    urgent = await opened(desk, "vip here")
    ordinary = await opened(desk, "hello")
    assert (await conversation(db, urgent))["priority"] == 8
    desk.at(base + 60 * MINUTE)
    for conversation_id in (urgent, ordinary):
        await sla.fire(desk.conns, conversation_id)

    # already above: it keeps 8, and nothing was done
    [kept] = await events_of(db, urgent)
    assert kept["stage"] == "breach" and kept["escalation"] == {}
    row = await conversation(db, urgent)
    assert row["priority"] == 8 and row["routing"].get("escalations") is None
    # below: raised to 5
    [raised] = await events_of(db, ordinary)
    assert raised["escalation"]["priority"] == [0, 5]
    assert raised["escalation"]["policy_id"] == policy_id
    assert (await conversation(db, ordinary))["priority"] == 5


async def test_with_nobody_free_in_the_escalation_team_it_waits_there_until_someone_is(
    conns: Conns, db: asyncpg.Pool, settings: Settings
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    escalations = await team(db, "Escalations")
    senior_id, senior_token = await make_agent(db, name="Senior", team="Escalations", online=False)
    await answer_in_an_hour(conns, escalation={"team_id": escalations})
    ann, conversation_id = await routed_to_an_agent(desk, db)
    due = base + 60 * MINUTE
    desk.at(due)
    [fired] = await sla.fire(desk.conns, conversation_id)
    assert fired.escalation["unassigned"] == ann
    row = await conversation(db, conversation_id)
    assert (row["team_id"], row["assignee_id"], row["status"]) == (escalations, None, "open")
    assert row["waiting_since"] == due  # in the escalation team's queue

    # the senior agent comes online and takes it
    desk.at(due + MINUTE)
    senior = await agents.authenticate(db, senior_token)
    assert senior is not None
    await agents.set_presence(desk.conns, senior, Presence.ONLINE)
    await run_worker_at(settings, desk.clock)
    assert (await conversation(db, conversation_id))["assignee_id"] == senior_id


# --- the supervisor's e-mail -----------------------------------------------------------------


async def sending_mailbox(conns: Conns, smtp: SmtpServer) -> None:
    values = {
        "name": "support",
        "address": SUPPORT,
        "display_name": "Example Support",
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "smtp_user": smtp.user,
        "smtp_password": smtp.password,
    }
    await mailboxes_store.insert(conns.db, mailboxes.seal_secrets(conns.settings.secret, values))


async def breached_with_notice(
    conns: Conns, db: asyncpg.Pool, smtp: SmtpServer
) -> tuple[Desk, int, datetime]:
    """A conversation whose first response breaches with a notice to the boss: (desk at the
    breach plus a second, conversation, due instant)."""
    await sending_mailbox(conns, smtp)
    base = a_while_ago()
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns, escalation={"notify_email": "Boss@Example.COM"})
    conversation_id = await opened(desk, "my parcel is late")
    due = base + 60 * MINUTE
    desk.at(due + SECOND)
    return desk, conversation_id, due


async def test_a_breach_mails_the_supervisor_once_through_the_worker(
    conns: Conns, db: asyncpg.Pool, settings: Settings, smtp_server: SmtpServer
) -> None:
    desk, conversation_id, due = await breached_with_notice(conns, db, smtp_server)
    # the worker runs the timer job, which fires the breach and queues its notice
    await run_worker_at(settings, desk.clock)
    [event] = await events_of(db, conversation_id)
    assert (event["kind"], event["stage"], event["notify_email"]) == (
        "first_response",
        "breach",
        BOSS,
    )
    [mail] = await smtp_server.wait_for(1)
    assert mail.rcpt_tos == (BOSS,)
    message = mail.message
    assert message["To"] == BOSS
    assert SUPPORT in message["From"]
    assert message["Subject"] == (
        f"SLA breached: first response overdue on conversation {conversation_id}"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert f"Due at:    {due.isoformat()}" in body
    assert "Channel:   web" in body
    row = await db.fetchrow("SELECT * FROM sla_events WHERE id = $1", event["id"])
    assert (row["notify_attempts"], row["notify_error"]) == (1, None)
    assert row["notified_at"] is not None

    # the reconciler and the job again change nothing: one mail
    desk.at(desk.clock.now + timedelta(minutes=5))
    await reconcile(desk.conns)
    await run_worker_at(settings, desk.clock)
    assert len(smtp_server.messages) == 1
    assert len(await events_of(db, conversation_id)) == 1


async def test_a_notice_refused_for_now_is_sent_again(
    conns: Conns, db: asyncpg.Pool, settings: Settings, smtp_server: SmtpServer
) -> None:
    desk, conversation_id, _ = await breached_with_notice(conns, db, smtp_server)
    smtp_server.fail_next(1, code=451, message="4.7.1 Greylisted, try again")
    await run_worker_at(settings, desk.clock)  # the retry comes a second later
    assert len(smtp_server.rejections) == 1
    [mail] = await smtp_server.wait_for(1)
    assert mail.rcpt_tos == (BOSS,)
    [event] = await events_of(db, conversation_id)
    assert (event["notify_attempts"], event["notify_error"]) == (2, None)
    assert event["notified_at"] is not None


async def test_a_notice_refused_for_good_is_marked_failed_with_the_servers_words(
    conns: Conns, db: asyncpg.Pool, settings: Settings, smtp_server: SmtpServer
) -> None:
    desk, conversation_id, _ = await breached_with_notice(conns, db, smtp_server)
    smtp_server.fail_next(1, code=550, message="5.1.1 No such mailbox")
    await run_worker_at(settings, desk.clock)
    [event] = await events_of(db, conversation_id)
    assert event["notified_at"] is None and event["notify_attempts"] == 1
    assert event["notify_error"].startswith("smtp_550")
    assert "5.1.1 No such mailbox" in event["notify_error"]
    assert smtp_server.messages == []
    # the reconciler does not try a failed notice again
    desk.at(desk.clock.now + timedelta(minutes=5))
    await reconcile(desk.conns)
    await run_worker_at(settings, desk.clock)
    assert smtp_server.messages == []


# --- real time -------------------------------------------------------------------------------


async def listen(client: Client, token: str) -> Any:
    socket = await client.ws_connect("/v1/events", headers=bearer(token))
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    return socket


async def next_event(socket: Any, kind: str, conversation_id: int) -> dict[str, Any]:
    """The next event of `kind` about the conversation (others pass by); fails after 5 s."""
    try:
        async with asyncio.timeout(5):
            while True:
                event: dict[str, Any] = await socket.receive_json()
                if event["type"] == kind and event["conversation_id"] == conversation_id:
                    return event
    except TimeoutError:
        raise AssertionError(f"no {kind} about conversation {conversation_id} in 5 s") from None


async def test_warnings_and_breaches_reach_the_assignee_and_the_supervisors_live(
    conns: Conns, db: asyncpg.Pool, client: Client
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns, warning_percent=50, escalation={"raise_priority_to": 5})
    ann_id, ann_token = await make_agent(db, name="Ann")
    _, boss_token = await make_agent(db, name="Boss", role=Role.SUPERVISOR, online=False)
    conversation_id = await opened(desk)
    assert (await conversation(db, conversation_id))["assignee_id"] == ann_id
    ann = await listen(client, ann_token)
    boss = await listen(client, boss_token)

    desk.at(base + 30 * MINUTE)
    [warning] = await sla.fire(desk.conns, conversation_id)
    desk.at(base + 60 * MINUTE)
    [breach] = await sla.fire(desk.conns, conversation_id)
    for socket in (ann, boss):
        heard = await next_event(socket, "sla.warning", conversation_id)
        assert heard["assignee_id"] == ann_id
        assert heard["data"]["event_id"] == warning.event_id
        assert heard["data"]["kind"] == "first_response"
        assert heard["data"]["due_at"] == (base + 30 * MINUTE).isoformat()
        heard = await next_event(socket, "sla.breached", conversation_id)
        assert heard["data"]["event_id"] == breach.event_id
        assert heard["data"]["due_at"] == (base + 60 * MINUTE).isoformat()
        assert heard["data"]["escalation"]["priority"] == [0, 5]
        await socket.close()


async def test_the_assignee_an_escalation_takes_the_conversation_from_hears_of_the_breach(
    conns: Conns, db: asyncpg.Pool, client: Client
) -> None:
    """PRODUCT BUG (services/sla.py _announce): the issue sends a breach's real-time event to
    the assignee and the supervisors; the event is published with the conversation as it is
    after the escalation (the escalation team, no assignee), so the agent it was assigned to
    when it breached, who is not in that team, never hears of it (nor that it was taken)."""
    base = a_while_ago()
    desk = await make_desk(conns, base)
    escalations = await team(db, "Escalations")
    await answer_in_an_hour(conns, escalation={"team_id": escalations})
    ann_id, ann_token = await make_agent(db, name="Ann")
    conversation_id = await opened(desk)
    assert (await conversation(db, conversation_id))["assignee_id"] == ann_id
    ann = await listen(client, ann_token)
    desk.at(base + 60 * MINUTE)
    [breach] = await sla.fire(desk.conns, conversation_id)
    assert breach.escalation["unassigned"] == ann_id
    heard = await next_event(ann, "sla.breached", conversation_id)
    assert heard["data"]["event_id"] == breach.event_id
    await ann.close()


# --- the sweeper -----------------------------------------------------------------------------


async def test_after_redis_lost_its_jobs_the_sweeper_arms_every_pending_timer_again(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    base = in_a_while()
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns, warning_percent=50)
    waiting = []
    for minute in range(3):
        desk.at(base + minute * MINUTE)
        waiting.append(await opened(desk))
    resolved = await opened(desk)
    await status(desk, resolved, ConversationStatus.RESOLVED)
    expected = {
        timer_job_id(c, base + (i * MINUTE) + 30 * MINUTE): arq_score(
            base + i * MINUTE + 30 * MINUTE
        )
        for i, c in enumerate(waiting)
    }
    for conversation_id in waiting:
        assert (await sla_row(db, conversation_id))["next_timer_at"] is not None

    await redis.flushdb()  # this suite's Redis database: every job and marker gone
    assert all([await sla_jobs(redis, c) == {} for c in waiting])

    desk.at(base + 10 * MINUTE)  # before any of them is due
    report = await sla.sweep(desk.conns)
    assert (report.rearmed, report.fired) == (3, 0)
    armed: dict[str, int] = {}
    for conversation_id in (*waiting, resolved):
        armed.update(await sla_jobs(redis, conversation_id))
    assert armed == expected
    for job_id in expected:
        assert await job_is_stored(redis, job_id)
    # armed once: the next pass has nothing to arm
    assert (await sla.sweep(desk.conns)).rearmed == 0


async def test_a_timer_overdue_by_more_than_sweep_late_is_acted_on_by_the_sweep_itself(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    base = a_while_ago()
    desk = await make_desk(conns, base)
    escalations = await team(db, "Escalations")
    await answer_in_an_hour(conns, escalation={"team_id": escalations})
    conversation_id = await opened(desk)
    due = base + 60 * MINUTE
    await redis.flushdb()

    # late, but within SWEEP_LATE: left to its job (armed again)
    desk.at(due + sla.SWEEP_LATE - SECOND)
    report = await sla.sweep(desk.conns)
    assert (report.rearmed, report.fired) == (1, 0)
    assert await events_of(db, conversation_id) == []
    assert timer_job_id(conversation_id, due) in await sla_jobs(redis, conversation_id)

    # later still: the sweep acts
    late = due + sla.SWEEP_LATE + SECOND
    desk.at(late)
    report = await sla.sweep(desk.conns)
    assert report.fired == 1
    [event] = await events_of(db, conversation_id)
    assert (event["kind"], event["stage"], event["due_at"], event["fired_at"]) == (
        "first_response",
        "breach",
        due,
        late,
    )
    assert (await conversation(db, conversation_id))["team_id"] == escalations
    assert (await sla.sweep(desk.conns)).fired == 0
    assert len(await events_of(db, conversation_id)) == 1


# --- on time, for real -----------------------------------------------------------------------


async def clocks_due_in(
    conns: Conns, conversation_id: int, policy_id: int, ahead: timedelta
) -> datetime:
    """Start the conversation's clocks under a 60-minute policy so far in the past that the
    breach falls `ahead` of the real now; arm its timer. Returns the due instant."""
    now = utc_now()
    started = now - 60 * MINUTE + ahead
    async with conns.db.acquire() as conn, conn.transaction():
        moved = await sla.start(conn, conversation_id, policy_id, started, now)
    assert moved is not None and moved.next_timer_at == started + 60 * MINUTE
    await sla.arm(conns, conversation_id, moved)
    return moved.next_timer_at


@pytest.fixture
async def escalation_team(db: asyncpg.Pool) -> AsyncIterator[tuple[int, int]]:
    """(team, its online member)."""
    team_id = await team(db, "Escalations")
    senior_id, _ = await make_agent(db, name="Senior", team="Escalations")
    yield team_id, senior_id


async def test_a_breach_fires_on_time_with_a_real_worker_on_the_real_clock(
    conns: Conns, db: asyncpg.Pool, escalation_team: tuple[int, int], running_worker: Worker
) -> None:
    escalations, senior_id = escalation_team
    policy_id = await policy(
        conns,
        "Answer in an hour",
        first_response_minutes=60,
        clock="calendar",
        escalation={"raise_priority_to": 7, "team_id": escalations},
    )
    conversation_id, _ = await customer_writes(conns, "anyone there?")
    due = await clocks_due_in(conns, conversation_id, policy_id, timedelta(seconds=1.5))

    async def breach() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT * FROM sla_events WHERE conversation_id = $1 AND stage = 'breach'",
            conversation_id,
        )

    event = await eventually(breach, within=15)
    assert event["due_at"] == due
    assert event["fired_at"] - event["due_at"] >= timedelta(0)

    async def escalated() -> asyncpg.Record | None:
        row = await conversation(db, conversation_id)
        return row if row["assignee_id"] == senior_id else None

    row = await eventually(escalated)
    assert (row["priority"], row["team_id"]) == (7, escalations)
    assert event["escalation"]["priority"] == [0, 7]


async def test_redis_flushed_before_the_due_instant_loses_no_breach(
    conns: Conns,
    db: asyncpg.Pool,
    redis: ArqRedis,
    settings: Settings,
    escalation_team: tuple[int, int],
) -> None:
    escalations, _ = escalation_team
    policy_id = await policy(
        conns,
        "Answer in an hour",
        first_response_minutes=60,
        clock="calendar",
        escalation={"team_id": escalations},
    )
    conversation_id, _ = await customer_writes(conns, "anyone there?")
    due = await clocks_due_in(conns, conversation_id, policy_id, timedelta(seconds=2))
    await redis.flushdb()  # the timer's job is gone

    # a worker with its cron (the reconciler, every 2 s and at start) as in production
    worker = make_worker(settings, cron=True)
    task = asyncio.create_task(worker.async_run())
    try:

        async def breach() -> asyncpg.Record | None:
            return await db.fetchrow(
                "SELECT * FROM sla_events WHERE conversation_id = $1", conversation_id
            )

        event = await eventually(breach, within=20)
    finally:
        await stop_worker(worker, task)
    assert (event["kind"], event["stage"], event["due_at"]) == ("first_response", "breach", due)
    assert event["fired_at"] >= due
    assert (await conversation(db, conversation_id))["team_id"] == escalations


# --- bugs found ------------------------------------------------------------------------------


async def test_a_timer_job_is_never_due_in_arq_before_its_instant(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis
) -> None:
    """arq keeps a deferred job's instant in whole milliseconds and compares it with its own
    rounded clock: a job scored at its instant rounded could start up to a millisecond early,
    find nothing due yet, and (its own id still held while it runs) leave the timer to the
    sweeper. The job is deferred to the next whole millisecond after the instant instead."""
    base = in_a_while()
    desk = await make_desk(conns, base + timedelta(microseconds=400))
    await answer_in_an_hour(conns)
    conversation_id = await opened(desk)
    due = base + 60 * MINUTE + timedelta(microseconds=400)
    [(job_id, score)] = (await sla_jobs(redis, conversation_id)).items()
    assert job_id == timer_job_id(conversation_id, due)
    taken_at = datetime.fromtimestamp(score / 1000, UTC)
    assert taken_at > due
    # the earliest moment arq can start it, the timer is due
    desk.at(taken_at)
    [fired] = await sla.fire(desk.conns, conversation_id)
    assert (fired.timer.kind, fired.timer.stage, fired.timer.due_at) == (
        "first_response",
        "breach",
        due,
    )


async def test_a_first_response_sent_after_its_due_instant_before_the_timer_ran_is_a_breach(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """PRODUCT BUG (services/sla.py _record): a reply at or after the due instant is late
    (domain/sla.py), but when it is sent before the breach timer acted on it (the job a moment
    behind, the workers busy, Redis lost and the sweeper not yet round), the reply stops the
    clock and drops the due timer: no sla_events row, no escalation, ever. "No breach is ever
    missed" (issue 6, item 4) does not hold. Fix: in _record, act on the timers due at or
    before the event's instant (as fire does) before applying the event."""
    base = a_while_ago()
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns, escalation={"raise_priority_to": 5})
    late = await opened(desk)
    desk.at(base + MINUTE)
    on_the_dot = await opened(desk)

    desk.at(base + 60 * MINUTE + SECOND)  # a second late; the timer job has not run yet
    await reply_sent(desk, late)
    desk.at(base + 61 * MINUTE)  # exactly at the due instant
    await reply_sent(desk, on_the_dot)
    desk.at(base + 70 * MINUTE)
    for conversation_id in (late, on_the_dot):
        await sla.fire(desk.conns, conversation_id)  # the job, when it comes
    await sla.sweep(desk.conns)

    for conversation_id, due in ((late, base + 60 * MINUTE), (on_the_dot, base + 61 * MINUTE)):
        breaches = [(e["kind"], e["due_at"]) for e in await events_of(db, conversation_id)]
        assert breaches == [("first_response", due)], conversation_id
        assert (await conversation(db, conversation_id))["priority"] == 5


async def test_a_resolution_overdue_when_resolved_before_its_timer_ran_is_a_breach(
    conns: Conns, db: asyncpg.Pool
) -> None:
    """PRODUCT BUG (services/sla.py _record), the same for resolution: resolved (or put on
    pending) after its due instant but before the timer acted, the clock keeps the breach
    (resolution_breached_at) yet no sla_events row is ever written for it."""
    base = a_while_ago()
    desk = await make_desk(conns, base)
    quick = await policy(conns, "Quick", resolution_minutes=60, clock="calendar")
    await tier_default(db, 4, quick)
    conversation_id = await opened(desk)
    due = base + 60 * MINUTE
    desk.at(due + SECOND)
    await status(desk, conversation_id, ConversationStatus.RESOLVED)
    assert (await sla_row(db, conversation_id))["resolution_breached_at"] == due
    desk.at(due + 10 * MINUTE)
    await sla.fire(desk.conns, conversation_id)
    await sla.sweep(desk.conns)
    breaches = [(e["kind"], e["stage"], e["due_at"]) for e in await events_of(db, conversation_id)]
    assert breaches == [("resolution", "breach", due)]


async def test_a_timer_long_overdue_is_still_queued_as_a_job_that_runs(
    conns: Conns, db: asyncpg.Pool, redis: ArqRedis, run_jobs: Any
) -> None:
    """PRODUCT BUG, minor (contactcenter/jobs.py enqueue_sla_timer): arq gives a deferred job
    an expiry of (instant - now + 1 day); for an instant more than a day ago that is negative,
    Redis refuses the job's data (ResponseError, logged as "enqueue failed") while the queue
    entry is still added, and the worker then drops the entry as expired. Arming a timer that
    is long overdue (a conversation routed a day late, the sweeper re-arming after a long
    outage) queues nothing that runs; only the sweep acts. Fix: defer to max(due, now), or
    pass _expires."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    desk = await make_desk(conns, base)
    await answer_in_an_hour(conns)
    conversation_id = await opened(desk)
    due = base + 60 * MINUTE
    assert timer_job_id(conversation_id, due) in await sla_jobs(redis, conversation_id)
    await run_jobs()  # the real clock: two days after the due instant
    fired = [(e["kind"], e["stage"], e["due_at"]) for e in await events_of(db, conversation_id)]
    assert fired == [("first_response", "breach", due)]
