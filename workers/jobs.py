"""Job functions: take ids, call one service, and are safe to run twice (invariant 5)."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from channels.email.sla_notices import send_sla_notice as send_notice
from contactcenter import logs, metrics
from contactcenter.conns import Conns
from contactcenter.services import assignment, care, delivery, routing, sla, tiers
from contactcenter.services import reconcile as reconciler

logger = logging.getLogger(__name__)

# seconds before each retry of a send that failed for a passing reason, by attempt
SEND_BACKOFF = (1, 5, 15, 60, 300)


def _conns(ctx: dict[str, Any]) -> Conns:
    conns: Conns = ctx["conns"]
    return conns


async def on_job_start(ctx: dict[str, Any]) -> None:
    # every log line of the job carries its id (the job runs in a copy of this context)
    logs.request_id.set(ctx["job_id"])
    metrics.job_started(ctx)


async def route_conversation(ctx: dict[str, Any], conversation_id: int) -> int | None:
    return await routing.route_conversation(_conns(ctx), conversation_id)


async def assign_waiting(ctx: dict[str, Any], team_id: int) -> int:
    return len(await assignment.assign_waiting(_conns(ctx), team_id))


def _retry_later(again: delivery.SendAgain, what: str, **ids: int) -> Retry:
    """arq's Retry after a passing send failure, backing off by the attempt."""
    defer = SEND_BACKOFF[min(again.attempt, len(SEND_BACKOFF)) - 1]
    logger.warning(
        f"{what} failed, will retry",
        extra={**ids, "code": again.failure.code, "retry_in": defer},
    )
    return Retry(defer=defer)


async def send_message(ctx: dict[str, Any], message_id: int) -> str:
    try:
        outcome = await delivery.deliver(_conns(ctx), message_id, ctx["senders"])
    except delivery.SendAgain as again:
        raise _retry_later(again, "send", message_id=message_id) from again
    return str(outcome)


async def sla_timer(ctx: dict[str, Any], conversation_id: int) -> int:
    """Act on the conversation's SLA timers due by now (a stale timer does nothing)."""
    return len(await sla.fire(_conns(ctx), conversation_id))


async def send_sla_notice(ctx: dict[str, Any], event_id: int) -> str:
    """The supervisor's e-mail about a breach (channels/email/sla_notices.py)."""
    try:
        outcome = await send_notice(_conns(ctx), event_id)
    except delivery.SendAgain as again:
        raise _retry_later(again, "sla notice", event_id=event_id) from again
    return str(outcome)


async def care_send(ctx: dict[str, Any], care_send_id: int) -> str:
    """Decide and queue one greeting or follow-up visit."""
    decided = await care.send(_conns(ctx), care_send_id)
    return str(decided.status or "postponed")


async def care_tick(ctx: dict[str, Any]) -> dict[str, int]:
    """Schedule today's birthdays (in every time zone) and enqueue what care has due."""
    conns = _conns(ctx)
    return {
        "birthdays_scheduled": await care.schedule_birthdays(conns),
        "enqueued": await care.dispatch(conns),
    }


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    report = await reconciler.reconcile(_conns(ctx))
    return {
        "routes_enqueued": report.routes_enqueued,
        "teams_filled": len(report.teams_filled),
        "woken": report.woken,
        "sends_enqueued": report.sends_enqueued,
        "overflowed": report.overflowed,
        "sla_rearmed": report.sla_rearmed,
        "sla_fired": report.sla_fired,
    }


async def recompute_tiers(ctx: dict[str, Any]) -> dict[str, Any] | None:
    """The nightly tier recompute: checked often, runs once a day (see tiers.recompute_if_due)."""
    report = await tiers.recompute_if_due(_conns(ctx))
    if report is None:
        return None
    return {"examined": report.examined, "changed": report.changed, "ms": report.duration_ms}
