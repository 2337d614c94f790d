"""/v1/admin/tiers and a contact's tier: the customer pyramid's labels and rule, the recompute,
pins and the history of a contact's tier (admins write, supervisors read).

Decimals (min_value, share_percent) are sent as JSON numbers or strings and come back as
strings, so nothing is lost to floating point. A tier's sla_policy_id (its default SLA policy)
left out of a PUT keeps the stored one; null removes it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import Field, StrictFloat, StrictInt, StrictStr

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import Body, CleanStr, path_id, read_json, whole_number
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Role, TierChangeReason, TierMethod
from contactcenter.domain.tiers import Tier, TierConfig, format_share, parse_share, parse_value
from contactcenter.services import tiers

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
MAX_ID = 2**63 - 1
HISTORY_PAGE = 50
HISTORY_PAGE_MAX = 200

Number = StrictInt | StrictFloat | StrictStr


class TierBody(Body):
    rank: StrictInt
    # trimmed here; the rules on labels (1 to 40 characters, unique) are domain.tiers'
    label: Annotated[CleanStr, Field(max_length=1000)]
    min_value: Number | None = None
    share_percent: Number | None = None
    # left out: the stored default is kept; null: no default
    sla_policy_id: Annotated[StrictInt, Field(ge=1, le=MAX_ID)] | None = None


class TiersBody(Body):
    method: TierMethod
    tiers: Annotated[list[TierBody], Field(max_length=10)]


class PinBody(Body):
    # required: a tier pins, null unpins
    tier: Annotated[StrictInt, Field(ge=1, le=4)] | None
    note: Annotated[CleanStr, Field(max_length=500)] | None = None


class TierHistoryQuery(Body):
    """Documentation only: tier_history reads the query by hand."""

    limit: Annotated[int, Field(ge=1, le=HISTORY_PAGE_MAX)] = HISTORY_PAGE
    cursor: str | None = Field(None, description="the next_cursor of the previous page")


# a decimal written as text ("20000.00", "12.5"), so nothing is lost to floating point
DecimalText = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]


class TierView(View):
    rank: Literal[1, 2, 3, 4]
    label: str
    # by thresholds: the least value in the tier
    min_value: DecimalText | None
    # by shares: the tier's share of the customer base ranked by value, in percent
    share_percent: DecimalText | None
    # the tier's default SLA policy
    sla_policy_id: int | None


class TierConfigView(View):
    method: TierMethod
    tiers: list[TierView]
    # when contacts were last recomputed (null: never)
    recomputed_at: datetime | None


class BoundView(View):
    rank: int
    # the value that opened the tier in this run; null: none did (by shares, the tier's share
    # of the customers came to no one)
    min_value: DecimalText | None


class RecomputeView(View):
    method: TierMethod
    examined: int
    # contacts whose tier in force changed
    changed: int
    duration_ms: int
    recomputed_at: datetime
    bounds: list[BoundView]


class PinView(View):
    contact_id: int
    # the tier in force: the pin when there is one, else the computed tier
    tier: int
    computed_tier: int
    pinned_tier: int | None
    # false when the pin was already so (nothing was recorded)
    changed: bool


class TierChangeDetail(View):
    """Why: the value and method behind a computed change, or the admin's note on a pin."""

    value: str | None = Field(None, description="recompute, value: the contact's value")
    method: TierMethod | None = Field(None, description="recompute, value: how tiers were set")
    note: str | None = Field(None, description="pin, unpin: the admin's note")


class ChangedBy(View):
    id: int
    name: str


class TierChangeView(View):
    id: int
    from_tier: int | None
    to_tier: int
    reason: TierChangeReason
    detail: TierChangeDetail
    # the admin who pinned or unpinned; null for computed changes (or a deleted agent)
    changed_by: ChangedBy | None
    changed_at: datetime


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _config_view(config: TierConfig, recomputed_at: datetime | None) -> dict[str, Any]:
    return {
        "method": str(config.method),
        "tiers": [
            {
                "rank": t.rank,
                "label": t.label,
                "min_value": _money(t.min_value),
                "share_percent": format_share(t.share_percent),
                "sla_policy_id": t.sla_policy_id,
            }
            for t in config.tiers
        ],
        "recomputed_at": jsonable(recomputed_at),
    }


def _tier_of(index: int, body: TierBody) -> Tier:
    where = f"tiers.{index}"
    return Tier(
        rank=body.rank,
        label=body.label.strip(),
        min_value=None
        if body.min_value is None
        else parse_value(body.min_value, code="invalid_min_value", name=f"{where}.min_value"),
        share_percent=None
        if body.share_percent is None
        else parse_share(body.share_percent, name=f"{where}.share_percent"),
        sla_policy_id=body.sla_policy_id,
    )


