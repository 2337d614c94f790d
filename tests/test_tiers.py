"""Customer tiers against the real database: the recompute by thresholds and by shares, pins,
the history, one contact's value, the nightly schedule, concurrency, and the admin API."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.enums import Role, TierMethod
from contactcenter.domain.tiers import TierConfig, tier_for_value
from contactcenter.services import tiers
from contactcenter.settings import Settings
from contactcenter.store import locks
from contactcenter.store import tiers as tiers_store
from tests.helpers import bearer, eventually, make_agent, make_worker

D = Decimal


async def add_contacts(db: asyncpg.Pool, values: list[Decimal]) -> list[int]:
    """One contact per value, ids in the order given."""
    rows = await db.fetch(
        "INSERT INTO contacts (value) SELECT v FROM unnest($1::numeric[]) WITH ORDINALITY"
        " AS given (v, i) ORDER BY i RETURNING id",
        values,
    )
    return sorted(r["id"] for r in rows)


async def tiers_of(db: asyncpg.Pool, ids: list[int]) -> list[int]:
    rows = await db.fetch("SELECT id, tier FROM contacts WHERE id = any($1::bigint[])", ids)
    by_id = {r["id"]: r["tier"] for r in rows}
    return [by_id[i] for i in ids]


async def history_of(db: asyncpg.Pool, contact_id: int) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT from_tier, to_tier, reason, detail, changed_by FROM tier_changes"
            " WHERE contact_id = $1 ORDER BY id",
            contact_id,
        )
    )


async def use_method(db: asyncpg.Pool, method: TierMethod) -> TierConfig:
    await db.execute("UPDATE tier_settings SET method = $1", str(method))
    return await tiers_store.load_config(db)


def expected_by_shares(config: TierConfig, values: list[Decimal]) -> list[int]:
    customers = [v for v in values if v > 0]
    return [
        tier_for_value(config, v, rank=1 + sum(o > v for o in customers), base=len(customers))
        for v in values
    ]


BOUNDARIES = [D("100000"), D("99999.99"), D("20000"), D("19999.99"), D("2000"), D("1999.99")]


def two_hundred_values() -> list[Decimal]:
    rng = random.Random(5)
    spread = [D(round(rng.lognormvariate(8, 2.2) * 100)) / 100 for _ in range(174)]
    return [*BOUNDARIES, D("0.01"), *[D(0)] * 19, *spread]


async def test_by_thresholds_every_contact_gets_the_tier_of_its_value(
    conns: Conns, db: asyncpg.Pool
) -> None:
    config = await use_method(db, TierMethod.THRESHOLDS)
    values = two_hundred_values()
    ids = await add_contacts(db, values)

    report = await tiers.recompute(conns)

    got = await tiers_of(db, ids)
    assert got[:7] == [1, 2, 2, 3, 3, 4, 4]  # at and just under each threshold; 0.01
    assert got[7:26] == [4] * 19  # no value: the bottom tier
    assert got == [tier_for_value(config, v) for v in values]
    moved = sum(t != 4 for t in got)
    assert (report.examined, report.changed, report.recomputed) == (200, moved, moved)
    assert report.method == TierMethod.THRESHOLDS
    assert await db.fetchval("SELECT count(*) FROM tier_changes") == moved
    first_platinum = ids[0]
    assert [dict(r) for r in await history_of(db, first_platinum)] == [
        {
            "from_tier": 4,
            "to_tier": 1,
            "reason": "recompute",
            "detail": {"value": "100000.00", "method": "thresholds"},
            "changed_by": None,
        }
    ]


async def test_by_shares_the_top_customers_by_value_fill_each_tier_and_ties_go_up(
    conns: Conns, db: asyncpg.Pool
) -> None:
    config = await use_method(db, TierMethod.SHARES)
    # 180 customers with a value and 20 without: 1 % of 180 is 1.8 (1 platinum), 5 % is 9,
    # 20 % is 36. Positions 8 to 11 tie across the gold boundary, 36 and 37 across silver's.
    top = [D(10_000 - i) for i in range(7)]  # positions 1..7
    tie_gold = [D(5000)] * 4  # positions 8..11: all gold
    middle = [D(4000 - i) for i in range(24)]  # positions 12..35
    tie_silver = [D(1000)] * 2  # positions 36, 37: both silver
    rest = [D(500 - i) for i in range(143)]  # positions 38..180
    values = [*top, *tie_gold, *middle, *tie_silver, *rest, *[D(0)] * 20]
    random.Random(7).shuffle(values)
    ids = await add_contacts(db, values)

    report = await tiers.recompute(conns)

    got = await tiers_of(db, ids)
    assert got == expected_by_shares(config, values)
    by_value = dict(zip(values, got, strict=False))
    assert by_value[D(10_000)] == 1 and by_value[D(9999)] == 2
    assert by_value[D(5000)] == 2 and by_value[D(4000)] == 3
    assert by_value[D(1000)] == 3 and by_value[D(500)] == 4 and by_value[D(0)] == 4
    assert [got.count(t) for t in (1, 2, 3, 4)] == [1, 10, 26, 163]
    assert report.bounds == (D("10000.00"), D("5000.00"), D("1000.00"))


async def test_a_pin_wins_survives_recomputes_and_unpinning_returns_to_the_computed_tier(
    conns: Conns, db: asyncpg.Pool
) -> None:
    await use_method(db, TierMethod.THRESHOLDS)
    admin_id, _ = await make_agent(db, role=Role.ADMIN, name="Ada")
    ada = Agent(admin_id, "Ada", "ada@example.com", Role.ADMIN, ())
    [small, large] = await add_contacts(db, [D(10), D(500_000)])
    await tiers.recompute(conns)

    pinned = await tiers.pin(conns, ada, small, 1, "our biggest reseller")
    assert (pinned.tier, pinned.computed_tier, pinned.pinned_tier, pinned.changed) == (
        1,
        4,
        1,
        True,
    )
    # a pin below the computed tier wins too
    await tiers.pin(conns, ada, large, 3, None)
    again = await tiers.recompute(conns)
    assert again.changed == 0
    assert await tiers_of(db, [small, large]) == [1, 3]

    # the value moves the computed tier under the pin, silently
    await db.execute("UPDATE contacts SET value = 30000 WHERE id = $1", small)
    moved = await tiers.recompute(conns)
    assert (moved.recomputed, moved.changed) == (1, 0)
    assert await db.fetchval("SELECT computed_tier FROM contacts WHERE id = $1", small) == 2

    unpinned = await tiers.pin(conns, ada, small, None, "contract ended")
    assert (unpinned.tier, unpinned.pinned_tier) == (2, None)
    # pinning what is pinned already, or unpinning the unpinned, changes and records nothing
    assert not (await tiers.pin(conns, ada, small, None, "again")).changed
    assert not (await tiers.pin(conns, ada, large, 3, "again")).changed

    assert [
        (r["from_tier"], r["to_tier"], r["reason"], r["detail"], r["changed_by"])
        for r in await history_of(db, small)
    ] == [
        (4, 1, "pin", {"note": "our biggest reseller"}, admin_id),
        (1, 2, "unpin", {"note": "contract ended"}, admin_id),
    ]
    assert [(r["from_tier"], r["to_tier"], r["reason"]) for r in await history_of(db, large)] == [
        (4, 1, "recompute"),
        (1, 3, "pin"),
    ]


async def test_a_second_recompute_changes_nothing_and_writes_no_history(
    conns: Conns, db: asyncpg.Pool
) -> None:
    await add_contacts(db, two_hundred_values())
    first = await tiers.recompute(conns)
    assert first.changed > 0
    rows = await db.fetch("SELECT id, tier, computed_tier, updated_at FROM contacts ORDER BY id")
    history = await db.fetchval("SELECT count(*) FROM tier_changes")

    second = await tiers.recompute(conns)

    assert (second.examined, second.changed, second.recomputed) == (200, 0, 0)
    assert await db.fetch(
        "SELECT id, tier, computed_tier, updated_at FROM contacts ORDER BY id"
    ) == (rows)
    assert await db.fetchval("SELECT count(*) FROM tier_changes") == history


async def test_two_recomputes_at_once_write_each_change_once(
    conns: Conns, db: asyncpg.Pool
) -> None:
    config = await use_method(db, TierMethod.SHARES)
    values = two_hundred_values()
    ids = await add_contacts(db, values)

    reports = await asyncio.gather(tiers.recompute(conns), tiers.recompute(conns))

    expected = expected_by_shares(config, values)
    moved = sum(t != 4 for t in expected)
    assert sorted(r.changed for r in reports) == [0, moved]
    assert await tiers_of(db, ids) == expected
    assert await db.fetchval("SELECT count(*) FROM tier_changes") == moved
    assert await db.fetchval("SELECT count(DISTINCT contact_id) = count(*) FROM tier_changes")


async def test_a_value_or_pin_waits_for_a_running_recompute(conns: Conns, db: asyncpg.Pool) -> None:
    """A recompute's history names each contact's tier from before it: no value or pin may
    change under it (they wait for it, and it for them)."""
    await use_method(db, TierMethod.THRESHOLDS)
    admin_id, _ = await make_agent(db, role=Role.ADMIN)
    admin = Agent(admin_id, "Admin", "admin@example.com", Role.ADMIN, ())
    [contact] = await add_contacts(db, [D(0)])

    async def set_value() -> tiers.TierChange | None:
        async with db.acquire() as conn, conn.transaction():
            return await tiers.set_value(conn, contact, D(50_000), datetime.now(UTC))

    async with db.acquire() as recompute:
        running = recompute.transaction()
        await running.start()
        await locks.tier_rules(recompute)
        waiting = [
            asyncio.create_task(set_value()),
            asyncio.create_task(tiers.pin(conns, admin, contact, 3, None)),
        ]
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        )
        assert not any(task.done() for task in waiting)
        await running.rollback()
    await asyncio.gather(*waiting)
    assert await tiers_of(db, [contact]) == [3]
    assert [r["reason"] for r in await history_of(db, contact)] in (
        ["value", "pin"],
        ["pin"],  # the pin came first: the value moved the computed tier under it
    )


async def test_a_new_value_moves_the_contacts_tier_with_the_reason_value(
    conns: Conns, db: asyncpg.Pool
) -> None:
    await use_method(db, TierMethod.THRESHOLDS)
    [contact] = await add_contacts(db, [D(0)])
    now = datetime(2025, 5, 1, 12, tzinfo=UTC)

    async def set_value(value: str) -> tiers.TierChange | None:
        async with db.acquire() as conn, conn.transaction():
            return await tiers.set_value(conn, contact, D(value), now)

    assert await set_value("25000") == tiers.TierChange(contact, 4, 2)
    assert await set_value("25000") is None  # the same value: nothing to do
    assert await set_value("21000") is None  # still gold: no history
    assert await set_value("0") == tiers.TierChange(contact, 2, 4)
    assert [
        (r["from_tier"], r["to_tier"], r["reason"], r["detail"])
        for r in await history_of(db, contact)
    ] == [
        (4, 2, "value", {"value": "25000.00", "method": "thresholds"}),
        (2, 4, "value", {"value": "0.00", "method": "thresholds"}),
    ]
    assert await db.fetchval("SELECT value FROM contacts WHERE id = $1", contact) == D(0)


async def test_by_shares_a_new_value_is_placed_in_the_current_ranking(
    conns: Conns, db: asyncpg.Pool
) -> None:
    await use_method(db, TierMethod.SHARES)
    # 100 customers valued 1..100: 100 is platinum (top 1), 99..96 gold, 95..81 silver
    ids = await add_contacts(db, [D(v) for v in range(1, 101)])
    [newcomer] = await add_contacts(db, [D(0)])
    await tiers.recompute(conns)
    async with db.acquire() as conn, conn.transaction():
        change = await tiers.set_value(conn, newcomer, D(1000), datetime.now(UTC))
    # first of 101 customers: the top 1 % is one customer, the newcomer
    assert change == tiers.TierChange(newcomer, 4, 1)
    # the others move at the next recompute, which settles the ranking
    assert await tiers_of(db, [ids[99], ids[95], ids[80]]) == [1, 2, 3]
    settled = await tiers.recompute(conns)
    assert settled.changed == 3
    assert await tiers_of(db, [ids[99], ids[95], ids[80]]) == [2, 3, 4]


async def test_an_import_sets_many_values_in_one_call(conns: Conns, db: asyncpg.Pool) -> None:
    config = await use_method(db, TierMethod.SHARES)
    ids = await add_contacts(db, [D(0)] * 50)
    values = {contact: D(10 * (i + 1)) for i, contact in enumerate(ids)}
    values[10**12] = D(5)  # no such contact: skipped
    async with db.acquire() as conn, conn.transaction():
        changes = await tiers.set_values(conn, values, datetime.now(UTC), config)
    # 50 customers: 1 % is nobody, 5 % is 2 (gold), 20 % is 10 (silver)
    assert [(c.from_tier, c.to_tier) for c in changes] == [(4, 3)] * 8 + [(4, 2)] * 2
    assert [c.contact_id for c in changes] == ids[40:]
    assert await tiers_of(db, ids) == [4] * 40 + [3] * 8 + [2] * 2
    assert await db.fetchval("SELECT count(*) FROM tier_changes WHERE reason = 'value'") == 10
    # the same values again change nothing
    async with db.acquire() as conn, conn.transaction():
        assert await tiers.set_values(conn, values, datetime.now(UTC), config) == []
    assert (await tiers.recompute(conns)).changed == 0


async def test_the_nightly_run_recomputes_once_a_day_and_catches_up_a_missed_night(
    db: asyncpg.Pool, conns: Conns, settings: Settings
) -> None:
    await use_method(db, TierMethod.THRESHOLDS)
    [contact] = await add_contacts(db, [D(50_000)])
    hour = settings.tier_recompute_hour
    night = datetime(2025, 6, 2, hour, tzinfo=UTC)

    def at(moment: datetime) -> Conns:
        return replace(conns, clock=lambda: moment)

    first = await tiers.recompute_if_due(at(night + timedelta(minutes=10)))
    assert first is not None and first.changed == 1  # never ran: due
    assert await tiers.recompute_if_due(at(night + timedelta(hours=12))) is None
    assert await tiers.recompute_if_due(at(night + timedelta(days=1, minutes=-1))) is None
    await db.execute("UPDATE contacts SET value = 500000 WHERE id = $1", contact)
    # no worker was up for two nights: the first check after catches up, once
    late = night + timedelta(days=2, hours=9)
    caught_up = await tiers.recompute_if_due(at(late))
    assert caught_up is not None and caught_up.changed == 1
    assert await tiers.recompute_if_due(at(late + timedelta(minutes=10))) is None
    assert await db.fetchval("SELECT recomputed_at FROM tier_settings") == late
    assert await tiers_of(db, [contact]) == [1]


async def test_the_worker_runs_the_nightly_recompute_when_due(
    db: asyncpg.Pool, settings: Settings
) -> None:
    await use_method(db, TierMethod.THRESHOLDS)
    [contact] = await add_contacts(db, [D(150_000)])
    night = datetime(2025, 6, 2, settings.tier_recompute_hour, 5, tzinfo=UTC)
    await db.execute("UPDATE tier_settings SET recomputed_at = $1", night - timedelta(hours=1))

    worker = make_worker(settings, cron=True, burst=True, clock=lambda: night)
    try:
        await worker.async_run()
    finally:
        await worker.close()

    assert await db.fetchval("SELECT recomputed_at FROM tier_settings") == night
    assert await tiers_of(db, [contact]) == [1]


async def test_a_change_of_the_rules_makes_the_next_check_recompute_but_labels_do_not(
    conns: Conns, db: asyncpg.Pool
) -> None:
    config = await use_method(db, TierMethod.SHARES)
    await tiers.recompute(conns)
    stamped = await db.fetchval("SELECT recomputed_at FROM tier_settings")
    assert stamped is not None

    # swapping two labels works despite their unique index
    gold, silver = config.tiers[1], config.tiers[2]
    swapped = replace(
        config,
        tiers=(
            config.tiers[0],
            replace(gold, label=silver.label),
            replace(silver, label=gold.label),
            config.tiers[3],
        ),
    )
    try:
        await tiers.save_config(conns, swapped)
        assert [t.label for t in (await tiers_store.load_config(db)).tiers] == [
            "platinum",
            "silver",
            "gold",
            "bronze",
        ]
        assert await db.fetchval("SELECT recomputed_at FROM tier_settings") == stamped

        await tiers.save_config(conns, replace(swapped, method=TierMethod.THRESHOLDS))
        assert await db.fetchval("SELECT recomputed_at FROM tier_settings") is None
    finally:
        # back to the labels the next test's reset expects row by row
        await tiers.save_config(conns, config)


# --- the admin API ----------------------------------------------------------------------


async def test_admins_configure_tiers_supervisors_read_and_agents_are_refused(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    _, agent = await make_agent(db, role=Role.AGENT)

    read = await client.get("/v1/admin/tiers", headers=bearer(supervisor))
    assert read.status == 200
    assert await read.json() == {
        "method": "shares",
        "tiers": [
            {
                "rank": rank,
                "label": label,
                "min_value": low,
                "share_percent": share,
                "sla_policy_id": None,
            }
            for rank, label, low, share in (
                (1, "platinum", "100000.00", "1"),
                (2, "gold", "20000.00", "4"),
                (3, "silver", "2000.00", "15"),
                (4, "bronze", None, None),
            )
        ],
        "recomputed_at": None,
    }
    assert (await client.get("/v1/admin/tiers", headers=bearer(agent))).status == 403
    body = {
        "method": "thresholds",
        "tiers": [
            {"rank": 1, "label": " Diamond ", "min_value": 50000.5},
            {"rank": 2, "label": "Gold", "min_value": "10000"},
            {"rank": 3, "label": "Silver", "min_value": 500},
            {"rank": 4, "label": "Everyone"},
        ],
    }
    for token in (supervisor, agent):
        refused = await client.put("/v1/admin/tiers", json=body, headers=bearer(token))
        assert refused.status == 403

    saved = await client.put("/v1/admin/tiers", json=body, headers=bearer(admin))
    assert saved.status == 200, await saved.text()
    view = await saved.json()
    assert view["method"] == "thresholds"
    assert [(t["label"], t["min_value"], t["share_percent"]) for t in view["tiers"]] == [
        ("Diamond", "50000.50", None),
        ("Gold", "10000.00", None),
        ("Silver", "500.00", None),
        ("Everyone", None, None),
    ]
    assert (await (await client.get("/v1/admin/tiers", headers=bearer(admin))).json()) == view


async def test_an_invalid_configuration_is_refused_with_its_code_and_nothing_changes(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    _, admin = await make_agent(db, role=Role.ADMIN)
    before = await (await client.get("/v1/admin/tiers", headers=bearer(admin))).json()

    def tiers_with(**changes: Any) -> list[dict[str, Any]]:
        base = [
            {"rank": 1, "label": "a", "share_percent": 10},
            {"rank": 2, "label": "b", "share_percent": 20},
            {"rank": 3, "label": "c", "share_percent": 30},
            {"rank": 4, "label": "d"},
        ]
        for key, value in changes.items():
            rank, field = key.split("_", 1)
            base[int(rank[1:]) - 1][field] = value
        return base

    cases = [
        ({"method": "shares", "tiers": tiers_with(r2_label="A")}, "tier_label_duplicate"),
        ({"method": "shares", "tiers": tiers_with(r2_label="  ")}, "tier_label_empty"),
        ({"method": "shares", "tiers": tiers_with(r2_label="x" * 41)}, "tier_label_too_long"),
        ({"method": "shares", "tiers": tiers_with(r3_share_percent=70.5)}, "tier_shares_over_100"),
        ({"method": "shares", "tiers": tiers_with(r1_share_percent=0)}, "tier_share_not_positive"),
        ({"method": "shares", "tiers": tiers_with(r1_share_percent=None)}, "tier_share_required"),
        (
            {"method": "shares", "tiers": tiers_with(r1_share_percent="1e2")},
            "invalid_share_percent",
        ),
        (
            {"method": "shares", "tiers": tiers_with(r4_share_percent=5)},
            "bottom_tier_takes_the_rest",
        ),
        ({"method": "shares", "tiers": tiers_with()[:3]}, "tier_ranks"),
        ({"method": "thresholds", "tiers": tiers_with()}, "tier_min_value_required"),
        (
            {
                "method": "thresholds",
                "tiers": tiers_with(r1_min_value=10, r2_min_value=10, r3_min_value=1),
            },
            "tier_min_values_not_decreasing",
        ),
        (
            {"method": "thresholds", "tiers": tiers_with(r1_min_value=-5)},
            "invalid_min_value",
        ),
        (
            {"method": "thresholds", "tiers": tiers_with(r1_min_value="1000000000000000")},
            "invalid_min_value",
        ),
        ({"method": "ranks", "tiers": tiers_with()}, "validation_error"),
        ({"method": "shares", "tiers": tiers_with(r1_rank=True)}, "validation_error"),
        ({"method": "shares", "tiers": tiers_with(r1_colour="red")}, "validation_error"),
    ]
    for body, code in cases:
        refused = await client.put("/v1/admin/tiers", json=body, headers=bearer(admin))
        assert refused.status == 422, (body, await refused.text())
        assert (await refused.json())["error"]["code"] == code, body
    assert await (await client.get("/v1/admin/tiers", headers=bearer(admin))).json() == before


async def test_an_admin_recomputes_pins_and_reads_a_contacts_history(
    client: TestClient[Any, Any], db: asyncpg.Pool
) -> None:
    admin_id, admin = await make_agent(db, role=Role.ADMIN, name="Ada")
    _, supervisor = await make_agent(db, role=Role.SUPERVISOR)
    _, agent = await make_agent(db, role=Role.AGENT)
    await use_method(db, TierMethod.THRESHOLDS)
    [contact, other] = await add_contacts(db, [D(25_000), D(5)])

    assert (
        await client.post("/v1/admin/tiers/recompute", headers=bearer(supervisor))
    ).status == 403
    done = await client.post("/v1/admin/tiers/recompute", headers=bearer(admin))
    assert done.status == 200
    report = await done.json()
    assert (report["examined"], report["changed"], report["method"]) == (2, 1, "thresholds")
    assert isinstance(report["duration_ms"], int)
    view = await (await client.get("/v1/admin/tiers", headers=bearer(admin))).json()
    assert view["recomputed_at"] == report["recomputed_at"]

    url = f"/v1/admin/contacts/{contact}/tier"
    pinned = await client.put(url, json={"tier": 1, "note": "VIP"}, headers=bearer(admin))
    assert pinned.status == 200
    assert await pinned.json() == {
        "contact_id": contact,
        "tier": 1,
        "computed_tier": 2,
        "pinned_tier": 1,
        "changed": True,
    }
    for body in ({"tier": 5}, {"tier": 0}, {"tier": "1"}, {"tier": True}, {}, {"note": "x"}):
        refused = await client.put(url, json=body, headers=bearer(admin))
        assert refused.status == 422, body
    assert (await client.put(url, json={"tier": 2}, headers=bearer(supervisor))).status == 403
    missing = await client.put(
        "/v1/admin/contacts/999999/tier", json={"tier": 1}, headers=bearer(admin)
    )
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "contact_not_found"
    unpinned = await client.put(url, json={"tier": None}, headers=bearer(admin))
    assert (await unpinned.json())["tier"] == 2

    history_url = f"/v1/admin/contacts/{contact}/tier-history"
    assert (await client.get(history_url, headers=bearer(agent))).status == 403
    page = await client.get(f"{history_url}?limit=2", headers=bearer(supervisor))
    assert page.status == 200
    first = await page.json()
    assert [(i["reason"], i["from_tier"], i["to_tier"]) for i in first["items"]] == [
        ("unpin", 1, 2),
        ("pin", 2, 1),
    ]
    assert first["items"][1]["changed_by"] == {"id": admin_id, "name": "Ada"}
    assert first["items"][1]["detail"] == {"note": "VIP"}
    rest = await (
        await client.get(
            f"{history_url}?limit=2&cursor={first['next_cursor']}", headers=bearer(admin)
        )
    ).json()
    assert [(i["reason"], i["changed_by"]) for i in rest["items"]] == [("recompute", None)]
    assert rest["next_cursor"] is None
    assert (
        await (
            await client.get(f"/v1/admin/contacts/{other}/tier-history", headers=bearer(admin))
        ).json()
    ) == {
        "items": [],
        "next_cursor": None,
    }
    for query, status in (("?limit=0", 422), ("?limit=x", 422), ("?cursor=abc", 400)):
        bad = await client.get(f"{history_url}{query}", headers=bearer(admin))
        assert bad.status == status, query
    gone = await client.get("/v1/admin/contacts/999999/tier-history", headers=bearer(admin))
    assert gone.status == 404
