"""Satisfaction scores of follow-up visits, and the service recovery a low score starts.

A follow-up visit (a care_sends row of kind follow_up, status sent) takes one answer, from the
survey page or as an SMS digit, within care_settings.survey_valid_days of being sent: the
first answer wins (the visit's row is locked, and satisfaction_scores.care_send_id is unique).
The score is kept with the conversation as it was: its agent (the assignee it was resolved
by, else the last agent who wrote to the customer in it), team, tier and channel.

A score at or below care_settings.recovery_threshold is a complaint: in the same transaction
a recovery conversation opens for the same customer on the same channel, in the original
team, with the recovery priority, held by that team's least loaded supervisor with room (an
online one first), or waiting in the team's queue when none has room. An internal note
carries the score and the comment. After the commit the inbox hears of it
("conversation.recovery") and, when it waits, the team's queue is served.
"""

from __future__ import annotations

import dataclasses
import logging
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from contactcenter import events
from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.assignment import AgentLoad
from contactcenter.domain.care import CareKind, CareSettings, CareStatus
from contactcenter.domain.errors import Conflict, DomainError, Invalid, NotFound
from contactcenter.domain.messages import InboundMessage
from contactcenter.domain.routing import merge_skills
from contactcenter.services import assignment, sla
from contactcenter.services.ingest import IngestResult, ingest
from contactcenter.services.surveys import SurveyExpired, read_survey_token
from contactcenter.store import agents, care_settings, contacts, conversations, messages, teams
from contactcenter.store import satisfaction as store

logger = logging.getLogger(__name__)

SCORES = range(1, 6)
MAX_COMMENT = 2000
RECOVERY_TAG = "recovery"


class AnsweredBy(StrEnum):
    """satisfaction_scores.answered_by (mirrors its CHECK constraint)."""

    SMS = "sms"
    LINK = "link"


@dataclass(frozen=True)
class Recovery:
    conversation_id: int
    team_id: int
    assignee_id: int | None
    # the SLA clocks it started with, for their timer after the commit
    sla_moved: sla.Moved | None = None


@dataclass(frozen=True)
class ScoreOutcome:
    score_id: int
    care_send_id: int
    conversation_id: int
    score: int
    recovery: Recovery | None = None


def valid_since(now: datetime, settings: CareSettings) -> datetime:
    """The oldest sending instant a visit may have and still take an answer at `now`."""
    return now - timedelta(days=settings.survey_valid_days)


async def record(
    conn: Connection,
    care_send_id: int,
    score: int,
    comment: str | None,
    answered_by: str,
    now: datetime,
) -> ScoreOutcome:
    """Keep the answer to a follow-up visit (inside the caller's transaction); a low score opens
    the recovery conversation in it too. Call `after_commit` once committed.

    Refused: survey_not_found (no such sent visit), link_expired, already_answered,
    invalid_score."""
    if score not in SCORES:
        raise Invalid("a score is 1, 2, 3, 4 or 5", code="invalid_score")
    visit = await store.lock_care_send(conn, care_send_id)
    if (
        visit is None
        or visit["kind"] != CareKind.FOLLOW_UP
        or visit["status"] != CareStatus.SENT
        or visit["sent_at"] is None
        or visit["conversation_id"] is None
    ):
        raise NotFound("there is no such survey", code="survey_not_found")
    if await store.answered(conn, care_send_id):
        raise Conflict("this survey was already answered", code="already_answered")
    settings = await care_settings.load(conn)
    if visit["sent_at"] < valid_since(now, settings):
        raise SurveyExpired("this survey takes no answers any more")
    conversation = await conversations.get(conn, visit["conversation_id"])
    assert conversation is not None  # care_sends.conversation_id cascades on delete
    recovery = None
    if score <= settings.recovery_threshold:
        recovery = await _open_recovery(
            conn, settings, conversation, score, comment, answered_by, now
        )
    agent_id = conversation["assignee_id"] or await store.last_agent_in_conversation(
        conn, conversation["id"]
    )
    score_id = await store.insert_score(
        conn,
        store.NewScore(
            care_send_id=care_send_id,
            conversation_id=conversation["id"],
            contact_id=conversation["contact_id"],
            agent_id=agent_id,
            team_id=conversation["team_id"],
            tier=conversation["tier"],
            channel=conversation["channel"],
            score=score,
            comment=comment,
            answered_by=answered_by,
            recovery_conversation_id=recovery.conversation_id if recovery else None,
            created_at=now,
        ),
    )
    if score_id is None:  # the row lock makes this unreachable; the unique key is the backstop
        raise Conflict("this survey was already answered", code="already_answered")
    logger.info(
        "satisfaction recorded",
        extra={
            "care_send_id": care_send_id,
            "score": score,
            "answered_by": answered_by,
            "recovery_conversation_id": recovery.conversation_id if recovery else None,
        },
    )
    return ScoreOutcome(score_id, care_send_id, conversation["id"], score, recovery)


