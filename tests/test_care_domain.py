"""Care's pure rules: leap-day birthdays, quiet hours in the customer's zone (across a DST
change), follow-up days per tier, the greeting's channel, and placeholder values."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from contactcenter.domain.care import (
    CareSettings,
    Reach,
    SkipReason,
    birthday_in,
    follow_up_due,
    follow_up_refusal,
    greeting_channel,
    is_birthday,
    next_allowed,
    placeholder_values,
    zone,
)

SETTINGS = CareSettings()
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def test_a_leap_day_birthday_is_kept_on_the_28th_in_common_years() -> None:
    leap = date(2000, 2, 29)
    assert birthday_in(2027, leap) == date(2027, 2, 28)
    assert birthday_in(2028, leap) == date(2028, 2, 29)
    assert is_birthday(leap, date(2027, 2, 28)) and not is_birthday(leap, date(2028, 2, 28))
    assert birthday_in(2027, date(1990, 3, 1)) == date(2027, 3, 1)


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # 10:00 in Shanghai: allowed at once
        (datetime(2026, 11, 23, 2, tzinfo=UTC), datetime(2026, 11, 23, 2, tzinfo=UTC)),
        # 07:59 in Shanghai: at 08:00 the same morning
        (datetime(2026, 11, 22, 23, 59, tzinfo=UTC), datetime(2026, 11, 23, 0, tzinfo=UTC)),
        # 21:00 in Shanghai: quiet from that minute, so the next morning
        (datetime(2026, 11, 23, 13, tzinfo=UTC), datetime(2026, 11, 24, 0, tzinfo=UTC)),
        # 20:59 in Shanghai: still allowed
        (datetime(2026, 11, 23, 12, 59, tzinfo=UTC), datetime(2026, 11, 23, 12, 59, tzinfo=UTC)),
    ],
)
def test_quiet_hours_in_the_customers_zone(utc: datetime, expected: datetime) -> None:
    assert next_allowed(utc, SHANGHAI, SETTINGS) == expected


def test_the_morning_after_a_dst_change_is_in_the_new_offset() -> None:
    # Saturday 24 October 2026 23:00 in Berlin (CEST); clocks go back that night: 08:00 on
    # Sunday is CET, 07:00 UTC
    late = datetime(2026, 10, 24, 21, tzinfo=UTC)
    assert next_allowed(late, BERLIN, SETTINGS) == datetime(2026, 10, 25, 7, tzinfo=UTC)


def test_configured_quiet_hours() -> None:
    strict = CareSettings(quiet_end=time(10), quiet_start=time(18))
    at_nine = datetime(2026, 11, 23, 1, tzinfo=UTC)  # 09:00 in Shanghai
    assert next_allowed(at_nine, SHANGHAI, strict) == datetime(2026, 11, 23, 2, tzinfo=UTC)


def test_follow_up_days_per_tier() -> None:
    resolved = datetime(2026, 11, 23, 2, tzinfo=UTC)  # 10:00 in Shanghai
    assert follow_up_due(resolved, 1, SHANGHAI, SETTINGS) == datetime(2026, 11, 24, 2, tzinfo=UTC)
    assert follow_up_due(resolved, 4, SHANGHAI, SETTINGS) == datetime(2026, 11, 26, 2, tzinfo=UTC)
    none_for_bronze = CareSettings(follow_up_days={1: 1})
    assert follow_up_due(resolved, 4, SHANGHAI, none_for_bronze) is None
    assert follow_up_due(resolved, 1, SHANGHAI, CareSettings(follow_up_enabled=False)) is None


def reach(**values: object) -> Reach:
    base: dict[str, object] = {
        "preferred_channel": None,
        "consents": {},
        "sms_opted_out": False,
        "has_email": True,
        "has_phone": True,
    }
    base.update(values)
    return Reach(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (reach(consents={"email": True}), ("email", None)),
        (reach(consents={"sms": True}), ("sms", None)),
        (reach(), (None, SkipReason.NO_CONSENT)),
        # the preferred channel without consent: no other channel behind their back
        (reach(preferred_channel="sms", consents={"email": True}), (None, SkipReason.NO_CONSENT)),
        (
            reach(preferred_channel="sms", consents={"sms": True}, sms_opted_out=True),
            (None, SkipReason.OPTED_OUT),
        ),
        (
            reach(preferred_channel="email", consents={"email": True}, has_email=False),
            (None, SkipReason.NO_ADDRESS),
        ),
        (reach(preferred_channel="web", consents={"web": True}), (None, SkipReason.NO_CHANNEL)),
        # no preference: e-mail withdrawn, SMS granted
        (reach(consents={"email": False, "sms": True}), ("sms", None)),
    ],
)
def test_the_greeting_channel(given: Reach, expected: tuple[str | None, object]) -> None:
    assert greeting_channel(given) == expected


def test_a_follow_up_goes_unless_opted_out_or_withdrawn() -> None:
    assert follow_up_refusal("web", reach()) is None
    assert follow_up_refusal("sms", reach(sms_opted_out=True)) == SkipReason.OPTED_OUT
    assert follow_up_refusal("email", reach(consents={"email": False})) == SkipReason.NO_CONSENT


def test_placeholder_values_in_english_and_chinese() -> None:
    assert placeholder_values(name="  Wang   Fang ", locale="en") == {
        "salutation": "Dear Wang Fang",
        "name": "Wang Fang",
    }
    assert placeholder_values(name=None, locale="zh-CN", agent="Ann") == {
        "salutation": "您好",
        "agent": "Ann",
    }
    assert placeholder_values(name="王芳", locale="zh-TW")["salutation"] == "尊敬的王芳"


def test_an_unknown_zone_counts_as_the_default() -> None:
    assert zone("Mars/Olympus", CareSettings(default_timezone="Asia/Shanghai")) == SHANGHAI
    assert zone(None, SETTINGS) == ZoneInfo("UTC")
