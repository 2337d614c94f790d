"""The inbox list: conversations by view and filters, keyset-paginated.

The query is assembled from fixed fragments; every value travels as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contactcenter.db import Pool

SELECT = """
SELECT c.id, c.status, c.channel, c.priority, c.team_id, c.assignee_id, c.subject,
       c.waiting_since, c.assigned_at, c.snoozed_until, c.last_message_at, c.created_at,
       c.contact_id, ct.name AS contact_name, c.tier, c.is_complaint, c.tags,
       c.sla_due_at, coalesce(s.state, 'ok') AS sla_state,
       (SELECT left(m.body_text, 140) FROM messages m
        WHERE m.conversation_id = c.id AND NOT m.is_note
        ORDER BY m.id DESC LIMIT 1) AS preview
FROM conversations c
JOIN contacts ct ON ct.id = c.contact_id
LEFT JOIN conversation_sla s ON s.conversation_id = c.id
"""

# served first: higher priority, then the nearest SLA due time (none: last), then the
# conversation that has waited longest (migrations/0007 indexes exactly this order)
DUE_KEY = "coalesce(c.sla_due_at, 'infinity'::timestamptz)"
ORDER = f" ORDER BY c.priority DESC, {DUE_KEY}, c.created_at, c.id LIMIT "


@dataclass(frozen=True)
class InboxCursor:
    priority: int
    sla_due_at: datetime | None
    created_at: datetime
    id: int


@dataclass(frozen=True)
class InboxQuery:
    viewer_id: int
    viewer_team_ids: tuple[int, ...]
    viewer_sees_everything: bool
    view: str  # mine | team | unassigned | all
    statuses: tuple[str, ...]
    channel: str | None
    limit: int
    after: InboxCursor | None
    tiers: tuple[int, ...] = ()
    # SLA states (at_risk, breached) as the engine last set them at a warning or breach
    sla_states: tuple[str, ...] = ()
    # conversations carrying any of these tags
    tags: tuple[str, ...] = ()


def build(query: InboxQuery) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if not query.viewer_sees_everything:
        where.append(
            f"(c.assignee_id = {param(query.viewer_id)}"
            f" OR c.team_id = ANY({param(list(query.viewer_team_ids))}::bigint[]))"
        )
    if query.view == "mine":
        where.append(f"c.assignee_id = {param(query.viewer_id)}")
    elif query.view == "team":
        where.append(f"c.team_id = ANY({param(list(query.viewer_team_ids))}::bigint[])")
    elif query.view == "unassigned":
        where.append("c.assignee_id IS NULL")
    where.append(f"c.status = ANY({param(list(query.statuses))}::text[])")
    if query.channel is not None:
        where.append(f"c.channel = {param(query.channel)}")
    if query.tiers:
        where.append(f"c.tier = ANY({param(list(query.tiers))}::smallint[])")
    if query.sla_states:
        where.append(f"s.state = ANY({param(list(query.sla_states))}::text[])")
    if query.tags:
        where.append(f"c.tags && {param(list(query.tags))}::text[]")
    if query.after is not None:
        after = query.after
        p, d = param(after.priority), param(after.sla_due_at)
        t, i = param(after.created_at), param(after.id)
        where.append(
            f"(c.priority < {p} OR (c.priority = {p} AND ({DUE_KEY}, c.created_at, c.id)"
            f" > (coalesce({d}::timestamptz, 'infinity'::timestamptz), {t}, {i})))"
        )
    sql = SELECT + " WHERE " + " AND ".join(where) + ORDER + param(query.limit + 1)
    return sql, args


# The best plan depends on the values: a team's few open conversations or the whole history.
# A prepared statement is planned for its values only for its first five runs on a connection;
# then PostgreSQL may keep one generic plan, which cannot use the indexes of the active work
# (migrations/0013: partial, on the statuses) and reads the whole table. SET LOCAL keeps it to
# this query (and works behind PgBouncer in transaction mode, unlike a connection setting).
CUSTOM_PLAN = "SET LOCAL plan_cache_mode = force_custom_plan"


async def list_conversations(
    db: Pool, query: InboxQuery
) -> tuple[list[dict[str, Any]], InboxCursor | None]:
    sql, args = build(query)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(CUSTOM_PLAN)
        rows = [dict(r) for r in await conn.fetch(sql, *args)]
    if len(rows) <= query.limit:
        return rows, None
    rows = rows[: query.limit]
    last = rows[-1]
    return rows, InboxCursor(last["priority"], last["sla_due_at"], last["created_at"], last["id"])
