"""GET /metrics: the Prometheus text of conversations, messages, SLA events and jobs, read from
PostgreSQL and Redis at scrape time, for supervisors and admins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from contactcenter import metrics
from contactcenter.clock import utc_now
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel, IdentityKind, Role
from contactcenter.domain.messages import Identity, InboundMessage
from contactcenter.services.ingest import ingest
from tests.helpers import bearer, call, error_code, make_agent, new_client_id
from tests.routing_helpers import customer_writes, default_team, set_tier

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient[Any, Any], headers: dict[str, str]) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def sms_customer_writes(conns: Conns, phone: str) -> int:
    result = await ingest(
        conns,
        InboundMessage(
            channel=Channel.SMS,
            external_id=f"SM{new_client_id()}",
            text="Is my order on its way?",
            identities=(Identity(IdentityKind.PHONE, phone),),
        ),
    )
    return result.conversation_id


async def test_a_scrape_counts_what_happened(
    client: TestClient[Any, Any],
    conns: Conns,
    db: asyncpg.Pool,
    admin: dict[str, str],
    run_jobs: Callable[..., Awaitable[int]],
) -> None:
    general = await default_team(db)
    # one agent with room for one conversation: the web chat gets them, the SMS waits
    agent_id, _ = await make_agent(db, name="Ann", capacity=1)
    web_id, _ = await customer_writes(conns, "my parcel is late")
    await run_jobs()
    assert await db.fetchval("SELECT assignee_id FROM conversations WHERE id = $1", web_id) == (
        agent_id
    )
    sms_id = await sms_customer_writes(conns, "+14155550100")
    sms_contact = await db.fetchval("SELECT contact_id FROM conversations WHERE id = $1", sms_id)
    await set_tier(db, sms_contact, 2)
    await run_jobs()
    # a reply on SMS with no number to send from fails for good
    status, body = await call(
        client, "POST", f"/v1/conversations/{sms_id}/replies", admin, {"text": "On its way"}
    )
    assert status == 202, body
    await run_jobs()
    assert await db.fetchval("SELECT status FROM messages WHERE id = $1", body["message_id"]) == (
        "failed"
    )
    # a breach the SLA engine recorded
    await db.execute(
        """
        INSERT INTO sla_events (conversation_id, kind, stage, due_at, fired_at, tier, channel)
        VALUES ($1, 'first_response', 'breach', now(), now(), 2, 'sms')
        """,
        sms_id,
    )

    samples = await scrape(client, admin)

    messages = series(samples, "contactcenter_messages_total")
    assert messages == {
        (("channel", channel), ("direction", direction)): float(count)
        for (channel, direction), count in {
            ("web", "inbound"): 1,
            ("web", "outbound"): 0,
            ("email", "inbound"): 0,
            ("email", "outbound"): 0,
            ("sms", "inbound"): 1,
            ("sms", "outbound"): 1,
        }.items()
    }
    assert series(samples, "contactcenter_send_failures_total") == {
        (("channel", "web"),): 0.0,
        (("channel", "email"),): 0.0,
        (("channel", "sms"),): 1.0,
    }
    waiting = series(samples, "contactcenter_conversations_waiting")
    assert waiting == {
        (("team", "General"), ("team_id", str(general)), ("tier", str(tier))): (
            1.0 if tier == 2 else 0.0
        )
        for tier in (1, 2, 3, 4)
    }
    assert series(samples, "contactcenter_conversations") == {
        (("status", "open"),): 2.0,
        (("status", "pending"),): 0.0,
        (("status", "snoozed"),): 0.0,
    }
    sla_events = series(samples, "contactcenter_sla_events_total")
    assert len(sla_events) == 6
    assert value(
        samples, "contactcenter_sla_events_total", kind="first_response", stage="breach"
    ) == (1.0)
    assert sum(sla_events.values()) == 1.0
    # the web chat was assigned; the SMS still waits
    assert value(samples, "contactcenter_time_to_assignment_seconds_bucket", le="+Inf") == 1.0
    assert value(samples, "contactcenter_time_to_assignment_seconds_gcount") == 1.0
    # every job the workers ran, by function: two routings and one send
    job = "contactcenter_job_duration_seconds"
    assert value(samples, f"{job}_count", function="route_conversation") == 2.0
    assert value(samples, f"{job}_bucket", function="route_conversation", le="+Inf") == 2.0
    assert value(samples, f"{job}_count", function="send_message") == 1.0
    assert value(samples, f"{job}_sum", function="send_message") > 0.0


async def test_time_to_assignment_buckets_the_last_day(
    client: TestClient[Any, Any], conns: Conns, db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    now = utc_now()
    waits = {"quick": 10, "slow": 400, "older": 20}
    ids = {name: (await customer_writes(conns, name))[0] for name in [*waits, "waiting"]}
    agent_id, _ = await make_agent(db, capacity=5)
    for name, seconds in waits.items():
        created = now - timedelta(hours=25 if name == "older" else 1)
        await db.execute(
            "UPDATE conversations SET created_at = $2, assigned_at = $3, assignee_id = $4,"
            " route_requested_at = NULL WHERE id = $1",
            ids[name],
            created,
            created + timedelta(seconds=seconds),
            agent_id,
        )

    samples = await scrape(client, admin)

    buckets = {
        dict(labels)["le"]: v
        for labels, v in series(samples, "contactcenter_time_to_assignment_seconds_bucket").items()
    }
    # created more than 24 h ago: out of the window; not yet assigned: not a wait yet
    assert buckets == {
        "5.0": 0.0,
        "15.0": 1.0,
        "30.0": 1.0,
        "60.0": 1.0,
        "120.0": 1.0,
        "300.0": 1.0,
        "600.0": 2.0,
        "1800.0": 2.0,
        "3600.0": 2.0,
        "7200.0": 2.0,
        "14400.0": 2.0,
        "28800.0": 2.0,
        "86400.0": 2.0,
        "+Inf": 2.0,
    }
    assert value(samples, "contactcenter_time_to_assignment_seconds_gcount") == 2.0
    assert value(samples, "contactcenter_time_to_assignment_seconds_gsum") == 410.0


async def test_an_empty_service_answers_zeros(
    client: TestClient[Any, Any], db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    samples = await scrape(client, admin)
    assert set(series(samples, "contactcenter_messages_total").values()) == {0.0}
    assert set(series(samples, "contactcenter_conversations_waiting").values()) == {0.0}
    assert value(samples, "contactcenter_time_to_assignment_seconds_bucket", le="+Inf") == 0.0
    assert series(samples, "contactcenter_job_duration_seconds_count") == {}


async def test_only_supervisors_and_admins_read_metrics(
    client: TestClient[Any, Any], db: asyncpg.Pool, admin: dict[str, str]
) -> None:
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    _, agent = await make_agent(db, role=Role.AGENT)
    assert (await client.get("/metrics", headers=bearer(supervisor))).status == 200
    status, body = await call(client, "GET", "/metrics", bearer(agent))
    assert (status, error_code(body)) == (403, "forbidden")
    status, body = await call(client, "GET", "/metrics", {})
    assert (status, error_code(body)) == (401, "missing_token")
    status, body = await call(client, "GET", "/metrics", bearer("not-a-token"))
    assert (status, error_code(body)) == (401, "invalid_token")


def test_job_observations_become_cumulative_buckets() -> None:
    assert metrics.job_bucket(0.005) == "0.005"
    assert metrics.job_bucket(0.0051) == "0.01"
    assert metrics.job_bucket(601) == "+Inf"
    raw = {
        b"send_message|le|0.01": b"2",
        b"send_message|le|1.0": b"1",
        b"send_message|le|+Inf": b"1",
        b"send_message|count": b"4",
        b"send_message|sum": b"700.5",
    }
    histogram = metrics.job_histograms(raw)["send_message"]
    buckets = dict(histogram.buckets())
    assert (buckets["0.005"], buckets["0.01"], buckets["0.5"], buckets["1.0"]) == (0, 2, 2, 3)
    assert (buckets["600.0"], buckets["+Inf"], histogram.total) == (3, 4, 700.5)
