"""Customer tiers: the configuration, the recompute (on demand and nightly), one contact's
value, and pins.

Locks (store/locks.py): a recompute or a change of the rules holds `tier_rules` (exclusive);
a change of one contact's value or pin holds `tier_change` (shared), taken before any contact
row. So two recomputes never run at once (the second finds nothing left to change), and no
value or pin changes under a recompute, whose history would otherwise name a stale tier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Connection
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.enums import TierChangeReason, TierMethod
from contactcenter.domain.errors import Invalid, NotFound
from contactcenter.domain.tiers import TierConfig, recompute_due, validate
from contactcenter.services import audit
from contactcenter.store import locks, sla_policies
from contactcenter.store import tiers as store

logger = logging.getLogger(__name__)

# a recompute of a million contacts takes seconds; this is the ceiling of its statement (and
# of waiting for another recompute to finish), above the pool's default command timeout
RECOMPUTE_TIMEOUT_SECONDS = 600.0
AUDIT_ENTITY = "tiers"


@dataclass(frozen=True)
class RecomputeReport:
    method: TierMethod
    examined: int
    # contacts whose tier in force changed (one tier_changes row each)
    changed: int
    # contacts whose computed tier changed, pinned ones included
    recomputed: int
    duration_ms: int
    recomputed_at: datetime
    # the value that opened tiers 1..3 in this run (by shares: the value at each boundary)
    bounds: tuple[Decimal | None, Decimal | None, Decimal | None]


@dataclass(frozen=True)
class TierChange:
    contact_id: int
    from_tier: int
    to_tier: int


async def load_config(conns: Conns) -> tuple[TierConfig, datetime | None]:
    async with conns.db.acquire() as conn, conn.transaction(readonly=True):
        return await store.load_config(conn), await store.recomputed_at(conn)


async def save_config(
    conns: Conns,
    config: TierConfig,
    *,
    keep_sla_policy: Collection[int] = (),
    by: Agent | None = None,
) -> TierConfig:
    """Validate and store a whole configuration. Contacts are not recomputed here: a change of
    method, thresholds or shares makes the next scheduled check recompute them (POST
    /v1/admin/tiers/recompute does it at once).

    Each tier's default SLA policy is set as given (None: no default), except for the ranks in
    `keep_sla_policy`, which keep the stored one. A policy that does not exist is Invalid
    (unknown_sla_policy); those named are held until the configuration is written. The
    change is in the audit log (entity `tiers`: the method and each tier that changed)."""
    config = validate(config)
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.tier_rules(conn, wait_seconds=RECOMPUTE_TIMEOUT_SECONDS)
        stored = await store.load_config(conn)
        if keep_sla_policy:
            policies = {t.rank: t.sla_policy_id for t in stored.tiers}
            config = TierConfig(
                config.method,
                tuple(
                    replace(t, sla_policy_id=policies[t.rank]) if t.rank in keep_sla_policy else t
                    for t in config.tiers
                ),
            )
        await _check_sla_policies(conn, config)
        await store.save_config(conn, config, conns.clock())
        await audit.record(
            conn,
            by,
            AuditAction.UPDATE,
            AUDIT_ENTITY,
            None,
            before=_audited(stored),
            after=_audited(config),
        )
    logger.info("tier configuration saved", extra={"method": str(config.method)})
    return config


def _audited(config: TierConfig) -> dict[str, object]:
    """A configuration as the audit log keeps it: one key per tier, so an update shows only
    the tiers that changed."""
    return {"method": config.method} | {f"tier_{t.rank}": asdict(t) for t in config.tiers}


async def _check_sla_policies(conn: Connection, config: TierConfig) -> None:
    named = {t.sla_policy_id for t in config.tiers if t.sla_policy_id is not None}
    if not named:
        return
    found = await sla_policies.existing(conn, sorted(named), lock=True)
    for tier in config.tiers:
        if tier.sla_policy_id is not None and tier.sla_policy_id not in found:
            raise Invalid(
                f"no such SLA policy: {tier.sla_policy_id}",
                code="unknown_sla_policy",
                details={"rank": tier.rank},
            )


async def _recompute(conn: Connection, now: datetime) -> RecomputeReport:
    started = time.perf_counter()
    config = await store.load_config(conn)
    done = await store.recompute(conn, config, now, limit_seconds=RECOMPUTE_TIMEOUT_SECONDS)
    report = RecomputeReport(
        method=config.method,
        examined=done.examined,
        changed=done.changed,
        recomputed=done.recomputed,
        duration_ms=round((time.perf_counter() - started) * 1000),
        recomputed_at=now,
        bounds=done.bounds,
    )
    logger.info(
        "tiers recomputed",
        extra={
            "method": str(report.method),
            "examined": report.examined,
            "changed": report.changed,
            "duration_ms": report.duration_ms,
        },
    )
    return report


async def recompute(conns: Conns, *, by: Agent | None = None) -> RecomputeReport:
    """Recompute every contact's tier now, in one transaction; one asked for by an admin is
    in the audit log (what was examined and changed)."""
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.tier_rules(conn, wait_seconds=RECOMPUTE_TIMEOUT_SECONDS)
        report = await _recompute(conn, conns.clock())
        if by is not None:
            counts = {"examined": report.examined, "changed": report.changed}
            await audit.record(conn, by, AuditAction.OTHER, "tiers_recompute", None, after=counts)
        return report


async def recompute_if_due(conns: Conns) -> RecomputeReport | None:
    """The nightly run: recompute when the last recompute happened before the latest
    scheduled time (TIER_RECOMPUTE_HOUR, UTC), else nothing. Checked often, so a night with no
    worker up is caught up at the next check; under the lock, so several workers checking at
    once recompute once."""
    now = conns.clock()
    async with conns.db.acquire() as conn:
        async with conn.transaction():
            await locks.tier_rules(conn, wait_seconds=RECOMPUTE_TIMEOUT_SECONDS)
            last = await store.recomputed_at(conn)
            if not recompute_due(last, now, conns.settings.tier_recompute_hour):
                return None
            report = await _recompute(conn, now)
        if report.recomputed:
            # the rows it moved lost their all-visible bit, and a day of value changes by
            # shares counts the customers by an index-only scan that needs it (measured on a
            # million contacts: ~0.9 s a change without, ~0.1 s with); autovacuum would only
            # come after a fifth of the table changed
            await store.vacuum_contacts(conn, limit_seconds=RECOMPUTE_TIMEOUT_SECONDS)
    return report


async def set_values(
    conn: Connection,
    values: Mapping[int, Decimal],
    now: datetime,
    config: TierConfig | None = None,
) -> list[TierChange]:
    """Set contacts' values inside the caller's transaction and recompute their tiers (reason
    'value'); returns the changes of a tier in force, by contact id. Ids of no contact are
    skipped, as are values that did not change.

    By thresholds the tier is exact. By shares it is computed against the ranking as it is now,
    these values included (the same as position = 1 + the customers with a greater value,
    base = the customers with a value); the other customers' tiers move only at the next
    recompute, which settles everything. Each call counts the customers once, so for an import
    by shares, pass many values per call rather than one.

    Takes locks.tier_change: call it before locking any contact row in the transaction.
    """
    await locks.tier_change(conn)
    found = await store.lock_contacts(conn, sorted(values))
    changed = await store.set_values(conn, {i: v for i, v in values.items() if i in found}, now)
    if not changed:
        return []
    config = config or await store.load_config(conn)
    rows = await store.retier(conn, config, changed, now)
    return [TierChange(r["contact_id"], r["from_tier"], r["to_tier"]) for r in rows]


async def set_value(
    conn: Connection,
    contact_id: int,
    value: Decimal,
    now: datetime,
    config: TierConfig | None = None,
) -> TierChange | None:
    """set_values() for one contact; raises NotFound when there is no such contact."""
    await locks.tier_change(conn)
    if await store.lock_contact(conn, contact_id) is None:
        raise NotFound("no such contact", code="contact_not_found")
    changes = await set_values(conn, {contact_id: value}, now, config)
    return changes[0] if changes else None


@dataclass(frozen=True)
class PinResult:
    contact_id: int
    tier: int
    computed_tier: int
    pinned_tier: int | None
    # whether the pin changed (a pin to the tier already pinned, or an unpin of a contact
    # that was not pinned, changes nothing and records nothing)
    changed: bool


async def pin(
    conns: Conns, by: Agent, contact_id: int, tier: int | None, note: str | None
) -> PinResult:
    """Pin a contact to a tier (the pin wins over the computed tier), or unpin it (None) back
    to its computed tier. Every change of the pin is recorded ('pin' / 'unpin', the admin, the
    note) in the tier history and the audit log, even when the tier in force stays the
    same."""
    now = conns.clock()
    async with conns.db.acquire() as conn, conn.transaction():
        await locks.tier_change(conn)
        row = await store.lock_contact(conn, contact_id)
        if row is None:
            raise NotFound("no such contact", code="contact_not_found")
        computed, before = row["computed_tier"], row["tier"]
        if row["pinned_tier"] == tier:
            return PinResult(contact_id, before, computed, tier, changed=False)
        in_force = await store.set_tiers(conn, contact_id, computed, tier, now)
        reason = TierChangeReason.UNPIN if tier is None else TierChangeReason.PIN
        await store.record_change(
            conn, contact_id, before, in_force, reason, {"note": note}, now, changed_by=by.id
        )
        await audit.record(
            conn,
            by,
            AuditAction.UPDATE,
            "contact_tier",
            contact_id,
            before={"pinned_tier": row["pinned_tier"], "tier": before, "note": None},
            after={"pinned_tier": tier, "tier": in_force, "note": note},
        )
    logger.info(
        "tier pin changed",
        extra={"contact_id": contact_id, "tier": in_force, "reason": str(reason)},
    )
    return PinResult(contact_id, in_force, computed, tier, changed=True)


async def history(
    conns: Conns, contact_id: int, before_id: int, limit: int
) -> list[asyncpg.Record]:
    """A contact's tier changes, newest first, with ids below `before_id`; NotFound when the
    contact does not exist."""
    async with conns.db.acquire() as conn:
        if not await store.contact_exists(conn, contact_id):
            raise NotFound("no such contact", code="contact_not_found")
        return await store.history(conn, contact_id, before_id, limit)