async def after_commit(conns: Conns, outcome: ScoreOutcome | None) -> None:
    """What a recorded score leaves to do once committed: the recovery's SLA timer, the
    real-time event, and serving the team's queue when the recovery waits in it."""
    recovery = outcome.recovery if outcome else None
    if outcome is None or recovery is None:
        return
    await sla.arm(conns, recovery.conversation_id, recovery.sla_moved)
    await events.publish_agent_event(
        conns,
        "conversation.recovery",
        conversation_id=recovery.conversation_id,
        team_id=recovery.team_id,
        assignee_id=recovery.assignee_id,
        data={
            "score": outcome.score,
            "score_id": outcome.score_id,
            "from_conversation_id": outcome.conversation_id,
        },
    )
    if recovery.assignee_id is None:
        await assignment.assign_waiting(conns, recovery.team_id)


# --- the recovery conversation ---------------------------------------------------------------


def pick_supervisor(supervisors: list[tuple[AgentLoad, bool]], channel: str) -> AgentLoad | None:
    """The supervisor a recovery goes to: one with a free slot (in total and on the channel),
    online before offline, then the least loaded, then the lowest id; None when none has room
    (an assignment never goes past an agent's capacity)."""
    able = [
        (load, online)
        for load, online in supervisors
        if load.free_slots > 0 and load.has_room_on(channel)
    ]
    if not able:
        return None
    chosen, _ = min(able, key=lambda pair: (not pair[1], pair[0].load, pair[0].id))
    return chosen


def recovery_subject(score: int, conversation_id: int) -> str:
    return f"Recovery: satisfaction {score}/5 on conversation #{conversation_id}"


def recovery_note(score: int, comment: str | None, conversation_id: int, answered_by: str) -> str:
    how = "by SMS" if answered_by == AnsweredBy.SMS else "on the survey page"
    lines = [
        f"The customer gave {score}/5 {how} in the follow-up of conversation #{conversation_id}.",
        f"Comment: {comment}" if comment else "No comment.",
    ]
    return "\n".join(lines)


async def _open_recovery(
    conn: Connection,
    settings: CareSettings,
    original: asyncpg.Record,
    score: int,
    comment: str | None,
    answered_by: str,
    now: datetime,
) -> Recovery:
    team_id = original["team_id"] or await teams.default_team_id(conn)
    team = await teams.routing_settings(conn, team_id, hold=True) if team_id else None
    if team is None:
        raise Conflict("there is no team to put the recovery in", code="no_team")
    supervisor = pick_supervisor(
        await store.lock_team_supervisors(conn, team["id"]), original["channel"]
    )
    facts = await contacts.routing_facts(conn, original["contact_id"])
    assert facts is not None
    routing: dict[str, Any] = {
        "recovery": {
            "from_conversation_id": original["id"],
            "score": score,
            "answered_by": answered_by,
        },
        "team": {"id": team["id"], "name": team["name"], "source": "recovery"},
        "priority": settings.recovery_priority,
        "complaint": True,
    }
    if supervisor is not None:
        routing["assignment"] = {
            "agent_id": supervisor.id,
            "reason": "recovery_supervisor",
            "load_before": supervisor.load,
            "capacity": supervisor.capacity,
            "at": now.isoformat(),
        }
    row = await store.open_recovery(
        conn,
        store.NewRecovery(
            contact_id=original["contact_id"],
            channel=original["channel"],
            subject=recovery_subject(score, original["id"]),
            priority=settings.recovery_priority,
            team_id=team["id"],
            assignee_id=supervisor.id if supervisor else None,
            now=now,
            tier=facts["tier"],
            mailbox_id=original["mailbox_id"],
            sms_number_id=original["sms_number_id"],
            required_skills=list(merge_skills(tuple(team["skills"]))),
            sla_policy_id=facts["tier_sla_policy_id"],
            routing=routing,
        ),
    )
    await messages.insert_outbound(
        conn,
        row["id"],
        original["channel"],
        None,
        recovery_note(score, comment, original["id"], answered_by),
        now,
        is_note=True,
    )
    if supervisor is not None:
        await agents.touch_served(conn, [supervisor.id], now)
    # held to the customer's tier's standard, from now: the supervisor's first word counts
    sla_moved = await sla.start(conn, row["id"], facts["tier_sla_policy_id"], now, now)
    return Recovery(row["id"], row["team_id"], row["assignee_id"], sla_moved)


