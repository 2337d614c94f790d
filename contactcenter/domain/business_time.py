"""Business-time arithmetic: how much open time lies between two instants, and when a given
amount of it will have passed.

The model. A calendar's periods are local wall-clock times on local dates (domain/business_hours);
SLA clocks are instants. The calendar is open at an instant exactly when `is_open` says so: the
instant's wall-clock time in the calendar's zone falls in a period of that local date (holidays,
adjusted working days, closed and open dates all decided by `periods_on`). Business time is the
real elapsed time, in UTC, during which the calendar is open. Every answer is an aware UTC
datetime, exact to the microsecond.

How it is computed. Time is walked in UTC spans on which the zone's UTC offset is constant, each
within one local date (a local day is one span, or two on a day the clocks change; a change is
found by bisection, to the microsecond). On a span, wall-clock time is the instant plus the
offset, so each of the date's periods, cut to the span, maps back to one UTC interval. One step
per span and period: a closed day costs one look-up, an open one a step per period.

DST and other clock changes, without choosing a fold for a local boundary:
- spring forward (New York, 2026-03-08, 02:00 -> 03:00): the missing wall-clock hour is never
  open; a period 01:00-04:00 holds 2 h of business time (01:00-02:00 EST, 03:00-04:00 EDT); a
  boundary inside the gap takes effect at the change (01:00-02:30 closes at 03:00 EDT);
- fall back (2026-11-01, 02:00 -> 01:00): the repeated hour counts twice, as real time does
  (01:00-04:00 holds 4 h); a boundary inside it is crossed twice, so a period 01:30-03:00 opens
  at 01:30 EDT, closes when the clock falls back to 01:00, and opens again at 01:30 EST;
- a change at midnight that moves the local date back or skips it works the same way.
Resolving each boundary once (fold=0 through a UTC round trip) would disagree with `is_open` on
those days, and a caller waiting for `next_opening` could find the calendar still closed.

Termination: an open-ended search (`add_business_time`, `next_opening`) gives up after HORIZON
without any open time (a calendar with no hours, or closed dates up to the end of its open ones):
`add_business_time` raises Invalid("no_business_hours"), `next_opening` answers None.

Calendar time: `add_time` and `time_between` take `calendar=None` to mean 24/7 time (plain UTC
arithmetic), so an SLA policy picks business or calendar time by whether it has a calendar.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from contactcenter.domain.business_hours import END_OF_DAY, Calendar, Period, periods_on
from contactcenter.domain.errors import Invalid

# an open-ended search stops after this long without finding any open time (about 3 years)
HORIZON = timedelta(days=3 * 366)
# the walk stops here, well before datetime's own end
_LAST = datetime(9999, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)
_ZERO = timedelta(0)
_DAY = timedelta(days=1)


class Interval(NamedTuple):
    """[start, end) in UTC, start < end: a stretch of time during which the calendar is open."""

    start: datetime
    end: datetime


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return moment.astimezone(UTC)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _change(zone: ZoneInfo, before: datetime, after: datetime, offset: timedelta) -> datetime:
    """The first instant in (before, after] whose offset is not `offset` (`before` has it,
    `after` does not)."""
    while after - before > _TICK:
        middle = before + (after - before) // 2
        if _offset(zone, middle) == offset:
            before = middle
        else:
            after = middle
    return after


def _spans(zone: ZoneInfo, start: datetime) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """From `start` on, consecutive UTC spans [a, b), each within one local date at one offset.

    A span ends at the next local midnight or at the next change of offset, whichever comes
    first. (A change is looked for at the span's last instant: two changes within one local
    day that cancel out, which no zone has, would go unseen.)
    """
    begin = start
    while begin < _LAST:
        offset = _offset(zone, begin)
        local_day = (begin + offset).date()
        end = datetime.combine(local_day + _DAY, time(), UTC) - offset
        if _offset(zone, end - _TICK) != offset:
            end = _change(zone, begin, end - _TICK, offset)
        yield begin, end, offset
        begin = end


def _local_bounds(day: date, period: Period) -> tuple[datetime, datetime]:
    """A period of a local date as naive wall-clock datetimes; 24:00 is the next midnight."""
    opens = datetime.combine(day, period.start)
    if period.end == END_OF_DAY:
        return opens, datetime.combine(day + _DAY, time())
    return opens, datetime.combine(day, period.end)


def _open_in_span(
    calendar: Calendar, begin: datetime, end: datetime, offset: timedelta
) -> Iterator[Interval]:
    """The calendar's open intervals within one span (one local date, one offset)."""
    wall_begin = (begin + offset).replace(tzinfo=None)
    wall_end = (end + offset).replace(tzinfo=None)
    for period in periods_on(calendar, wall_begin.date()):
        opens, closes = _local_bounds(wall_begin.date(), period)
        opens, closes = max(opens, wall_begin), min(closes, wall_end)
        if opens < closes:
            yield Interval(
                (opens - offset).replace(tzinfo=UTC), (closes - offset).replace(tzinfo=UTC)
            )


