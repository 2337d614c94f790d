"""Business-hours calendars, purely: weekly periods, time zones, DST, holidays, own dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contactcenter.domain.business_hours import (
    END_OF_DAY,
    Calendar,
    Period,
    is_open,
    official_calendar,
    periods_on,
    validate,
    weekly_json,
)
from contactcenter.domain.errors import Invalid

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE = {day: [["09:00", "12:00"], ["13:00", "18:00"]] for day in ("mon", "tue", "wed", "thu")}
OFFICE["fri"] = [["09:00", "17:00"]]


def calendar(**fields: Any) -> Calendar:
    values: dict[str, Any] = {"name": "Office", "timezone": "Asia/Shanghai", "weekly": OFFICE}
    values.update(fields)
    return validate(**values)


def at(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int, *rest: int
) -> datetime:
    """at(SHANGHAI, 2026, 3, 3, 9, 30): a wall-clock time in a zone (seconds, microseconds)."""
    second, micro = (*rest, 0, 0)[:2]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)


def test_weekday_periods_open_and_close_on_the_minute() -> None:
    office = calendar()
    # Tuesday 2026-03-03 in Shanghai
    assert not is_open(office, at(SHANGHAI, 2026, 3, 3, 8, 59, 59))
    assert is_open(office, at(SHANGHAI, 2026, 3, 3, 9, 0))
    assert is_open(office, at(SHANGHAI, 2026, 3, 3, 11, 59, 59))
    assert not is_open(office, at(SHANGHAI, 2026, 3, 3, 12, 30))  # lunch
    assert is_open(office, at(SHANGHAI, 2026, 3, 3, 13, 0))
    assert not is_open(office, at(SHANGHAI, 2026, 3, 3, 18, 0))  # the end is not inside
    # Friday's own hours, and a closed weekend
    assert is_open(office, at(SHANGHAI, 2026, 3, 6, 16, 59))
    assert not is_open(office, at(SHANGHAI, 2026, 3, 6, 17, 30))
    assert not is_open(office, at(SHANGHAI, 2026, 3, 7, 10, 0))
    assert not is_open(office, at(SHANGHAI, 2026, 3, 8, 10, 0))


def test_a_night_shift_runs_across_midnight_local_time() -> None:
    nights = calendar(weekly={"mon": [["22:00", "24:00"]], "tue": [["00:00", "06:00"]]})
    assert nights.weekly["mon"] == (Period(time(22), END_OF_DAY),)
    assert is_open(nights, at(SHANGHAI, 2026, 3, 2, 23, 59, 59, 999999))  # the last instant
    assert is_open(nights, at(SHANGHAI, 2026, 3, 3, 0, 0))
    assert is_open(nights, at(SHANGHAI, 2026, 3, 3, 5, 59))
    assert not is_open(nights, at(SHANGHAI, 2026, 3, 3, 6, 0))
    assert not is_open(nights, at(SHANGHAI, 2026, 3, 2, 21, 59))
    # Tuesday night is not Monday night
    assert not is_open(nights, at(SHANGHAI, 2026, 3, 3, 23, 0))
    assert weekly_json(nights.weekly) == {"mon": [["22:00", "24:00"]], "tue": [["00:00", "06:00"]]}


def test_the_instant_is_judged_in_the_calendar_zone_not_in_utc() -> None:
    office = calendar()
    # 01:30 UTC on Monday is 09:30 on Monday in Shanghai; 23:30 UTC Sunday is Monday 07:30
    assert is_open(office, datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    assert not is_open(office, datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    # Thursday 17:30 UTC is Thursday 12:30 in New York but Friday 01:30 in Shanghai
    new_york = calendar(timezone="America/New_York")
    thursday_evening_utc = datetime(2026, 3, 5, 17, 30, tzinfo=UTC)
    assert is_open(new_york, thursday_evening_utc) is False  # New York lunch, 12:30
    assert is_open(new_york, thursday_evening_utc + timedelta(hours=1)) is True
    assert is_open(office, thursday_evening_utc + timedelta(hours=1)) is False
    # an offset other than the zone's is fine: it is one instant
    assert is_open(office, datetime(2026, 3, 2, 3, 30, tzinfo=timezone(timedelta(hours=2))))


def test_new_york_dst_days_keep_local_hours() -> None:
    office = calendar(timezone="America/New_York", weekly={"sun": [["01:00", "02:30"]]})
    # 2026-03-08: at 02:00 EST the clocks jump to 03:00 EDT (07:00 UTC)
    assert is_open(office, datetime(2026, 3, 8, 6, 59, tzinfo=UTC))  # 01:59 EST
    assert not is_open(office, datetime(2026, 3, 8, 7, 0, tzinfo=UTC))  # 03:00 EDT
    # 2026-11-01: 01:00-02:00 happens twice (EDT, then EST): open both times
    assert is_open(office, datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # 01:30 EDT
    assert is_open(office, datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST
    assert is_open(office, datetime(2026, 11, 1, 7, 15, tzinfo=UTC))  # 02:15 EST
    assert not is_open(office, datetime(2026, 11, 1, 7, 30, tzinfo=UTC))  # 02:30 EST

    weekdays = calendar(timezone="America/New_York", weekly={"mon": [["09:00", "17:00"]]})
    # the Monday after the change opens at 09:00 EDT = 13:00 UTC (it was 14:00 UTC before)
    assert is_open(weekdays, datetime(2026, 3, 9, 13, 0, tzinfo=UTC))
    assert not is_open(weekdays, datetime(2026, 3, 2, 13, 0, tzinfo=UTC))


def test_a_chinese_public_holiday_closes_the_day() -> None:
    office = calendar(country="cn")
    assert office.country == "CN"
    # National Day: Thursday 2026-10-01 and Friday 2026-10-02 are holidays
    assert not is_open(office, at(SHANGHAI, 2026, 10, 1, 10, 0))
    assert not is_open(office, at(SHANGHAI, 2026, 10, 2, 10, 0))
    # without the country it is an ordinary Thursday
    assert is_open(calendar(), at(SHANGHAI, 2026, 10, 1, 10, 0))
    # and the Thursday after is a working day again
    assert is_open(office, at(SHANGHAI, 2026, 10, 8, 10, 0))


def test_an_official_adjusted_working_day_in_china_is_open() -> None:
    # Sunday 2026-09-20 is worked in exchange for Tuesday 2026-10-06 off (2026 State Council
    # notice), Saturday 2026-10-10 for Wednesday 2026-10-07
    official = official_calendar("CN", None, 2026)
    assert date(2026, 9, 20) in official.weekend_workdays
    office = calendar(country="CN")
    assert is_open(office, at(SHANGHAI, 2026, 9, 20, 10, 0))  # Monday's hours on a Sunday
    assert not is_open(office, at(SHANGHAI, 2026, 9, 20, 12, 30))
    assert is_open(office, at(SHANGHAI, 2026, 10, 10, 15, 0))
    assert not is_open(office, at(SHANGHAI, 2026, 10, 6, 10, 0))  # the day given in exchange
    assert not is_open(office, at(SHANGHAI, 2026, 10, 7, 10, 0))
    # an ordinary Sunday stays closed
    assert not is_open(office, at(SHANGHAI, 2026, 9, 27, 10, 0))
    # Spring Festival 2026: Saturday 02-14 and 02-28 worked, 02-16 to 02-23 off
    assert is_open(office, at(SHANGHAI, 2026, 2, 14, 10, 0))
    assert not is_open(office, at(SHANGHAI, 2026, 2, 18, 10, 0))
    assert not is_open(office, at(SHANGHAI, 2026, 2, 23, 10, 0))
    assert is_open(office, at(SHANGHAI, 2026, 2, 28, 10, 0))


def test_a_us_state_holiday_and_a_weekend_that_works_its_own_hours() -> None:
    office = calendar(
        timezone="America/New_York",
        country="US",
        subdivision="ny",
        weekly={**OFFICE, "sat": [["10:00", "14:00"]]},
    )
    assert office.subdivision == "NY"
    assert not is_open(office, at(NEW_YORK, 2026, 7, 3, 10, 0))  # Independence Day (observed)
    assert not is_open(office, at(NEW_YORK, 2026, 2, 12, 10, 0))  # Lincoln's Birthday in NY
    assert is_open(office, at(NEW_YORK, 2026, 7, 11, 11, 0))  # an ordinary Saturday


def test_custom_closed_and_open_dates() -> None:
    office = calendar(
        closed_dates=[date(2026, 3, 3)],
        open_dates=[date(2026, 3, 7), date(2026, 10, 1)],
        country="CN",
    )
    assert not is_open(office, at(SHANGHAI, 2026, 3, 3, 10, 0))  # a Tuesday closed
    assert is_open(office, at(SHANGHAI, 2026, 3, 4, 10, 0))
    # a Saturday opened works the first weekday's hours (Monday's), lunch break included
    assert periods_on(office, date(2026, 3, 7)) == office.weekly["mon"]
    assert is_open(office, at(SHANGHAI, 2026, 3, 7, 9, 30))
    assert not is_open(office, at(SHANGHAI, 2026, 3, 7, 12, 30))
    # a holiday opened by hand works its own weekday's hours (a Thursday)
    assert is_open(office, at(SHANGHAI, 2026, 10, 1, 17, 30))
    # the Sunday after stays closed
    assert not is_open(office, at(SHANGHAI, 2026, 3, 8, 10, 0))


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError):
        is_open(calendar(), datetime(2026, 3, 3, 10, 0))


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"timezone": "../../etc/passwd"}, "invalid_timezone"),
        ({"timezone": ""}, "invalid_timezone"),
        ({"weekly": {"mon": [["18:00", "09:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["09:00", "09:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["9:00", "17:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["24:00", "24:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["09:00", "24:01"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [["09:00"]]}}, "invalid_period"),
        ({"weekly": {"mon": [[9, 17]]}}, "invalid_period"),
        ({"weekly": {"mon": "09:00-17:00"}}, "invalid_period"),
        ({"weekly": {"monday": [["09:00", "17:00"]]}}, "invalid_weekday"),
        (
            {"weekly": {"mon": [[f"{h:02}:00", f"{h:02}:30"] for h in range(7)]}},
            "too_many_periods",
        ),
        ({"country": "XX"}, "unknown_country"),
        ({"country": "CN", "subdivision": "ZZ"}, "unknown_subdivision"),
        ({"subdivision": "NY"}, "unknown_subdivision"),
        (
            {"closed_dates": [date(2026, 1, 1) + timedelta(days=n) for n in range(367)]},
            "too_many_dates",
        ),
        (
            {"closed_dates": [date(2026, 1, 1)], "open_dates": [date(2026, 1, 1)]},
            "conflicting_dates",
        ),
    ],
)
def test_bad_calendars_are_refused_with_a_code(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(Invalid) as refused:
        calendar(**fields)
    assert refused.value.code == code


def test_periods_touching_each_other_are_fine_and_come_out_sorted() -> None:
    split = calendar(weekly={"wed": [["13:00", "18:00"], ["09:00", "13:00"]]})
    assert [p.start_minute for p in split.weekly["wed"]] == [9 * 60, 13 * 60]
    assert split.weekly["wed"][-1].end_minute == 18 * 60
    assert is_open(split, at(SHANGHAI, 2026, 3, 4, 13, 0))
    whole_day = calendar(weekly={"sat": [["00:00", "24:00"]]})
    assert whole_day.weekly["sat"][0].end_minute == 24 * 60
