"""The volume report (GET /v1/reports/volume): how much work came and went in a date range,
overall, per time bucket (day or hour, in a time zone), by channel and by team, in one
statement.

What is counted, each by its own instant within [start, end):
- conversations_created: conversations begun (created_at);
- conversations_resolved: conversations whose current resolution falls in the range
  (resolved_at; one reopened since counts again when resolved again);
- messages_in: the customers' messages;
- replies: what agents wrote to customers (notes left out), whatever became of the send;
- automatic: what the product sent by itself (auto-replies, greetings, visits).

A message counts under its own channel (an e-mail reply to a texting customer is e-mail); the
team is the conversation's as it is now. Buckets are local to `timezone` and are listed only
when something happened in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from contactcenter.db import Executor
from contactcenter.store import grouping_sets

Interval = Literal["day", "hour"]

# GROUPING(bucket, channel, team_id): a bit per column left out of the row's grouping
_OVERALL, _BY_BUCKET, _BY_CHANNEL, _BY_TEAM = 0b111, 0b011, 0b101, 0b110
GROUPS = {
    "by_period": (_BY_BUCKET, ("period",)),
    "by_channel": (_BY_CHANNEL, ("channel",)),
    "by_team": (_BY_TEAM, ("team_id", "team_name")),
}

VOLUME_REPORT = """
WITH happened AS (
    SELECT 'created' AS kind, c.created_at AS at, c.channel, c.team_id
    FROM conversations c
    WHERE c.created_at >= $1 AND c.created_at < $2
    UNION ALL
    SELECT 'resolved', c.resolved_at, c.channel, c.team_id
    FROM conversations c
    WHERE c.resolved_at >= $1 AND c.resolved_at < $2
    UNION ALL
    SELECT CASE WHEN m.direction = 'inbound' THEN 'in'
                WHEN m.is_automatic THEN 'automatic'
                ELSE 'reply' END,
           m.created_at, m.channel, c.team_id
    FROM messages m
    JOIN conversations c ON c.id = m.conversation_id
    WHERE m.created_at >= $1 AND m.created_at < $2 AND NOT m.is_note
), scoped AS (
    SELECT h.kind, date_trunc($3, h.at, $4) AS bucket, h.channel, h.team_id, t.name AS team_name
    FROM happened h
    LEFT JOIN teams t ON t.id = h.team_id
    WHERE ($5::text IS NULL OR h.channel = $5)
      AND ($6::bigint IS NULL OR h.team_id = $6)
)
SELECT GROUPING(bucket, channel, team_id) AS grouping, bucket AS period, channel, team_id,
       team_name,
       count(*) FILTER (WHERE kind = 'created') AS conversations_created,
       count(*) FILTER (WHERE kind = 'resolved') AS conversations_resolved,
       count(*) FILTER (WHERE kind = 'in') AS messages_in,
       count(*) FILTER (WHERE kind = 'reply') AS replies,
       count(*) FILTER (WHERE kind = 'automatic') AS automatic
FROM scoped
GROUP BY GROUPING SETS ((), (bucket), (channel), (team_id, team_name))
ORDER BY grouping, bucket, channel, team_name, team_id
"""

COUNTS = ("conversations_created", "conversations_resolved", "messages_in", "replies", "automatic")
EMPTY = dict.fromkeys(COUNTS, 0)


@dataclass(frozen=True)
class VolumeReportQuery:
    start: datetime
    end: datetime
    interval: Interval = "day"
    timezone: str = "UTC"
    channel: str | None = None
    team_id: int | None = None


def _block(row: asyncpg.Record) -> dict[str, Any]:
    return {name: row[name] for name in COUNTS}


async def volume_report(db: Executor, query: VolumeReportQuery) -> dict[str, Any]:
    """{"overall": counts, "by_period": [...], "by_channel": [...], "by_team": [...]};
    overall is always there (zeros for a quiet range)."""
    rows = await db.fetch(
        VOLUME_REPORT,
        query.start,
        query.end,
        query.interval,
        query.timezone,
        query.channel,
        query.team_id,
    )
    report = grouping_sets.split(rows, _OVERALL, GROUPS, _block)
    report.setdefault("overall", dict(EMPTY))
    return report