def _config_of(body: TiersBody) -> TierConfig:
    return TierConfig(body.method, tuple(_tier_of(i, t) for i, t in enumerate(body.tiers)))


def _sla_policy_kept(body: TiersBody) -> set[int]:
    """The ranks whose default SLA policy was left out (kept as stored)."""
    return {t.rank for t in body.tiers if "sla_policy_id" not in t.model_fields_set}


@documented(
    "The tiers and how they are computed", access="readers", responses={200: TierConfigView}
)
async def get_tiers(request: web.Request) -> web.Response:
    """The method (thresholds or shares), each tier's label, bound and default SLA policy,
    and when contacts were last recomputed."""
    await require_agent(request, roles=READERS)
    config, recomputed_at = await tiers.load_config(request.app[CONNS])
    return web.json_response(_config_view(config, recomputed_at))


@documented(
    "Replace the tiers and how they are computed",
    access="admin",
    body=TiersBody,
    responses={200: TierConfigView},
)
async def put_tiers(request: web.Request) -> web.Response:
    """Replace the whole configuration; contacts are recomputed by the next scheduled check
    (or POST /v1/admin/tiers/recompute at once)."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, TiersBody)
    conns = request.app[CONNS]
    await tiers.save_config(conns, _config_of(body), keep_sla_policy=_sla_policy_kept(body), by=by)
    config, recomputed_at = await tiers.load_config(conns)
    return web.json_response(_config_view(config, recomputed_at))


@documented("Recompute every contact's tier now", access="admin", responses={200: RecomputeView})
async def recompute(request: web.Request) -> web.Response:
    """Recompute every contact's tier now (seconds for a million contacts)."""
    by = await require_agent(request, roles=WRITERS)
    report = await tiers.recompute(request.app[CONNS], by=by)
    return web.json_response(
        {
            "method": str(report.method),
            "examined": report.examined,
            "changed": report.changed,
            "duration_ms": report.duration_ms,
            "recomputed_at": jsonable(report.recomputed_at),
            # the value that opened each tier in this run (by shares, found from the ranking)
            "bounds": [
                {"rank": rank, "min_value": _money(bound)}
                for rank, bound in enumerate(report.bounds, start=1)
            ],
        }
    )


@documented("Pin or unpin a contact's tier", access="admin", body=PinBody, responses={200: PinView})
async def pin_tier(request: web.Request) -> web.Response:
    """Pin the contact to a tier (it wins over the computed one), or unpin it with null."""
    admin = await require_agent(request, roles=WRITERS)
    contact_id = path_id(request)
    body = await read_json(request, PinBody)
    note = (body.note or "").strip() or None
    result = await tiers.pin(request.app[CONNS], admin, contact_id, body.tier, note)
    return web.json_response(
        {
            "contact_id": result.contact_id,
            "tier": result.tier,
            "computed_tier": result.computed_tier,
            "pinned_tier": result.pinned_tier,
            "changed": result.changed,
        }
    )


def _history_item(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    changed_by, name = item.pop("changed_by"), item.pop("changed_by_name")
    item["changed_by"] = None if changed_by is None else {"id": changed_by, "name": name}
    return dict(jsonable(item))


@documented(
    "A contact's tier changes, newest first",
    access="readers",
    query=TierHistoryQuery,
    responses={200: Page[TierChangeView]},
)
async def tier_history(request: web.Request) -> web.Response:
    """Every change of the contact's tier in force, and every pin and unpin."""
    await require_agent(request, roles=READERS)
    contact_id = path_id(request)
    limit = whole_number(
        request.query.get("limit", str(HISTORY_PAGE)), low=1, high=HISTORY_PAGE_MAX
    )
    if limit is None:
        raise ApiError(422, "invalid_query", f"limit is 1 to {HISTORY_PAGE_MAX}")
    before = whole_number(request.query.get("cursor", str(MAX_ID)), low=1)
    if before is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this server gave")
    rows = await tiers.history(request.app[CONNS], contact_id, before, limit)
    next_cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    return web.json_response(
        {"items": [_history_item(r) for r in rows], "next_cursor": next_cursor}
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/tiers", get_tiers)
    app.router.add_put("/v1/admin/tiers", put_tiers)
    app.router.add_post("/v1/admin/tiers/recompute", recompute)
    app.router.add_put("/v1/admin/contacts/{id}/tier", pin_tier)
    app.router.add_get("/v1/admin/contacts/{id}/tier-history", tier_history)
