"""Business-hours calendars: when is a team at work, in its own time zone.

A calendar is a weekly schedule (several periods a day, local time), public holidays from the
`holidays` package by country and subdivision, and the admin's own closed and open dates.
Periods never cross midnight: a night shift is 22:00-24:00 on one day and 00:00-06:00 on the
next. Everything here is pure (the holidays package computes from its own tables).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from itertools import pairwise
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from contactcenter.domain.errors import Invalid

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
MAX_PERIODS_A_DAY = 6
MAX_DATES = 366
MINUTES_A_DAY = 24 * 60

# "24:00" as an end: the end of the day. time.max (23:59:59.999999) stands for it, and
# Period.contains treats it as inclusive, so a period ending at 24:00 covers every instant
# of the day's last minute.
END_OF_DAY = time.max

_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


class Period(NamedTuple):
    """[start, end) in local wall-clock time; end may be END_OF_DAY (24:00)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        return self.start <= moment and (moment < self.end or self.end == END_OF_DAY)

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        """Minutes from midnight, 1440 for 24:00: handy for business-time arithmetic."""
        return MINUTES_A_DAY if self.end == END_OF_DAY else self.end.hour * 60 + self.end.minute


@dataclass(frozen=True)
class Calendar:
    id: int
    name: str
    timezone: str
    # "mon".."sun" -> the day's periods, sorted and not overlapping; a missing day is closed
    weekly: Mapping[str, tuple[Period, ...]]
    country: str | None = None
    subdivision: str | None = None
    closed_dates: frozenset[date] = field(default_factory=frozenset)
    open_dates: frozenset[date] = field(default_factory=frozenset)


@lru_cache(maxsize=256)
def official_calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    """The public holidays of `year` (and of the next year, whose official notice may move a
    working day into `year`, as China's 2002 New Year did with 2001-12-29)."""
    return holidays.country_holidays(
        country, subdiv=subdivision, years=(year, year + 1), expand=False
    )


def _first_working_periods(calendar: Calendar) -> tuple[Period, ...]:
    for weekday in WEEKDAYS:
        if calendar.weekly.get(weekday):
            return calendar.weekly[weekday]
    return ()


def periods_on(calendar: Calendar, day: date) -> tuple[Period, ...]:
    """The periods a calendar is open on a local date.

    Order of precedence: a custom closed date; a custom open date; a public holiday (closed);
    an official adjusted working day (open); the weekly schedule. A day opened by an open
    date or an adjusted working day works its own weekday's hours, or, when its weekday has
    none (a weekend), the hours of the schedule's first weekday that has any.
    """
    if day in calendar.closed_dates:
        return ()
    own = calendar.weekly.get(WEEKDAYS[day.weekday()], ())
    if day in calendar.open_dates:
        return own or _first_working_periods(calendar)
    if calendar.country is not None:
        official = official_calendar(calendar.country, calendar.subdivision, day.year)
        if day in official:
            return ()
        # Adjusted working days (China's 调休: a weekend worked in exchange for a longer
        # holiday): the holidays package records the weekend dates an official notice made
        # working days in `weekend_workdays` (filled from each country's substituted-holiday
        # tables; its own is_working_day() reads the same set). They open like an open date.
        if day in getattr(official, "weekend_workdays", ()):
            return own or _first_working_periods(calendar)
    return own


