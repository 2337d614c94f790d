"""Business-time arithmetic, purely: nights, weekends, lunch breaks, holidays, adjusted working
days, DST changes, and add/between as inverses of each other that agree with is_open."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contactcenter.domain.business_hours import Calendar, is_open, validate
from contactcenter.domain.business_time import (
    Interval,
    add_business_time,
    add_time,
    business_time_between,
    next_opening,
    open_intervals,
    time_between,
)
from contactcenter.domain.errors import Invalid

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")
APIA = ZoneInfo("Pacific/Apia")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
NINE_TO_SIX = {day: [["09:00", "18:00"]] for day in WEEKDAYS}
LUNCH = {day: [["09:00", "12:00"], ["13:00", "18:00"]] for day in WEEKDAYS[:4]}
LUNCH["fri"] = [["09:00", "17:00"]]
NIGHTS = {"mon": [["22:00", "24:00"]], "tue": [["00:00", "06:00"]]}
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)


def calendar(**fields: Any) -> Calendar:
    values: dict[str, Any] = {"name": "Office", "timezone": "Asia/Shanghai", "weekly": NINE_TO_SIX}
    values.update(fields)
    return validate(**values)


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# nights, weekends, several periods a day


@pytest.mark.parametrize("zone", [SHANGHAI, NEW_YORK])
def test_a_target_runs_over_the_night_and_the_weekend(zone: ZoneInfo) -> None:
    office = calendar(timezone=str(zone))
    friday_evening = at(zone, 2026, 3, 6, 17, 30)
    due = add_business_time(office, friday_evening, 2 * HOUR)
    # in New York the weekend between holds the spring-forward change: still Monday 10:30
    assert due == at(zone, 2026, 3, 9, 10, 30)
    assert due.tzinfo is UTC
    assert business_time_between(office, friday_evening, due) == 2 * HOUR
    # a target that ends exactly at closing time is due at closing, not at the next opening
    assert add_business_time(office, friday_evening, 30 * MINUTE) == at(zone, 2026, 3, 6, 18)


def test_outside_hours_the_count_starts_at_the_next_opening() -> None:
    office = calendar(weekly=LUNCH)
    tuesday_early = at(SHANGHAI, 2026, 3, 3, 7)
    assert add_business_time(office, tuesday_early, timedelta(0)) == at(SHANGHAI, 2026, 3, 3, 9)
    assert add_business_time(office, tuesday_early, HOUR) == at(SHANGHAI, 2026, 3, 3, 10)
    # a zero duration at an open instant is that instant, in UTC
    open_moment = at(SHANGHAI, 2026, 3, 3, 10, 15)
    assert add_business_time(office, open_moment, timedelta(0)) == open_moment
    assert next_opening(office, open_moment) == open_moment
    assert next_opening(office, at(SHANGHAI, 2026, 3, 6, 17)) == at(SHANGHAI, 2026, 3, 9, 9)


def test_a_lunch_break_does_not_count() -> None:
    office = calendar(weekly=LUNCH)
    assert add_business_time(office, at(SHANGHAI, 2026, 3, 3, 11), 2 * HOUR) == at(
        SHANGHAI, 2026, 3, 3, 14
    )
    # started during lunch: counts from 13:00
    assert add_business_time(office, at(SHANGHAI, 2026, 3, 3, 12, 30), HOUR) == at(
        SHANGHAI, 2026, 3, 3, 14
    )
    # 12:00 is the end of the morning: one hour from 11:00 is due then
    assert add_business_time(office, at(SHANGHAI, 2026, 3, 3, 11), HOUR) == at(
        SHANGHAI, 2026, 3, 3, 12
    )
    assert business_time_between(
        office, at(SHANGHAI, 2026, 3, 3, 0), at(SHANGHAI, 2026, 3, 4, 0)
    ) == timedelta(hours=8)
    # Friday has its own hours: 09:00-17:00, then Monday morning
    assert add_business_time(office, at(SHANGHAI, 2026, 3, 6, 16), 3 * HOUR) == at(
        SHANGHAI, 2026, 3, 9, 11
    )


def test_a_night_shift_runs_on_across_midnight() -> None:
    nights = calendar(weekly=NIGHTS)
    monday_late = at(SHANGHAI, 2026, 3, 2, 23)
    assert add_business_time(nights, monday_late, 2 * HOUR) == at(SHANGHAI, 2026, 3, 3, 1)
    assert add_business_time(nights, monday_late, HOUR) == at(SHANGHAI, 2026, 3, 3, 0)
    assert business_time_between(
        nights, at(SHANGHAI, 2026, 3, 2, 21), at(SHANGHAI, 2026, 3, 3, 7)
    ) == timedelta(hours=8)
    # the two periods touch: the night is one stretch of open time
    stretch = list(open_intervals(nights, at(SHANGHAI, 2026, 3, 2, 0), at(SHANGHAI, 2026, 3, 4, 0)))
    assert stretch == [
        Interval(utc(2026, 3, 2, 14), utc(2026, 3, 2, 16)),
        Interval(utc(2026, 3, 2, 16), utc(2026, 3, 2, 22)),
    ]
    assert next_opening(nights, at(SHANGHAI, 2026, 3, 3, 0)) == at(SHANGHAI, 2026, 3, 3, 0)
    # the next opening after Tuesday morning is next Monday night
    assert next_opening(nights, at(SHANGHAI, 2026, 3, 3, 6)) == at(SHANGHAI, 2026, 3, 9, 22)


def test_a_whole_weekend_open_around_the_clock() -> None:
    weekend = calendar(weekly={"sat": [["00:00", "24:00"]], "sun": [["00:00", "24:00"]]})
    friday_noon = at(SHANGHAI, 2026, 3, 6, 12)
    assert business_time_between(weekend, friday_noon, friday_noon + 7 * 24 * HOUR) == 48 * HOUR
    assert add_business_time(weekend, friday_noon, 30 * HOUR) == at(SHANGHAI, 2026, 3, 8, 6)
    # the very end of Sunday is 24:00: 48 h from Saturday 00:00
    assert add_business_time(weekend, friday_noon, 48 * HOUR) == at(SHANGHAI, 2026, 3, 9, 0)


def test_zones_differ_for_the_same_instant() -> None:
    start = utc(2026, 3, 5, 17, 30)  # Thursday 12:30 in New York, Friday 01:30 in Shanghai
    new_york = add_business_time(calendar(timezone="America/New_York"), start, HOUR)
    shanghai = add_business_time(calendar(), start, HOUR)
    assert new_york == at(NEW_YORK, 2026, 3, 5, 13, 30)
    assert shanghai == at(SHANGHAI, 2026, 3, 6, 10)
    # any offset names the same instant
    plus_two = start.astimezone(timezone(timedelta(hours=2)))
    assert add_business_time(calendar(), plus_two, HOUR) == shanghai


# DST: real elapsed time between local boundaries


def test_the_spring_forward_day_in_new_york() -> None:
    # 2026-03-08: at 02:00 EST the clocks jump to 03:00 EDT (07:00 UTC)
    early = calendar(timezone="America/New_York", weekly={"sun": [["01:00", "04:00"]]})
    day = (utc(2026, 3, 8, 0), utc(2026, 3, 9, 0))
    assert business_time_between(early, *day) == 2 * HOUR  # 01:00 EST to 04:00 EDT
    assert add_business_time(early, utc(2026, 3, 8, 0), 90 * MINUTE) == utc(2026, 3, 8, 7, 30)
    assert add_business_time(early, utc(2026, 3, 8, 0), 2 * HOUR) == utc(2026, 3, 8, 8)
    # a boundary inside the missing hour takes effect at the change, as is_open has it
    closes_in_gap = calendar(timezone="America/New_York", weekly={"sun": [["01:00", "02:30"]]})
    assert list(open_intervals(closes_in_gap, *day)) == [
        Interval(utc(2026, 3, 8, 6), utc(2026, 3, 8, 7))
    ]
    opens_in_gap = calendar(timezone="America/New_York", weekly={"sun": [["02:30", "05:00"]]})
    assert next_opening(opens_in_gap, utc(2026, 3, 8, 0)) == utc(2026, 3, 8, 7)  # 03:00 EDT
    assert business_time_between(opens_in_gap, *day) == 2 * HOUR
    # the Monday after opens at 09:00 EDT = 13:00 UTC, an hour earlier in UTC than before
    weekdays = calendar(timezone="America/New_York")
    assert next_opening(weekdays, utc(2026, 3, 2, 5)) == utc(2026, 3, 2, 14)
    assert next_opening(weekdays, utc(2026, 3, 9, 5)) == utc(2026, 3, 9, 13)
    # a working week across the change: five days of nine hours, in real time too
    assert business_time_between(weekdays, utc(2026, 3, 7), utc(2026, 3, 14)) == 45 * HOUR


def test_the_fall_back_day_in_new_york() -> None:
    # 2026-11-01: at 02:00 EDT the clocks go back to 01:00 EST (06:00 UTC)
    early = calendar(timezone="America/New_York", weekly={"sun": [["01:00", "04:00"]]})
    day = (utc(2026, 11, 1, 0), utc(2026, 11, 2, 0))
    assert business_time_between(early, *day) == 4 * HOUR  # 01:00 EDT to 04:00 EST
    assert next_opening(early, utc(2026, 11, 1, 0)) == utc(2026, 11, 1, 5)  # the first 01:00
    assert add_business_time(early, utc(2026, 11, 1, 0), 90 * MINUTE) == utc(2026, 11, 1, 6, 30)
    # a boundary inside the repeated hour is crossed twice: open, closed, open again
    repeated = calendar(timezone="America/New_York", weekly={"sun": [["01:30", "03:00"]]})
    assert list(open_intervals(repeated, *day)) == [
        Interval(utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6)),
        Interval(utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 8)),
    ]
    assert not is_open(repeated, utc(2026, 11, 1, 6, 15))  # 01:15 EST
    assert next_opening(repeated, utc(2026, 11, 1, 6, 15)) == utc(2026, 11, 1, 6, 30)
    assert add_business_time(repeated, utc(2026, 11, 1, 0), HOUR) == utc(2026, 11, 1, 7)


def test_clock_changes_at_midnight_and_a_skipped_date() -> None:
    # Santiago falls back at 00:00 (-03) to Saturday 23:00 (-04): Saturday's last hour twice
    saturday_night = calendar(timezone="America/Santiago", weekly={"sat": [["22:00", "24:00"]]})
    assert (
        business_time_between(saturday_night, utc(2026, 4, 4, 12), utc(2026, 4, 5, 12)) == 3 * HOUR
    )
    assert add_business_time(saturday_night, utc(2026, 4, 4, 12), 150 * MINUTE) == utc(
        2026, 4, 5, 3, 30
    )
    # and springs forward at Sunday 00:00 (-04) to 01:00 (-03): Sunday starts at 01:00
    sunday_small_hours = calendar(timezone="America/Santiago", weekly={"sun": [["00:00", "02:00"]]})
    assert next_opening(sunday_small_hours, utc(2026, 9, 5, 12)) == utc(2026, 9, 6, 4)
    assert business_time_between(sunday_small_hours, utc(2026, 9, 5), utc(2026, 9, 7)) == HOUR
    # Samoa skipped Friday 2011-12-30 altogether: Thursday then Saturday
    every_day = calendar(
        timezone="Pacific/Apia",
        weekly={day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
    )
    assert (
        business_time_between(every_day, at(APIA, 2011, 12, 29, 0), at(APIA, 2012, 1, 1, 0))
        == 16 * HOUR
    )
    assert add_business_time(every_day, at(APIA, 2011, 12, 29, 16), 2 * HOUR) == at(
        APIA, 2011, 12, 31, 10
    )


# holidays, adjusted working days, the admin's own dates


def test_china_national_day_is_closed_and_the_adjusted_working_days_open() -> None:
    office = calendar(country="CN")
    # 2026-10-01 to 10-07 closed: Wednesday evening's target waits for Thursday 10-08
    wednesday = at(SHANGHAI, 2026, 9, 30, 17)
    assert add_business_time(office, wednesday, 2 * HOUR) == at(SHANGHAI, 2026, 10, 8, 10)
    assert (
        business_time_between(office, at(SHANGHAI, 2026, 9, 30, 9), at(SHANGHAI, 2026, 10, 9, 9))
        == 18 * HOUR
    )
    # without the country it is an ordinary Thursday
    assert add_business_time(calendar(), wednesday, 2 * HOUR) == at(SHANGHAI, 2026, 10, 1, 10)
    # Sunday 2026-09-20 and Saturday 2026-10-10 are official working days
    assert add_business_time(office, at(SHANGHAI, 2026, 9, 18, 17, 30), 2 * HOUR) == at(
        SHANGHAI, 2026, 9, 20, 10, 30
    )
    assert add_business_time(office, at(SHANGHAI, 2026, 10, 9, 17, 30), 2 * HOUR) == at(
        SHANGHAI, 2026, 10, 10, 10, 30
    )
    # an ordinary weekend stays closed
    assert next_opening(office, at(SHANGHAI, 2026, 9, 26, 12)) == at(SHANGHAI, 2026, 9, 28, 9)


def test_custom_closed_and_open_dates() -> None:
    office = calendar(closed_dates=[date(2026, 3, 3)], open_dates=[date(2026, 3, 7)])
    # Tuesday closed: Monday evening's target is due Wednesday
    assert add_business_time(office, at(SHANGHAI, 2026, 3, 2, 17), 2 * HOUR) == at(
        SHANGHAI, 2026, 3, 4, 10
    )
    # Saturday opened (Monday's hours): Friday evening's target is due Saturday
    assert add_business_time(office, at(SHANGHAI, 2026, 3, 6, 17), 2 * HOUR) == at(
        SHANGHAI, 2026, 3, 7, 10
    )
    assert (
        business_time_between(office, at(SHANGHAI, 2026, 3, 2, 0), at(SHANGHAI, 2026, 3, 9, 0))
        == 45 * HOUR
    )


def test_a_long_closure_is_crossed_and_no_hours_at_all_is_refused() -> None:
    mondays = {"mon": [["09:00", "10:00"]]}
    first = date(2026, 1, 5)
    every_monday_of_2026 = [first + timedelta(weeks=n) for n in range(52)]
    closed_year = calendar(weekly=mondays, closed_dates=every_monday_of_2026)
    assert add_business_time(closed_year, at(SHANGHAI, 2026, 1, 1, 0), HOUR) == at(
        SHANGHAI, 2027, 1, 4, 10
    )

    never = calendar(weekly={})
    with pytest.raises(Invalid) as refused:
        add_business_time(never, utc(2026, 1, 1, 0), HOUR)
    assert refused.value.code == "no_business_hours"
    with pytest.raises(Invalid):
        add_business_time(never, utc(2026, 1, 1, 0), timedelta(0))
    assert next_opening(never, utc(2026, 1, 1, 0)) is None
    assert business_time_between(never, utc(2026, 1, 1), utc(2036, 1, 1)) == timedelta(0)

    # an open Saturday works Monday's hours; a calendar with no hours has none to work
    one_day = calendar(weekly=mondays, open_dates=[date(2026, 6, 6)])
    assert add_business_time(one_day, utc(2026, 6, 6, 0), 2 * HOUR) == at(SHANGHAI, 2026, 6, 8, 10)
    no_hours_to_work = calendar(weekly={}, open_dates=[date(2026, 6, 6)])
    with pytest.raises(Invalid):
        add_business_time(no_hours_to_work, utc(2026, 1, 1), MINUTE)


def test_between_is_zero_backwards_and_wrong_input_is_refused() -> None:
    office = calendar()
    start = at(SHANGHAI, 2026, 3, 3, 10)
    assert business_time_between(office, start, start) == timedelta(0)
    assert business_time_between(office, start, start - HOUR) == timedelta(0)
    assert list(open_intervals(office, start, start - HOUR)) == []
    with pytest.raises(ValueError):
        add_business_time(office, start, -TICK)
    with pytest.raises(ValueError):
        add_business_time(office, datetime(2026, 3, 3, 10), HOUR)
    with pytest.raises(ValueError):
        business_time_between(office, start, datetime(2026, 3, 3, 12))
    with pytest.raises(ValueError):
        next_opening(office, datetime(2026, 3, 3, 10))


def test_calendar_time_is_real_time_in_utc() -> None:
    # 24 h from Saturday noon in New York across the spring-forward night: Sunday 13:00 EDT
    saturday_noon = at(NEW_YORK, 2026, 3, 7, 12)
    assert add_time(None, saturday_noon, 24 * HOUR) == at(NEW_YORK, 2026, 3, 8, 13)
    assert add_time(None, saturday_noon, 24 * HOUR).tzinfo is UTC
    assert time_between(None, saturday_noon, at(NEW_YORK, 2026, 3, 8, 12)) == 23 * HOUR
    assert time_between(None, saturday_noon, saturday_noon - HOUR) == timedelta(0)
    with pytest.raises(ValueError):
        add_time(None, saturday_noon, -HOUR)
    # with a calendar, business time
    office = calendar(timezone="America/New_York")
    assert add_time(office, saturday_noon, HOUR) == at(NEW_YORK, 2026, 3, 9, 10)
    assert time_between(office, saturday_noon, at(NEW_YORK, 2026, 3, 9, 10)) == HOUR


# properties over many random cases


def property_calendars() -> list[Calendar]:
    tricky = {**LUNCH, "sat": [["00:00", "24:00"]], "sun": [["01:30", "03:00"], ["22:00", "24:00"]]}
    santiago = {"sat": [["22:00", "24:00"]], "sun": [["00:00", "02:00"]], **NINE_TO_SIX}
    return [
        calendar(name="china", weekly=LUNCH, country="CN", open_dates=[date(2026, 3, 7)]),
        calendar(
            name="new-york-dst",
            timezone="America/New_York",
            weekly=tricky,
            country="US",
            subdivision="NY",
        ),
        calendar(
            name="nights",
            timezone="America/New_York",
            weekly=NIGHTS,
            closed_dates=[date(2026, 3, 9)],
        ),
        calendar(name="santiago", timezone="America/Santiago", weekly=santiago),
        calendar(
            name="a-minute-a-week", timezone="Asia/Kolkata", weekly={"wed": [["10:00", "10:01"]]}
        ),
    ]


def weekly_hours(office: Calendar) -> timedelta:
    return sum(
        (MINUTE * (p.end_minute - p.start_minute) for day in office.weekly.values() for p in day),
        timedelta(0),
    )


# instants drawn from 2026, half of them near New York's and Santiago's clock changes
CHANGES = (utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2026, 4, 5, 3), utc(2026, 9, 6, 4))


def random_instant(rnd: random.Random) -> datetime:
    if rnd.random() < 0.5:
        reach = rnd.choice([2 * HOUR, 3 * 24 * HOUR]) // TICK
        return rnd.choice(CHANGES) + rnd.randrange(-reach, reach) * TICK
    return utc(2026, 1, 1, 0) + rnd.randrange(365 * 24 * HOUR // TICK) * TICK


def random_duration(rnd: random.Random, longest: timedelta) -> timedelta:
    """Up to `longest`, now and then a round or tiny one."""
    if rnd.random() < 0.1:
        return rnd.choice([timedelta(0), TICK, MINUTE, HOUR]) % longest
    return rnd.randrange(longest // TICK) * TICK


@pytest.mark.parametrize("office", property_calendars(), ids=lambda c: c.name)
def test_add_and_between_are_inverses_and_add_is_monotonic(office: Calendar) -> None:
    rnd = random.Random(f"inverse {office.name}")
    longest = 2 * weekly_hours(office)  # about two weeks of the calendar
    for _ in range(300):
        start = random_instant(rnd)
        first, second = sorted((random_duration(rnd, longest), random_duration(rnd, longest)))
        due_first = add_business_time(office, start, first)
        due_second = add_business_time(office, start, second)
        assert business_time_between(office, start, due_first) == first
        assert business_time_between(office, start, due_second) == second
        assert start <= due_first <= due_second
        if first == timedelta(0):
            assert due_first == next_opening(office, start)
        # counting on from a due time is counting the sum (the count restarts at an opening)
        rest = second - first
        if rest > timedelta(0):
            assert add_business_time(office, due_first, rest) == due_second
        # between adds up over a split
        middle = start + (due_second - start) * rnd.random()
        assert (
            business_time_between(office, start, middle)
            + business_time_between(office, middle, due_second)
            == second
        )


@pytest.mark.parametrize("office", property_calendars(), ids=lambda c: c.name)
def test_business_time_is_exactly_the_time_is_open_says_yes(office: Calendar) -> None:
    rnd = random.Random(f"is_open {office.name}")
    for _ in range(400):
        moment = random_instant(rnd)
        open_now = is_open(office, moment)
        assert (business_time_between(office, moment, moment + TICK) == TICK) is open_now
        opening = next_opening(office, moment)
        assert opening is not None
        assert (opening == moment) is open_now
        assert is_open(office, opening)
        if opening > moment:
            assert not is_open(office, opening - TICK)
            assert business_time_between(office, moment, opening) == timedelta(0)
    # every interval is open from its first instant to its last
    for interval in open_intervals(office, utc(2026, 1, 1), utc(2026, 12, 31)):
        assert is_open(office, interval.start)
        assert is_open(office, interval.end - TICK)


def test_many_adds_and_a_long_target_step_period_by_period() -> None:
    office = calendar(weekly=LUNCH, country="CN")
    # 30 days of business time: 720 h of 8-hour days, about four months of the calendar
    start = at(SHANGHAI, 2026, 1, 5, 9)
    due = add_business_time(office, start, timedelta(days=30))
    assert business_time_between(office, start, due) == timedelta(days=30)
    periods = list(open_intervals(office, start, due))
    assert len(periods) < 2 * 100  # one interval per period: two a day, some 90 working days
    assert sum((p.end - p.start for p in periods), timedelta(0)) == timedelta(days=30)
    # 10,000 targets of up to five business days (no timing asserted: it must just finish)
    rnd = random.Random("many")
    for _ in range(10_000):
        moment = utc(2026, 1, 1) + timedelta(seconds=rnd.randrange(365 * 24 * 3600))
        assert add_business_time(office, moment, rnd.randrange(41) * HOUR) >= moment
