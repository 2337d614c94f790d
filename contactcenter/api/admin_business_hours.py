"""/v1/admin/business-hours: the calendars routing rules (and SLA targets) count time by
(admins write, supervisors read)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, Field, StrictBool

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import Body, CleanStr, IsoDate, Patch, path_id, read_json
from contactcenter.api.serialize import jsonable, rfc3339
from contactcenter.domain.business_hours import MAX_DATES
from contactcenter.domain.enums import Role
from contactcenter.services import business_hours as service
from contactcenter.store import business_hours

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
# columns that hold a value always: null is refused, leave the field out to keep it
NOT_NULL = ("name", "timezone", "weekly", "closed_dates", "open_dates", "is_default")


def _name(value: str) -> str:
    value = value.strip()
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must be one line of text, not blank")
    return value


Name = Annotated[CleanStr, Field(max_length=100), AfterValidator(_name)]
# checked in the domain, which says what is wrong with a code (invalid_timezone ...)
Text = Annotated[CleanStr, Field(max_length=100)]
Dates = Annotated[list[IsoDate], Field(max_length=MAX_DATES * 3)]


class BusinessHoursPatch(Patch):
    not_null = NOT_NULL

    name: Name | None = None
    timezone: Text | None = None
    # {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], ...}; a missing weekday is closed
    weekly: dict[str, Any] | None = None
    country: Text | None = None
    subdivision: Text | None = None
    closed_dates: Dates | None = None
    open_dates: Dates | None = None
    is_default: StrictBool | None = None


class BusinessHoursBody(BusinessHoursPatch):
    name: Name
    timezone: Text
    weekly: dict[str, Any]


# domain.business_hours.WEEKDAYS, in its order (tests/test_openapi_admin1.py holds them equal)
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# local time, "HH:MM"; "24:00" ends a period at midnight
ClockTime = Annotated[str, Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]


class BusinessHoursView(View):
    id: int
    name: str
    timezone: str = Field(description="an IANA time zone, e.g. Asia/Shanghai")
    weekly: dict[Weekday, list[tuple[ClockTime, ClockTime]]] = Field(
        description="each open weekday's periods [start, end], sorted; a weekday left out is closed"
    )
    country: str | None = Field(description="ISO 3166 code whose public holidays close the day")
    subdivision: str | None
    closed_dates: list[date]
    open_dates: list[date] = Field(
        description="extra working days, with the hours of the first weekday that has any"
    )
    is_default: bool
    created_at: datetime
    updated_at: datetime


class OpenAnswer(View):
    open: bool
    at: datetime
    local_time: datetime = Field(description="`at` in the calendar's time zone")
    timezone: str


class OpenQuery(Body):
    """Documentation only: open_at reads ?at= by hand."""

    at: AwareDatetime | None = Field(
        None, description="an RFC 3339 time with an offset; default: now"
    )


def _view(row: asyncpg.Record) -> dict[str, Any]:
    view = dict(row)
    for name in ("closed_dates", "open_dates"):
        view[name] = [day.isoformat() for day in row[name]]
    return dict(jsonable(view))


@documented(
    "List business-hours calendars", access="readers", responses={200: Page[BusinessHoursView]}
)
async def list_calendars(request: web.Request) -> web.Response:
    """Every calendar, oldest first (one page)."""
    await require_agent(request, roles=READERS)
    rows = await business_hours.list_all(request.app[CONNS].db)
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented(
    "Add a business-hours calendar",
    access="admin",
    body=BusinessHoursBody,
    responses={201: BusinessHoursView},
)
async def create_calendar(request: web.Request) -> web.Response:
    """A calendar: weekly hours in a time zone, public holidays of a country (and
    subdivision), and dates closed or opened by hand. is_default makes it the default."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, BusinessHoursBody)
    row = await service.create(request.app[CONNS], body.model_dump(exclude_unset=True), by=by)
    return web.json_response(_view(row), status=201)


@documented("A business-hours calendar", access="readers", responses={200: BusinessHoursView})
async def get_calendar(request: web.Request) -> web.Response:
    """One calendar."""
    await require_agent(request, roles=READERS)
    row = await business_hours.get(request.app[CONNS].db, path_id(request))
    if row is None:
        raise ApiError(404, "business_hours_not_found", "no such business-hours calendar")
    return web.json_response(_view(row))


@documented(
    "Change a business-hours calendar",
    access="admin",
    body=BusinessHoursPatch,
    responses={200: BusinessHoursView},
)
async def update_calendar(request: web.Request) -> web.Response:
    """Change the fields sent, keep the rest; the whole calendar is checked again."""
    by = await require_agent(request, roles=WRITERS)
    calendar_id = path_id(request)
    body = await read_json(request, BusinessHoursPatch)
    changes = body.model_dump(exclude_unset=True)
    row = await service.update(request.app[CONNS], calendar_id, changes, by=by)
    return web.json_response(_view(row))


@documented(
    "Delete a business-hours calendar (not one in use)", access="admin", responses={204: None}
)
async def delete_calendar(request: web.Request) -> web.Response:
    """Delete a calendar no routing rule and no SLA policy uses (409 business_hours_in_use)."""
    by = await require_agent(request, roles=WRITERS)
    await service.delete(request.app[CONNS], path_id(request), by=by)
    return web.Response(status=204)


# a "+08:00" offset sent unencoded in a query string arrives as " 08:00"
_PLUS_AS_SPACE = re.compile(r" ([0-9]{2}:?[0-9]{2})$")


def _instant(raw: str | None, now: datetime) -> datetime:
    if raw is None:
        return now
    try:
        at = datetime.fromisoformat(_PLUS_AS_SPACE.sub(r"+\1", raw.strip()))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or at.utcoffset() is None:
        raise ApiError(
            422, "invalid_query", "at is an RFC 3339 time with an offset: 2026-10-01T09:30:00+08:00"
        )
    return at


@documented(
    "Is a calendar open at a time",
    access="readers",
    query=OpenQuery,
    responses={200: OpenAnswer},
)
async def open_at(request: web.Request) -> web.Response:
    """Whether a calendar is open at `at` (default: now): a check for admins."""
    await require_agent(request, roles=READERS)
    calendar_id = path_id(request)
    conns = request.app[CONNS]
    at = _instant(request.query.get("at"), conns.clock())
    try:
        calendar, answer = await service.open_at(conns, calendar_id, at)
        local = at.astimezone(ZoneInfo(calendar.timezone))
        shown_at, shown_local = rfc3339(at), rfc3339(local)
    except OverflowError:  # an instant at the edge of the calendar, e.g. year 9999
        raise ApiError(422, "invalid_query", "at is out of range") from None
    return web.json_response(
        {
            "open": answer,
            "at": shown_at,
            "local_time": shown_local,
            "timezone": calendar.timezone,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/business-hours", list_calendars)
    app.router.add_post("/v1/admin/business-hours", create_calendar)
    app.router.add_get("/v1/admin/business-hours/{id}", get_calendar)
    app.router.add_patch("/v1/admin/business-hours/{id}", update_calendar)
    app.router.add_delete("/v1/admin/business-hours/{id}", delete_calendar)
    app.router.add_get("/v1/admin/business-hours/{id}/open", open_at)
