"""Prometheus metrics: what GET /metrics answers, the same whichever process is scraped.

The product runs several web and worker processes and a scrape reaches one web process, so
nothing here is counted in a process's memory:

- conversations, messages, send failures, SLA events and the time to assignment are read
  from PostgreSQL at scrape time (SNAPSHOT_* below);
- job durations are observed by every worker (``job_started`` / ``job_ended``, arq's
  on_job_start / on_job_end hooks) into one Redis hash, read at scrape time.

Counts read from tables are counters in effect (rows are only added) but go down when rows
are deleted (a contact erased with its conversations): Prometheus reads a fall as a reset.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from contactcenter.conns import REDIS_CALL_TIMEOUT_SECONDS, Conns
from contactcenter.domain.enums import Channel, ConversationStatus, Direction
from contactcenter.domain.sla import SlaKind, SlaStage

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# the statuses of conversations still being worked on (resolved and closed ones only grow)
LIVE_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING, ConversationStatus.SNOOZED)

# time to assignment: the distribution over the conversations created in this window
ASSIGNMENT_WINDOW = timedelta(hours=24)
ASSIGNMENT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                      14400.0, 28800.0, 86400.0)  # fmt: skip
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               120.0, 300.0, 600.0)  # fmt: skip

# one hash for every worker's observations: "<function>|le|<bound>" (observations in that
# bucket only; cumulated at scrape), "<function>|count", "<function>|sum" (seconds)
JOB_SECONDS_KEY = "cc:metrics:job_seconds"
_STARTED = "metrics_started"

# the queue of each team by the tier of what waits (every team and tier, zeros included)
WAITING_BY_TEAM_AND_TIER = """
SELECT t.id AS team_id, t.name AS team, r.rank AS tier, count(c.id) AS waiting
FROM teams t
CROSS JOIN tiers r
LEFT JOIN conversations c
       ON c.team_id = t.id AND c.tier = r.rank AND c.waiting_since IS NOT NULL
      AND c.assignee_id IS NULL AND c.status = 'open'
GROUP BY t.id, t.name, r.rank
ORDER BY t.id, r.rank
"""

LIVE_BY_STATUS = """
SELECT status, count(*) AS n FROM conversations WHERE status = ANY($1::text[]) GROUP BY status
"""

# notes are not messages: they go to no one
MESSAGES_BY_CHANNEL = """
SELECT channel, direction, count(*) AS n,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM messages WHERE NOT is_note
GROUP BY channel, direction
"""

SLA_EVENTS_BY_KIND = "SELECT kind, stage, count(*) AS n FROM sla_events GROUP BY kind, stage"

# from a conversation's creation (the customer's first message) to its agent, for those
# created in the window and assigned since; a conversation assigned twice counts its latest
TIME_TO_ASSIGNMENT = """
WITH waited AS MATERIALIZED (
    SELECT extract(epoch FROM assigned_at - created_at)::float8 AS seconds
    FROM conversations
    WHERE created_at >= $1::timestamptz AND assigned_at IS NOT NULL
)
SELECT (SELECT count(*) FROM waited) AS count,
       (SELECT coalesce(sum(seconds), 0) FROM waited) AS sum,
       ARRAY(SELECT count(w.seconds)
             FROM unnest($2::float8[]) WITH ORDINALITY AS b (le, i)
             LEFT JOIN waited w ON w.seconds <= b.le
             GROUP BY b.i ORDER BY b.i) AS cumulative
"""


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (one per bound, then +Inf as `count`), and the sum."""

    bounds: Sequence[float]
    cumulative: Sequence[int]
    count: int
    total: float

    def buckets(self) -> list[tuple[str, float]]:
        pairs = [(_bound(le), float(n)) for le, n in zip(self.bounds, self.cumulative, strict=True)]
        return [*pairs, ("+Inf", float(self.count))]


