"""/v1/reports: what supervisors and admins read about the service given.

GET /v1/reports/sla?from=&to=&tier=&channel=&team_id= answers first-response and resolution
compliance, median and p90 times, and next-response breaches, overall and by tier, channel and
team, for the conversations whose SLA clocks started in [from, to) (store/sla_reports.py says
how each is judged). `from` and `to` are dates (midnight UTC of that day) or RFC 3339 times
with an offset; `to` is exclusive; the default is the 30 days up to now, and a range is at
most 366 days. A bad value is a 422 with a code: invalid_date, invalid_range, invalid_tier,
invalid_channel, invalid_team_id.

GET /v1/reports/csat?from=&to=&tier=&channel=&agent_id=&team_id= answers the satisfaction
scores customers gave in [from, to) (store/csat_reports.py): responses, average, distribution
and recoveries, overall and by tier, channel, agent and team; the same range rules and codes,
and invalid_agent_id.

GET /v1/reports/volume?from=&to=&interval=day|hour&timezone=&channel=&team_id= answers how
much work came and went in [from, to) (store/volume_reports.py): conversations created and
resolved, customers' messages, agents' replies and automatic messages, overall, per day or
hour local to `timezone` (IANA, default UTC), by channel and by team; the same range rules
and codes, and invalid_interval, invalid_timezone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, available_timezones

from aiohttp import web
from pydantic import Field

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import View, documented
from contactcenter.api.parsing import MAX_ID, Body, whole_number
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Channel, Role
from contactcenter.store import csat_reports, sla_reports, volume_reports
from contactcenter.store.csat_reports import CsatReportQuery
from contactcenter.store.sla_reports import SlaReportQuery
from contactcenter.store.volume_reports import VolumeReportQuery

READERS = (Role.SUPERVISOR, Role.ADMIN)
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
# a bad query value, as everywhere in the API (the inbox's filters, business hours' `at`)
INVALID_QUERY_STATUS = 422

_DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
# a "+08:00" offset sent unencoded in a query string arrives as " 08:00"
_PLUS_AS_SPACE = re.compile(r" ([0-9]{2}:?[0-9]{2})$")


RANGE = "a date (2026-11-01, midnight UTC) or a time with an offset (2026-11-01T09:30:00+08:00)"


class RangeQuery(Body):
    from_: str | None = Field(
        None, alias="from", description=f"Inclusive; {RANGE}. Default: 30 days before `to`."
    )
    to: str | None = Field(None, description=f"Exclusive; {RANGE}. Default: now.")
    tier: Literal[1, 2, 3, 4] | None = None
    channel: Channel | None = None
    team_id: int | None = Field(None, ge=1, le=MAX_ID)


class CsatQuery(RangeQuery):
    agent_id: int | None = Field(None, ge=1, le=MAX_ID)


class VolumeQuery(Body):
    from_: str | None = Field(
        None, alias="from", description=f"Inclusive; {RANGE}. Default: 30 days before `to`."
    )
    to: str | None = Field(None, description=f"Exclusive; {RANGE}. Default: now.")
    interval: Literal["day", "hour"] | None = Field(None, description="Default: day.")
    timezone: str | None = Field(
        None, description="IANA zone the days and hours are counted in. Default: UTC."
    )
    channel: Channel | None = None
    team_id: int | None = Field(None, ge=1, le=MAX_ID)


class FirstResponseFigures(View):
    with_target: int
    met: int
    breached: int
    pending: int
    resolved_unanswered: int
    compliance: float | None
    median_seconds: float | None
    p90_seconds: float | None


class NextResponseFigures(View):
    breaches: int


class ResolutionFigures(View):
    with_target: int
    resolved: int
    met: int
    breached: int
    pending: int
    compliance: float | None
    median_seconds: float | None
    p90_seconds: float | None


class SlaFigures(View):
    conversations: int
    first_response: FirstResponseFigures
    next_response: NextResponseFigures
    resolution: ResolutionFigures


class SlaByTier(SlaFigures):
    tier: int


class SlaByChannel(SlaFigures):
    channel: Channel


class SlaByTeam(SlaFigures):
    team_id: int | None
    team_name: str | None


class SlaReport(View):
    from_: datetime = Field(alias="from")
    to: datetime
    as_of: datetime
    overall: SlaFigures
    by_tier: list[SlaByTier]
    by_channel: list[SlaByChannel]
    by_team: list[SlaByTeam]


class CsatFigures(View):
    responses: int
    average: float | None
    distribution: dict[Literal["1", "2", "3", "4", "5"], int]
    recoveries: int


class CsatByTier(CsatFigures):
    tier: int


class CsatByChannel(CsatFigures):
    channel: Channel


class CsatByAgent(CsatFigures):
    agent_id: int | None
    agent_name: str | None


class CsatByTeam(CsatFigures):
    team_id: int | None
    team_name: str | None


class CsatReport(View):
    from_: datetime = Field(alias="from")
    to: datetime
    overall: CsatFigures
    by_tier: list[CsatByTier]
    by_channel: list[CsatByChannel]
    by_agent: list[CsatByAgent]
    by_team: list[CsatByTeam]


class VolumeFigures(View):
    conversations_created: int
    conversations_resolved: int
    messages_in: int
    replies: int
    automatic: int


class VolumeByPeriod(VolumeFigures):
    period: datetime = Field(description="The local start of the day or hour, with its offset.")


class VolumeByChannel(VolumeFigures):
    channel: Channel


class VolumeByTeam(VolumeFigures):
    team_id: int | None
    team_name: str | None


class VolumeReport(View):
    from_: datetime = Field(alias="from")
    to: datetime
    interval: Literal["day", "hour"]
    timezone: str
    overall: VolumeFigures
    by_period: list[VolumeByPeriod]
    by_channel: list[VolumeByChannel]
    by_team: list[VolumeByTeam]


def _refuse(code: str, field: str, message: str) -> ApiError:
    return ApiError(INVALID_QUERY_STATUS, code, message, {"field": field})


def _instant(field: str, raw: str) -> datetime:
    """A date (midnight UTC) or a time with an offset, in UTC."""
    text = _PLUS_AS_SPACE.sub(r"+\1", raw.strip())
    try:
        if not text.isascii():
            raise ValueError("not ASCII")
        if _DATE_ONLY.match(text):
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        at = datetime.fromisoformat(text)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("no offset")
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _refuse(
            "invalid_date",
            field,
            f"{field} is a date (2026-11-01) or a time with an offset (2026-11-01T09:30:00+08:00)",
        ) from None


def _date_range(query: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """[from, to): both given, or one given and the other DEFAULT_RANGE away (to: now)."""
    raw_from, raw_to = query.get("from"), query.get("to")
    end = now if raw_to is None else _instant("to", raw_to)
    try:
        start = end - DEFAULT_RANGE if raw_from is None else _instant("from", raw_from)
    except OverflowError:  # `to` at the very start of the calendar
        raise _refuse("invalid_date", "to", "to is out of range") from None
    if start >= end:
        raise _refuse("invalid_range", "from", "from must come before to")
    if end - start > MAX_RANGE:
        raise _refuse("invalid_range", "from", f"a report covers at most {MAX_RANGE.days} days")
    return start, end


def _tier(raw: str | None) -> int | None:
    if raw is None:
        return None
    tier = whole_number(raw, low=1, high=4)
    if tier is None:
        raise _refuse("invalid_tier", "tier", "tier is 1, 2, 3 or 4")
    return tier


def _channel(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw not in tuple(Channel):
        allowed = ", ".join(Channel)
        raise _refuse("invalid_channel", "channel", f"channel is one of {allowed}")
    return raw


def _team_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    team_id = whole_number(raw, low=1, high=MAX_ID)
    if team_id is None:
        raise _refuse("invalid_team_id", "team_id", "team_id is a team's id")
    return team_id


def _agent_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    agent_id = whole_number(raw, low=1, high=MAX_ID)
    if agent_id is None:
        raise _refuse("invalid_agent_id", "agent_id", "agent_id is an agent's id")
    return agent_id


def report_query(query: Mapping[str, str], now: datetime) -> SlaReportQuery:
    start, end = _date_range(query, now)
    return SlaReportQuery(
        start=start,
        end=end,
        tier=_tier(query.get("tier")),
        channel=_channel(query.get("channel")),
        team_id=_team_id(query.get("team_id")),
    )


@documented(
    "SLA compliance and response times",
    access="readers",
    query=RangeQuery,
    responses={200: SlaReport},
)
async def get_sla_report(request: web.Request) -> web.Response:
    """First-response and resolution compliance, median and p90 times, and next-response
    breaches, overall and by tier, channel and team, for the conversations whose SLA clocks
    started in [from, to) (at most 366 days). Codes: invalid_date, invalid_range,
    invalid_tier, invalid_channel, invalid_team_id."""
    await require_agent(request, roles=READERS)
    conns = request.app[CONNS]
    now = conns.clock()
    query = report_query(request.query, now)
    report = await sla_reports.sla_report(conns.db, query, now)
    return web.json_response(
        jsonable({"from": query.start, "to": query.end, "as_of": now, **report})
    )


def csat_query(query: Mapping[str, str], now: datetime) -> CsatReportQuery:
    start, end = _date_range(query, now)
    return CsatReportQuery(
        start=start,
        end=end,
        tier=_tier(query.get("tier")),
        channel=_channel(query.get("channel")),
        agent_id=_agent_id(query.get("agent_id")),
        team_id=_team_id(query.get("team_id")),
    )


@documented(
    "Customer satisfaction",
    access="readers",
    query=CsatQuery,
    responses={200: CsatReport},
)
async def get_csat_report(request: web.Request) -> web.Response:
    """The satisfaction scores customers gave in [from, to): responses, average,
    distribution and recoveries, overall and by tier, channel, agent and team."""
    await require_agent(request, roles=READERS)
    conns = request.app[CONNS]
    query = csat_query(request.query, conns.clock())
    report = await csat_reports.csat_report(conns.db, query)
    return web.json_response(jsonable({"from": query.start, "to": query.end, **report}))


def _interval(raw: str | None) -> volume_reports.Interval:
    if raw is None:
        return "day"
    if raw not in ("day", "hour"):
        raise _refuse("invalid_interval", "interval", "interval is day or hour")
    return cast(volume_reports.Interval, raw)


def _timezone(raw: str | None) -> str:
    if raw is None:
        return "UTC"
    if raw not in _zones():
        raise _refuse("invalid_timezone", "timezone", "timezone is an IANA zone (Asia/Shanghai)")
    return raw


@cache
def _zones() -> set[str]:
    return available_timezones() | {"UTC"}


def volume_query(query: Mapping[str, str], now: datetime) -> VolumeReportQuery:
    start, end = _date_range(query, now)
    return VolumeReportQuery(
        start=start,
        end=end,
        interval=_interval(query.get("interval")),
        timezone=_timezone(query.get("timezone")),
        channel=_channel(query.get("channel")),
        team_id=_team_id(query.get("team_id")),
    )


@documented(
    "Volume: conversations and messages over time",
    access="readers",
    query=VolumeQuery,
    responses={200: VolumeReport},
)
async def get_volume_report(request: web.Request) -> web.Response:
    """How much work came and went in [from, to): conversations created and resolved,
    customers' messages, agents' replies and automatic messages; overall, per day or hour
    local to `timezone`, by channel and by team. Codes: invalid_date, invalid_range,
    invalid_interval, invalid_timezone, invalid_channel, invalid_team_id."""
    await require_agent(request, roles=READERS)
    conns = request.app[CONNS]
    query = volume_query(request.query, conns.clock())
    report = await volume_reports.volume_report(conns.db, query)
    zone = ZoneInfo(query.timezone)
    for entry in report["by_period"]:
        entry["period"] = entry["period"].astimezone(zone)
    answer: dict[str, Any] = {
        "from": query.start,
        "to": query.end,
        "interval": query.interval,
        "timezone": query.timezone,
        **report,
    }
    return web.json_response(jsonable(answer))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/reports/sla", get_sla_report)
    app.router.add_get("/v1/reports/csat", get_csat_report)
    app.router.add_get("/v1/reports/volume", get_volume_report)