def is_open(calendar: Calendar, at: datetime) -> bool:
    """Whether the calendar is open at an aware instant, judged in the calendar's zone."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("is_open needs an aware datetime")
    local = at.astimezone(ZoneInfo(calendar.timezone))
    moment = local.time().replace(tzinfo=None)
    return any(period.contains(moment) for period in periods_on(calendar, local.date()))


# validation: what an admin sends, checked before anything is stored


def check_timezone(name: str) -> str:
    if not (len(name) <= 64 and _ZONE_NAME.fullmatch(name)):
        raise Invalid(f"{name[:64]!r} is not a time zone", code="invalid_timezone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid(
            f"{name!r} is not a known time zone (e.g. Asia/Shanghai)", code="invalid_timezone"
        ) from None
    return name


def _clock(text: Any, *, end: bool) -> time:
    if end and text == "24:00":
        return END_OF_DAY
    match = _CLOCK.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise Invalid(
            f"{str(text)[:20]!r} is not a time of day: use HH:MM, 00:00 to 24:00",
            code="invalid_period",
        )
    return time(int(match[1]), int(match[2]))


def _period(raw: Any, weekday: str) -> Period:
    if not (isinstance(raw, list | tuple) and len(raw) == 2):
        raise Invalid(f"{weekday}: a period is [start, end]", code="invalid_period")
    period = Period(_clock(raw[0], end=False), _clock(raw[1], end=True))
    if not period.start < period.end:
        raise Invalid(
            f"{weekday}: a period must end after it starts (use two periods across midnight)",
            code="invalid_period",
            details={"weekday": weekday},
        )
    return period


def parse_weekly(raw: Mapping[str, Any]) -> dict[str, tuple[Period, ...]]:
    """{"mon": [["09:00", "12:00"], ["13:00", "18:00"]], ...} -> sorted periods per weekday."""
    weekly: dict[str, tuple[Period, ...]] = {}
    for weekday, periods in raw.items():
        if weekday not in WEEKDAYS:
            raise Invalid(
                f"{str(weekday)[:20]!r} is not a weekday: use {', '.join(WEEKDAYS)}",
                code="invalid_weekday",
            )
        if not isinstance(periods, list | tuple):
            raise Invalid(f"{weekday}: a list of periods", code="invalid_period")
        if len(periods) > MAX_PERIODS_A_DAY:
            raise Invalid(
                f"{weekday}: at most {MAX_PERIODS_A_DAY} periods a day",
                code="too_many_periods",
                details={"weekday": weekday, "max": MAX_PERIODS_A_DAY},
            )
        day = tuple(sorted(_period(p, weekday) for p in periods))
        for earlier, later in pairwise(day):
            if later.start < earlier.end:
                raise Invalid(
                    f"{weekday}: periods overlap",
                    code="invalid_period",
                    details={"weekday": weekday},
                )
        if day:
            weekly[weekday] = day
    return {weekday: weekly[weekday] for weekday in WEEKDAYS if weekday in weekly}


def weekly_json(weekly: Mapping[str, tuple[Period, ...]]) -> dict[str, list[list[str]]]:
    """The stored and shown form: "HH:MM", 24:00 for the end of the day."""

    def clock(moment: time) -> str:
        return "24:00" if moment == END_OF_DAY else moment.strftime("%H:%M")

    return {
        weekday: [[clock(p.start), clock(p.end)] for p in weekly[weekday]]
        for weekday in WEEKDAYS
        if weekly.get(weekday)
    }


@lru_cache(maxsize=1)
def _supported() -> dict[str, list[str]]:
    return dict(holidays.list_supported_countries())


def check_region(country: str | None, subdivision: str | None) -> tuple[str | None, str | None]:
    """ISO country (upper case) and subdivision as the holidays package spells them."""
    if country is None:
        if subdivision is not None:
            raise Invalid("a subdivision needs a country", code="unknown_subdivision")
        return None, None
    code = country.strip().upper()
    supported = _supported()
    if code not in supported:
        raise Invalid(
            f"{country[:10]!r} is not a country the holidays package knows (ISO 3166, e.g. CN)",
            code="unknown_country",
        )
    if subdivision is None:
        return code, None
    wanted = subdivision.strip().upper()
    for known in supported[code]:
        if known.upper() == wanted:
            return code, known
    raise Invalid(
        f"{subdivision[:20]!r} is not a subdivision of {code}",
        code="unknown_subdivision",
        details={"known": supported[code][:100]},
    )


def check_dates(dates: Iterable[date], name: str) -> frozenset[date]:
    unique = frozenset(dates)
    if len(unique) > MAX_DATES:
        raise Invalid(
            f"at most {MAX_DATES} {name}", code="too_many_dates", details={"max": MAX_DATES}
        )
    return unique


def validate(
    *,
    id: int = 0,
    name: str,
    timezone: str,
    weekly: Mapping[str, Any],
    country: str | None = None,
    subdivision: str | None = None,
    closed_dates: Iterable[date] = (),
    open_dates: Iterable[date] = (),
) -> Calendar:
    """A calendar from what an admin sent, or Invalid with a code saying what is wrong."""
    country, subdivision = check_region(country, subdivision)
    closed = check_dates(closed_dates, "closed_dates")
    opened = check_dates(open_dates, "open_dates")
    if both := closed & opened:
        raise Invalid(
            "a date cannot be both closed and open",
            code="conflicting_dates",
            details={"dates": sorted(d.isoformat() for d in both)[:10]},
        )
    return Calendar(
        id=id,
        name=name,
        timezone=check_timezone(timezone),
        weekly=parse_weekly(weekly),
        country=country,
        subdivision=subdivision,
        closed_dates=closed,
        open_dates=opened,
    )
