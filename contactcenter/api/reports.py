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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

from aiohttp import web

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.parsing import MAX_ID, whole_number
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Channel, Role
from contactcenter.store import csat_reports, sla_reports
from contactcenter.store.csat_reports import CsatReportQuery
from contactcenter.store.sla_reports import SlaReportQuery

READERS = (Role.SUPERVISOR, Role.ADMIN)
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=366)
# a bad query value, as everywhere in the API (the inbox's filters, business hours' `at`)
INVALID_QUERY_STATUS = 422

_DATE_ONLY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
# a "+08:00" offset sent unencoded in a query string arrives as " 08:00"
_PLUS_AS_SPACE = re.compile(r" ([0-9]{2}:?[0-9]{2})$")


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


async def get_sla_report(request: web.Request) -> web.Response:
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


async def get_csat_report(request: web.Request) -> web.Response:
    await require_agent(request, roles=READERS)
    conns = request.app[CONNS]
    query = csat_query(request.query, conns.clock())
    report = await csat_reports.csat_report(conns.db, query)
    return web.json_response(jsonable({"from": query.start, "to": query.end, **report}))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/reports/sla", get_sla_report)
    app.router.add_get("/v1/reports/csat", get_csat_report)