# --- an SMS digit answers the latest follow-up by SMS ----------------------------------------


def sms_score(text: str) -> int | None:
    """The score a text is, when it is exactly one digit 1-5 (full-width digits count)."""
    word = unicodedata.normalize("NFKC", text).strip()
    if len(word) == 1 and word in "12345":
        return int(word)
    return None


class _NotTaken(Exception):
    """The visit took no answer after all (answered on the page meanwhile, expired): the digit
    is an ordinary message."""


async def take_sms_answer(conns: Conns, inbound: InboundMessage, phone: str) -> bool:
    """Ingest a text that answers the sender's latest open follow-up by SMS: stored with that
    follow-up's conversation as an automatic message (it reopens nothing, asks no one's
    attention) and the score recorded, in one transaction. False when the text is no such
    answer (then ingest it as usual)."""
    score = sms_score(inbound.text)
    if score is None:
        return False
    now = conns.clock()
    settings = await care_settings.load(conns.db)
    visit = await store.open_sms_follow_up(conns.db, phone, valid_since(now, settings))
    if visit is None:
        return False
    recorded: list[ScoreOutcome] = []

    async def record_answer(conn: Connection, result: IngestResult) -> None:
        if result.duplicate:
            return  # Twilio's retry of an answer already recorded
        try:
            recorded.append(await record(conn, visit["id"], score, None, AnsweredBy.SMS, now))
        except DomainError as refused:
            raise _NotTaken(refused.code) from None

    answer = dataclasses.replace(inbound, automatic=True, conversation_id=visit["conversation_id"])
    try:
        await ingest(conns, answer, also=record_answer)
    except _NotTaken as not_taken:
        logger.info(
            "sms digit not taken as a score",
            extra={"care_send_id": visit["id"], "code": str(not_taken)},
        )
        return False
    await after_commit(conns, recorded[0] if recorded else None)
    return True


# --- the survey page --------------------------------------------------------------------------


def page_locale(locale: str | None) -> str:
    """The page's language: Chinese for a zh* locale, else English."""
    return "zh-CN" if locale and locale.lower().startswith("zh") else "en"


@dataclass(frozen=True)
class Survey:
    """A follow-up visit as its page shows it; `refusal` says why it takes no answer."""

    care_send_id: int
    name: str | None
    locale: str
    refusal: DomainError | None = None


async def open_survey(conns: Conns, token: str) -> Survey:
    """The survey a link opens. Raises InvalidLink for a link we did not sign, SurveyExpired
    for one too old, NotFound (survey_not_found) for a visit that was never sent; a visit
    answered already or sent too long ago comes back with its refusal, so that the page
    speaks the customer's language."""
    now = conns.clock()
    settings = await care_settings.load(conns.db)
    care_send_id = read_survey_token(conns.settings, token, now, settings.survey_valid_days)
    view = await store.survey_view(conns.db, care_send_id)
    if view is None or view["kind"] != CareKind.FOLLOW_UP or view["status"] != CareStatus.SENT:
        raise NotFound("there is no such survey", code="survey_not_found")
    survey = Survey(
        care_send_id, view["name"], page_locale(view["locale"] or settings.default_locale)
    )
    if view["answered"]:
        return replace(
            survey, refusal=Conflict("this survey was already answered", code="already_answered")
        )
    if view["sent_at"] is None or view["sent_at"] < valid_since(now, settings):
        return replace(survey, refusal=SurveyExpired("this survey takes no answers any more"))
    return survey


def clean_comment(raw: str) -> str | None:
    """The comment as kept: line breaks normalised, control characters dropped, at most
    MAX_COMMENT characters (Invalid comment_too_long); None when empty."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or c.isprintable()).strip()
    if len(text) > MAX_COMMENT:
        raise Invalid(
            f"a comment is at most {MAX_COMMENT} characters",
            code="comment_too_long",
            details={"field": "comment", "max_length": MAX_COMMENT},
        )
    return text or None


async def answer_survey(
    conns: Conns, survey: Survey, score: int, comment: str | None
) -> tuple[Survey, ScoreOutcome | None]:
    """Record the page's answer; the survey comes back with its refusal when the answer was
    not taken (answered meanwhile, expired, a score out of range)."""
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            outcome = await record(
                conn, survey.care_send_id, score, comment, AnsweredBy.LINK, conns.clock()
            )
    except DomainError as refused:
        return replace(survey, refusal=refused), None
    await after_commit(conns, outcome)
    return survey, outcome
