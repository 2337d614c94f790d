"""The satisfaction report (GET /v1/reports/csat): the answers to follow-up visits given in a
date range, overall and by tier, channel, agent and team, in one statement.

Who is in it: satisfaction_scores created in [start, end). Tier, channel, agent and team are
the score's own: the conversation's as it was when the customer answered (the agent who
served it, the team that held it), so a report does not change when a customer moves tier or
an agent changes team. A score with no agent (nobody had answered the conversation) counts
overall and in its agent group with agent_id null.

Each group has: responses, average (the mean score; null with no responses), distribution
(responses per score, "1" to "5", zeros included) and recoveries (how many answers opened a
recovery conversation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Executor
from contactcenter.store import grouping_sets

# GROUPING(tier, channel, agent_id, team_id): a bit per column left out of the row's grouping
_OVERALL, _BY_TIER, _BY_CHANNEL, _BY_AGENT, _BY_TEAM = 0b1111, 0b0111, 0b1011, 0b1101, 0b1110
GROUPS = {
    "by_tier": (_BY_TIER, ("tier",)),
    "by_channel": (_BY_CHANNEL, ("channel",)),
    "by_agent": (_BY_AGENT, ("agent_id", "agent_name")),
    "by_team": (_BY_TEAM, ("team_id", "team_name")),
}

CSAT_REPORT = """
WITH scoped AS (
    SELECT s.tier, s.channel, s.agent_id, a.name AS agent_name, s.team_id, t.name AS team_name,
           s.score, s.recovery_conversation_id
    FROM satisfaction_scores s
    LEFT JOIN agents a ON a.id = s.agent_id
    LEFT JOIN teams t ON t.id = s.team_id
    WHERE s.created_at >= $1 AND s.created_at < $2
      AND ($3::smallint IS NULL OR s.tier = $3)
      AND ($4::text IS NULL OR s.channel = $4)
      AND ($5::bigint IS NULL OR s.agent_id = $5)
      AND ($6::bigint IS NULL OR s.team_id = $6)
)
SELECT GROUPING(tier, channel, agent_id, team_id) AS grouping, tier, channel, agent_id,
       agent_name, team_id, team_name,
       count(*) AS responses,
       coalesce(sum(score), 0)::bigint AS total,
       count(*) FILTER (WHERE score = 1) AS s1,
       count(*) FILTER (WHERE score = 2) AS s2,
       count(*) FILTER (WHERE score = 3) AS s3,
       count(*) FILTER (WHERE score = 4) AS s4,
       count(*) FILTER (WHERE score = 5) AS s5,
       count(recovery_conversation_id) AS recoveries
FROM scoped
GROUP BY GROUPING SETS ((), (tier), (channel), (agent_id, agent_name), (team_id, team_name))
ORDER BY grouping, tier, channel, agent_name, agent_id, team_name, team_id
"""


@dataclass(frozen=True)
class CsatReportQuery:
    """Scores given in [start, end), optionally of one tier, channel, agent or team."""

    start: datetime
    end: datetime
    tier: int | None = None
    channel: str | None = None
    agent_id: int | None = None
    team_id: int | None = None


def _block(row: asyncpg.Record) -> dict[str, Any]:
    """One group's figures; the average is the exact mean of its scores."""
    responses = row["responses"]
    return {
        "responses": responses,
        "average": row["total"] / responses if responses else None,
        "distribution": {str(n): row[f"s{n}"] for n in range(1, 6)},
        "recoveries": row["recoveries"],
    }


async def csat_report(db: Executor, query: CsatReportQuery) -> dict[str, Any]:
    """{"overall": block, "by_tier": [...], "by_channel": [...], "by_agent": [...],
    "by_team": [...]}. A group is listed when it has responses; overall is always there."""
    rows = await db.fetch(
        CSAT_REPORT,
        query.start,
        query.end,
        query.tier,
        query.channel,
        query.agent_id,
        query.team_id,
    )
    return grouping_sets.split(rows, _OVERALL, GROUPS, _block)
