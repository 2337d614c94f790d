"""The SLA report (GET /v1/reports/sla): how the conversations whose clocks started in a date
range did against their targets, overall and by tier, channel and team, in one statement.

Who is in it: conversations held to a policy (a conversation_sla row) whose clocks started in
[start, end); tier, channel and team are the conversation's as it is now.

How each is judged, as of `now` (the same rules as contactcenter/domain/sla.py `breached`):
- First response, when it had a target (its due instant is kept once met): met by a reply
  before the due instant; breached by a reply at or after it, by none yet at `now` past it, or
  by resolving without a reply at or after it; resolved without a reply before it is
  `resolved_unanswered` (nothing was late, nothing was answered: in neither side of the
  compliance); the rest is pending.
- Resolution, when the policy has a resolution target: breached once its due instant passed
  in any stretch (resolution_breached_at) or while it still runs; met when resolved without
  that; the rest is pending (running, paused, or reopened after a resolve in time).
- Compliance is met / (met + breached), null when nothing is decided yet.
- Median and p90 (percentile_cont) are over the conversations that have the time:
  first_response_time and resolution_time, already measured on the policy's clock (business
  time for business-hours policies), whatever the target.
- Next-response breaches: the sla_events breach rows of the next-response clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contactcenter.db import Executor
from contactcenter.store import grouping_sets

# GROUPING(tier, channel, team_id): a bit per column left out of the row's grouping set
_OVERALL, _BY_TIER, _BY_CHANNEL, _BY_TEAM = 0b111, 0b011, 0b101, 0b110
GROUPS = {
    "by_tier": (_BY_TIER, ("tier",)),
    "by_channel": (_BY_CHANNEL, ("channel",)),
    "by_team": (_BY_TEAM, ("team_id", "team_name")),
}

SLA_REPORT = """
WITH next_breaches AS (
    SELECT e.conversation_id, count(*) AS breaches
    FROM sla_events e JOIN conversation_sla s ON s.conversation_id = e.conversation_id
    WHERE e.kind = 'next_response' AND e.stage = 'breach'
      AND s.started_at >= $1 AND s.started_at < $2
    GROUP BY e.conversation_id
),
scoped AS (
    SELECT c.tier, c.channel, c.team_id, t.name AS team_name, s.stopped_at,
           s.first_response_due_at AS first_due, s.first_responded_at AS first_at,
           s.first_response_stopped_at AS first_stopped,
           extract(epoch FROM s.first_response_time)::float8 AS first_seconds,
           s.resolution_due_at, s.resolution_breached_at,
           extract(epoch FROM s.resolution_time)::float8 AS resolution_seconds,
           (p.resolution_seconds IS NOT NULL OR s.resolution_due_at IS NOT NULL
            OR s.resolution_breached_at IS NOT NULL) AS resolution_target,
           coalesce(n.breaches, 0) AS next_breaches
    FROM conversation_sla s
    JOIN conversations c ON c.id = s.conversation_id
    LEFT JOIN next_breaches n ON n.conversation_id = s.conversation_id
    LEFT JOIN teams t ON t.id = c.team_id
    LEFT JOIN sla_policies p ON p.id = s.policy_id
    WHERE s.started_at >= $1 AND s.started_at < $2
      AND ($4::smallint IS NULL OR c.tier = $4)
      AND ($5::text IS NULL OR c.channel = $5)
      AND ($6::bigint IS NULL OR c.team_id = $6)
),
judged AS (
    SELECT *,
        CASE WHEN first_due IS NULL THEN NULL
             WHEN first_at < first_due THEN 'met'
             WHEN coalesce(first_at, first_stopped, $3) >= first_due THEN 'breached'
             WHEN first_stopped IS NOT NULL THEN 'resolved_unanswered'
             ELSE 'pending' END AS first_outcome,
        CASE WHEN NOT resolution_target THEN NULL
             WHEN resolution_breached_at IS NOT NULL
                  OR (stopped_at IS NULL AND resolution_due_at <= $3) THEN 'breached'
             WHEN stopped_at IS NOT NULL THEN 'met'
             ELSE 'pending' END AS resolution_outcome
    FROM scoped
)
SELECT GROUPING(tier, channel, team_id) AS grouping, tier, channel, team_id, team_name,
       count(*) AS conversations,
       count(first_outcome) AS first_with_target,
       count(*) FILTER (WHERE first_outcome = 'met') AS first_met,
       count(*) FILTER (WHERE first_outcome = 'breached') AS first_breached,
       count(*) FILTER (WHERE first_outcome = 'pending') AS first_pending,
       count(*) FILTER (WHERE first_outcome = 'resolved_unanswered') AS first_unanswered,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY first_seconds) AS first_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY first_seconds) AS first_p90,
       coalesce(sum(next_breaches), 0)::bigint AS next_breaches,
       count(resolution_outcome) AS resolution_with_target,
       count(stopped_at) AS resolved,
       count(*) FILTER (WHERE resolution_outcome = 'met') AS resolution_met,
       count(*) FILTER (WHERE resolution_outcome = 'breached') AS resolution_breached,
       count(*) FILTER (WHERE resolution_outcome = 'pending') AS resolution_pending,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds) AS resolution_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_seconds) AS resolution_p90
FROM judged
GROUP BY GROUPING SETS ((), (tier), (channel), (team_id, team_name))
ORDER BY grouping, tier, channel, team_name, team_id
"""


@dataclass(frozen=True)
class SlaReportQuery:
    """Conversations whose clocks started in [start, end), optionally of one tier, channel or
    team."""

    start: datetime
    end: datetime
    tier: int | None = None
    channel: str | None = None
    team_id: int | None = None


def _compliance(met: int, breached: int) -> float | None:
    decided = met + breached
    return None if decided == 0 else met / decided


def _block(row: asyncpg.Record) -> dict[str, Any]:
    """One group's figures, in the report's shape."""
    return {
        "conversations": row["conversations"],
        "first_response": {
            "with_target": row["first_with_target"],
            "met": row["first_met"],
            "breached": row["first_breached"],
            "pending": row["first_pending"],
            "resolved_unanswered": row["first_unanswered"],
            "compliance": _compliance(row["first_met"], row["first_breached"]),
            "median_seconds": row["first_median"],
            "p90_seconds": row["first_p90"],
        },
        "next_response": {"breaches": row["next_breaches"]},
        "resolution": {
            "with_target": row["resolution_with_target"],
            "resolved": row["resolved"],
            "met": row["resolution_met"],
            "breached": row["resolution_breached"],
            "pending": row["resolution_pending"],
            "compliance": _compliance(row["resolution_met"], row["resolution_breached"]),
            "median_seconds": row["resolution_median"],
            "p90_seconds": row["resolution_p90"],
        },
    }


async def sla_report(db: Executor, query: SlaReportQuery, now: datetime) -> dict[str, Any]:
    """{"overall": block, "by_tier": [...], "by_channel": [...], "by_team": [...]}, judged as
    of `now`. A group is listed when it has conversations; overall is always there (zeros and
    nulls for an empty range)."""
    rows = await db.fetch(
        SLA_REPORT, query.start, query.end, now, query.tier, query.channel, query.team_id
    )
    return grouping_sets.split(rows, _OVERALL, GROUPS, _block)
