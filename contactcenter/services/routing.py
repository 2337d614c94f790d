"""Routing: the unit of work behind the route job.

The conversation is locked; what rules may test is gathered (the customer's tier, tags and
fields, the message, its language, the hour); the rules are evaluated; the decision puts the
conversation in a team's queue with its tier, priority and the agent it prefers, and keeps the
explanation with it. Then the team is filled at once. Safe to run twice: a conversation whose
routing request is gone was routed already (invariant 5).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from string import Template

import asyncpg

from contactcenter import events, jobs
from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.enums import Channel, Presence
from contactcenter.domain.errors import Invalid
from contactcenter.domain.language import detect_language
from contactcenter.domain.routing import Placement, RouteDecision, decide_route, merge_skills
from contactcenter.domain.rules import RoutingFacts, RulesOutcome
from contactcenter.services import assignment, email_replies, routing_rules, sla, sms_outbound
from contactcenter.store import agents, contacts, conversations, messages, teams

logger = logging.getLogger(__name__)


async def route_conversation(conns: Conns, conversation_id: int) -> int | None:
    """Decide the conversation's team and put it in that team's queue; then fill the team.

    Returns the team it was queued in, or None when there was nothing to route.
    """
    now = conns.clock()
    async with conns.db.acquire() as conn, conn.transaction():
        conversation = await conversations.get_for_update(conn, conversation_id)
        if conversation is None or conversation["route_requested_at"] is None:
            return None  # routed already: a re-run, or a reconciler enqueue that came late
        contact = await contacts.routing_facts(conn, conversation["contact_id"])
        assert contact is not None
        facts = await _facts(conn, conversation, contact, now)
        outcome = await routing_rules.evaluate_for(conn, facts)
        decision = decide_route(
            outcome,
            tier=contact["tier"],
            current_team_id=conversation["team_id"],
            current_priority=conversation["priority"],
            current_tags=tuple(conversation["tags"]),
            tier_sla_policy_id=contact["tier_sla_policy_id"],
            # asked only when neither a rule nor the conversation names a team
            default_team_id=(
                None
                if outcome.team_id or conversation["team_id"]
                else await teams.default_team_id(conn)
            ),
        )
        team = None
        if decision.team_id is not None:
            team = await teams.routing_settings(conn, decision.team_id)
        if team is None:
            # nowhere to go: the request stays, and the reconciler tries again until a team
            # can take it (a conversation never waits in a queue nobody serves)
            logger.warning("no team to route to", extra={"conversation_id": conversation_id})
            return None
        placement = await _placement(conn, conversation, contact, facts, outcome, decision, team)
        await conversations.enqueue_in_team(conn, conversation_id, decision, placement)
        # the clocks run from when the customer asked, under the first policy routing gives
        sla_moved = await sla.start(
            conn,
            conversation_id,
            decision.sla_policy_id,
            conversation["route_requested_at"],
            now,
            answered_at=conversation["first_responded_at"],
        )
        auto_reply_id = await _auto_reply(conn, conns, conversation, outcome, now)
    logger.info(
        "conversation queued",
        extra={
            "conversation_id": conversation_id,
            "team_id": decision.team_id,
            "rules": [rule.id for rule in outcome.matched],
        },
    )
    await sla.arm(conns, conversation_id, sla_moved)
    if auto_reply_id is not None:
        await jobs.enqueue_send(conns, auto_reply_id)
    # the team hears of its new work even before anyone is assigned
    await events.publish_agent_event(
        conns,
        "conversation.queued",
        conversation_id=conversation_id,
        team_id=decision.team_id,
        assignee_id=conversation["assignee_id"],
        data={"priority": decision.priority, "tier": decision.tier},
    )
    assert decision.team_id is not None
    await assignment.assign_waiting(conns, decision.team_id)
    return decision.team_id


async def _facts(
    conn: Connection, conversation: asyncpg.Record, contact: asyncpg.Record, now: datetime
) -> RoutingFacts:
    text = await messages.latest_inbound_text(conn, conversation["id"])
    subject = conversation["subject"]
    return RoutingFacts(
        channel=conversation["channel"],
        mailbox_id=conversation["mailbox_id"],
        sms_number_id=conversation["sms_number_id"],
        tier=contact["tier"],
        contact_tags=tuple(contact["tags"]),
        contact_fields=dict(contact["fields"]),
        subject=subject,
        text=text,
        language=detect_language(f"{subject}\n{text}" if subject else text),
        at=now,
    )


async def _placement(
    conn: Connection,
    conversation: asyncpg.Record,
    contact: asyncpg.Record,
    facts: RoutingFacts,
    outcome: RulesOutcome,
    decision: RouteDecision,
    team: asyncpg.Record,
) -> Placement:
    required_skills = merge_skills(tuple(team["skills"]), decision.required_skills)
    wanted = await _preferred_agent(conn, conversation, contact, decision, team)
    able = await _able(conn, wanted, required_skills)
    preferred_id, why, online = able if able is not None else (None, None, False)
    preferred_until = None
    if online and team["sticky_wait_seconds"] > 0:
        # worth waiting for only while they are at work: busy now, free soon
        preferred_until = facts.at + timedelta(seconds=team["sticky_wait_seconds"])
    explanation = {
        "routed_at": facts.at.isoformat(),
        "tier": {
            "rank": contact["tier"],
            "label": contact["tier_label"],
            "pinned": contact["tier_pinned"],
        },
        "rules": [{"id": rule.id, "name": rule.name} for rule in outcome.matched],
        "team": {"id": team["id"], "name": team["name"], "source": decision.team_source},
        "priority": decision.priority,
        "sla_policy": None
        if decision.sla_policy_id is None
        else {"id": decision.sla_policy_id, "source": decision.sla_policy_source},
        "complaint": decision.complaint,
        "language": facts.language,
        "rule_skills": list(decision.required_skills),
        "preferred": None
        if preferred_id is None
        else {
            "agent_id": preferred_id,
            "reason": why,
            "until": preferred_until.isoformat() if preferred_until else None,
        },
    }
    return Placement(
        now=facts.at,
        required_skills=required_skills,
        language=facts.language,
        preferred_agent_id=preferred_id,
        preferred_until=preferred_until,
        explanation=explanation,
    )


async def _preferred_agent(
    conn: Connection,
    conversation: asyncpg.Record,
    contact: asyncpg.Record,
    decision: RouteDecision,
    team: asyncpg.Record,
) -> tuple[int, str] | None:
    """The agent this customer should see again: their account manager when a rule says so,
    else (when the team keeps customers with their agent) whoever last answered them."""
    if conversation["assignee_id"] is not None:
        return None
    if decision.to_account_manager and contact["account_manager_id"] is not None:
        return contact["account_manager_id"], "account_manager"
    if team["sticky_last_agent"]:
        last = await messages.last_agent_for_contact(conn, conversation["contact_id"])
        if last is not None:
            return last, "last_agent"
    return None


async def _able(
    conn: Connection, preferred: tuple[int, str] | None, required_skills: tuple[str, ...]
) -> tuple[int, str, bool] | None:
    """The preferred agent, if they could ever take this work (some capacity, every skill it
    needs), and whether they are online; nobody waits for someone who cannot take it."""
    if preferred is None:
        return None
    agent = await agents.preference_view(conn, preferred[0])
    if agent is None or agent["capacity"] == 0 or not set(required_skills) <= set(agent["skills"]):
        return None
    return preferred[0], preferred[1], agent["presence"] == Presence.ONLINE


async def _auto_reply(
    conn: Connection,
    conns: Conns,
    conversation: asyncpg.Record,
    outcome: RulesOutcome,
    now: datetime,
) -> int | None:
    """A rule's auto-reply, once per conversation, on its channel; None when none is due."""
    if outcome.auto_reply is None or conversation["auto_replied_at"] is not None:
        return None
    card = await contacts.get_card(conn, conversation["contact_id"])
    name = (card or {}).get("name") or ""
    text = Template(outcome.auto_reply).safe_substitute(name=name).strip()
    if not text:
        return None
    if conversation["channel"] == Channel.SMS:
        try:
            await sms_outbound.check_reply(
                conn, conversation, text, conns.settings.sms_max_segments
            )
        except Invalid as refused:
            # an opted-out customer gets no automatic text; the agents still get the work
            logger.info(
                "auto-reply skipped",
                extra={"conversation_id": conversation["id"], "code": refused.code},
            )
            return None
    message = await messages.insert_outbound(
        conn,
        conversation["id"],
        conversation["channel"],
        None,
        text,
        now,
        external_id=await email_replies.outbound_message_id(conn, conversation),
        author_rule_id=outcome.auto_reply_rule_id,
    )
    await conversations.mark_auto_replied(conn, conversation["id"], now)
    return int(message["id"])