def open_intervals(
    calendar: Calendar, start: datetime, end: datetime | None = None
) -> Iterator[Interval]:
    """The calendar's open time from `start` on, as UTC intervals in order, cut to
    [start, end). Intervals may touch (a period ending at 24:00, the next day's at 00:00).

    Without an end the intervals go on until HORIZON passes without any open time.
    """
    begin = _utc(start, "start")
    finish = None if end is None else _utc(end, "end")
    zone = ZoneInfo(calendar.timezone)
    last_open = begin
    for span_begin, span_end, offset in _spans(zone, begin):
        if finish is None and span_begin - last_open > HORIZON:
            return
        if finish is not None and span_begin >= finish:
            return
        for interval in _open_in_span(calendar, span_begin, span_end, offset):
            if finish is not None and interval.end > finish:
                if interval.start < finish:
                    yield Interval(interval.start, finish)
                return
            last_open = interval.end
            yield interval


def _no_business_hours(calendar: Calendar, start: datetime) -> Invalid:
    return Invalid(
        f"business hours {calendar.name!r} have no open time within {HORIZON.days} days"
        f" after {start.isoformat()}",
        code="no_business_hours",
        details={"business_hours_id": calendar.id},
    )


def add_business_time(calendar: Calendar, start: datetime, duration: timedelta) -> datetime:
    """The UTC instant at which `duration` of business time has passed since `start`.

    Counting begins at `start` if the calendar is open then, else at its next opening. A zero
    duration answers that instant (`next_opening`); otherwise the earliest instant at which
    the duration is complete, which may be a closing time (a 2 h target at 16:00 with 18:00
    closing is due at 18:00, not at the next opening). Raises Invalid("no_business_hours")
    when the calendar has no open time within HORIZON.
    """
    if duration < _ZERO:
        raise ValueError("a duration of business time cannot be negative")
    remaining = duration
    for interval in open_intervals(calendar, start):
        length = interval.end - interval.start
        if remaining <= length:
            return interval.start + remaining
        remaining -= length
    raise _no_business_hours(calendar, _utc(start, "start"))


def business_time_between(calendar: Calendar, start: datetime, end: datetime) -> timedelta:
    """The business time elapsed from `start` to `end`; zero when end <= start."""
    if _utc(end, "end") <= _utc(start, "start"):
        return _ZERO
    return sum(
        (interval.end - interval.start for interval in open_intervals(calendar, start, end)),
        _ZERO,
    )


def next_opening(calendar: Calendar, at: datetime) -> datetime | None:
    """The first instant at or after `at` at which the calendar is open, in UTC: `at` itself
    when it is open then. None when there is no open time within HORIZON."""
    for interval in open_intervals(calendar, at):
        return interval.start
    return None


# calendar (24/7) time or business time: an SLA policy without business hours passes None


def add_time(calendar: Calendar | None, start: datetime, duration: timedelta) -> datetime:
    """`duration` after `start` in UTC: business time by `calendar`, or, with None, real time
    (computed in UTC: adding to a zoned datetime would add wall-clock time across a DST
    change)."""
    if calendar is not None:
        return add_business_time(calendar, start, duration)
    if duration < _ZERO:
        raise ValueError("a duration cannot be negative")
    return _utc(start, "start") + duration


def time_between(calendar: Calendar | None, start: datetime, end: datetime) -> timedelta:
    """The time from `start` to `end` by `calendar`, or real time with None; zero if end <=
    start."""
    if calendar is not None:
        return business_time_between(calendar, start, end)
    return max(_utc(end, "end") - _utc(start, "start"), _ZERO)