@dataclass(frozen=True)
class Snapshot:
    waiting: list[tuple[int, str, int, int]] = field(default_factory=list)
    live_by_status: dict[str, int] = field(default_factory=dict)
    messages: dict[tuple[str, str], int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    sla_events: dict[tuple[str, str], int] = field(default_factory=dict)
    time_to_assignment: Histogram | None = None
    jobs: dict[str, Histogram] = field(default_factory=dict)


async def render(conns: Conns) -> bytes:
    """The exposition text of everything, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(await read_snapshot(conns)))
    return generate_latest(registry)


async def read_snapshot(conns: Conns) -> Snapshot:
    since = conns.clock() - ASSIGNMENT_WINDOW
    async with (
        conns.db.acquire() as conn,
        conn.transaction(readonly=True, isolation="repeatable_read"),
    ):
        waiting = await conn.fetch(WAITING_BY_TEAM_AND_TIER)
        live = await conn.fetch(LIVE_BY_STATUS, [str(s) for s in LIVE_STATUSES])
        messages = await conn.fetch(MESSAGES_BY_CHANNEL)
        sla_events = await conn.fetch(SLA_EVENTS_BY_KIND)
        assigned = await conn.fetchrow(TIME_TO_ASSIGNMENT, since, list(ASSIGNMENT_BUCKETS))
    assert assigned is not None
    failures: dict[str, int] = {}
    for row in messages:
        failures[row["channel"]] = failures.get(row["channel"], 0) + row["failed"]
    return Snapshot(
        waiting=[(r["team_id"], r["team"], r["tier"], r["waiting"]) for r in waiting],
        live_by_status={r["status"]: r["n"] for r in live},
        messages={(r["channel"], r["direction"]): r["n"] for r in messages},
        failures=failures,
        sla_events={(r["kind"], r["stage"]): r["n"] for r in sla_events},
        time_to_assignment=Histogram(
            ASSIGNMENT_BUCKETS, assigned["cumulative"], assigned["count"], assigned["sum"]
        ),
        jobs=await _read_jobs(conns),
    )


async def _read_jobs(conns: Conns) -> dict[str, Histogram]:
    """The workers' job histograms; none (logged) when Redis does not answer, so a scrape
    still tells what PostgreSQL knows."""
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            # redis-py types its commands as sync-or-async; this client is async
            raw = await cast(Awaitable[dict[bytes, bytes]], conns.redis.hgetall(JOB_SECONDS_KEY))
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning("job durations not read", extra={"error": type(exc).__name__})
        return {}
    return job_histograms(raw)


class SnapshotCollector(Collector):
    """The metric families of one snapshot (prometheus_client collects synchronously, so the
    reading is done before, in read_snapshot)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        messages = CounterMetricFamily(
            "contactcenter_messages",
            "Messages received (inbound) and written to customers (outbound), notes excluded.",
            labels=["channel", "direction"],
        )
        for channel in Channel:
            for direction in Direction:
                messages.add_metric([channel, direction], s.messages.get((channel, direction), 0))
        yield messages

        failures = CounterMetricFamily(
            "contactcenter_send_failures",
            "Outbound messages that failed for good (status failed).",
            labels=["channel"],
        )
        for channel in Channel:
            failures.add_metric([channel], s.failures.get(channel, 0))
        yield failures

        waiting = GaugeMetricFamily(
            "contactcenter_conversations_waiting",
            "Open conversations in a team's queue with no agent, by team and customer tier.",
            labels=["team_id", "team", "tier"],
        )
        for team_id, team, tier, count in s.waiting:
            waiting.add_metric([str(team_id), team, str(tier)], count)
        yield waiting

        live = GaugeMetricFamily(
            "contactcenter_conversations",
            "Conversations not resolved or closed, by status.",
            labels=["status"],
        )
        for status in LIVE_STATUSES:
            live.add_metric([status], s.live_by_status.get(status, 0))
        yield live

        sla_events = CounterMetricFamily(
            "contactcenter_sla_events",
            "SLA warnings and breaches fired, by clock (kind) and stage.",
            labels=["kind", "stage"],
        )
        for kind in SlaKind:
            for stage in SlaStage:
                sla_events.add_metric([kind, stage], s.sla_events.get((kind, stage), 0))
        yield sla_events

        if s.time_to_assignment is not None:
            yield GaugeHistogramMetricFamily(
                "contactcenter_time_to_assignment_seconds",
                "From creation to agent, of the conversations created in the last 24 hours "
                "and assigned (a snapshot of a window, not a running counter).",
                buckets=s.time_to_assignment.buckets(),
                gsum_value=s.time_to_assignment.total,
            )

        jobs = HistogramMetricFamily(
            "contactcenter_job_duration_seconds",
            "How long background jobs ran, by job function, in every worker process.",
            labels=["function"],
        )
        for function, histogram in sorted(s.jobs.items()):
            jobs.add_metric([function], histogram.buckets(), histogram.total)
        yield jobs


def job_histograms(raw: Mapping[Any, Any]) -> dict[str, Histogram]:
    """The Redis hash of job observations as cumulative histograms, per function."""
    per_bucket: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        text = value.decode() if isinstance(value, bytes) else str(value)
        function, _, part = name.partition("|")
        if part == "count":
            counts[function] = int(text)
        elif part == "sum":
            sums[function] = float(text)
        elif part.startswith("le|"):
            per_bucket.setdefault(function, {})[part[3:]] = int(text)
    histograms = {}
    for function, count in counts.items():
        seen = per_bucket.get(function, {})
        running = 0
        cumulative = []
        for le in JOB_BUCKETS:
            running += seen.get(_bound(le), 0)
            cumulative.append(running)
        histograms[function] = Histogram(JOB_BUCKETS, cumulative, count, sums.get(function, 0.0))
    return histograms


def job_started(ctx: dict[str, Any]) -> None:
    """In arq's on_job_start: when the job began (ctx is the job's own copy)."""
    ctx[_STARTED] = time.monotonic()


async def job_ended(ctx: dict[str, Any]) -> None:
    """arq's on_job_end: add the job's run time to its function's histogram in Redis.

    arq does not pass the function's name; the job's definition is still in Redis at this
    point (arq deletes it just after), so it is read from there. Losing an observation is
    logged, never failing the job.
    """
    started = ctx.get(_STARTED)
    if started is None:
        return
    seconds = time.monotonic() - started
    redis = ctx["redis"]
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
            raw = await redis.get(job_key_prefix + ctx["job_id"])
            if raw is None:
                return
            function = deserialize_job(raw).function
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(JOB_SECONDS_KEY, f"{function}|le|{job_bucket(seconds)}", 1)
                pipe.hincrby(JOB_SECONDS_KEY, f"{function}|count", 1)
                pipe.hincrbyfloat(JOB_SECONDS_KEY, f"{function}|sum", seconds)
                await pipe.execute()
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        logger.warning(
            "job duration not recorded",
            extra={"job_id": ctx["job_id"], "error": type(exc).__name__},
        )


def job_bucket(seconds: float) -> str:
    """The field of the smallest bucket holding this duration ("+Inf" past the last)."""
    for le in JOB_BUCKETS:
        if seconds <= le:
            return _bound(le)
    return "+Inf"


def _bound(le: float) -> str:
    # as Prometheus writes bounds: 1.0, 0.005, 86400.0
    return "+Inf" if math.isinf(le) else repr(float(le))
