"""Scheduled care, purely: when a birthday is, when a message may go (quiet hours), which
channel a greeting takes, and the placeholder values a care message is rendered with.

Time: every instant is aware; a customer's day and hour are in their own time zone (the
contact's, else the care settings' default). Quiet hours: automated messages go only between
`quiet_end` and `quiet_start` local time (08:00-21:00 by default); what falls outside waits
for the next allowed moment (the same evening's is not allowed: the next morning's).
"""

from __future__ import annotations

import calendar
import functools
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contactcenter.domain.errors import Invalid

TIERS = (1, 2, 3, 4)
MAX_FOLLOW_UP_DAYS = 365


class CareKind(StrEnum):
    BIRTHDAY = "birthday"
    FOLLOW_UP = "follow_up"


class CareStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    TASK = "task"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"


class SkipReason(StrEnum):
    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    NO_ADDRESS = "no_address"
    NO_TEMPLATE = "no_template"
    NO_CHANNEL = "no_channel"
    # follow-ups: the matter moved on
    WRITTEN_AGAIN = "written_again"
    REOPENED = "reopened"
    DISABLED = "disabled"


@dataclass(frozen=True)
class CareSettings:
    birthday_enabled: bool = True
    birthday_hour: int = 9
    birthday_task_tiers: frozenset[int] = frozenset()
    follow_up_enabled: bool = True
    # days after resolving, per tier rank; a tier left out gets no follow-up
    follow_up_days: Mapping[int, int] = field(default_factory=lambda: {1: 1, 2: 2, 3: 3, 4: 3})
    recovery_threshold: int = 2
    recovery_priority: int = 9
    quiet_end: time = time(8)
    quiet_start: time = time(21)
    default_timezone: str = "UTC"
    default_locale: str = "en"
    survey_valid_days: int = 14


def zone(name: str | None, settings: CareSettings) -> ZoneInfo:
    """The customer's time zone, else the default (an unknown name counts as the default)."""
    for candidate in (name, settings.default_timezone, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def check_timezone(name: str, field_name: str = "timezone") -> str:
    """An IANA zone by its canonical name; not `localtime` (the server's own), nor the
    `posix/` and `right/` copies (the latter counts leap seconds)."""
    try:
        if name not in _zone_names():
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"{field_name} is an IANA time zone such as Asia/Shanghai",
            code="invalid_timezone",
            details={"field": field_name},
        ) from None
    return name


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name != "localtime" and not name.startswith(("posix/", "right/"))
    )


# --- birthdays -------------------------------------------------------------------------------


def birthday_in(year: int, birthday: date) -> date:
    """The day a birthday is kept in `year`: 29 February is kept on 28 February in common
    years."""
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def is_birthday(birthday: date, local_day: date) -> bool:
    return birthday_in(local_day.year, birthday) == local_day


def local_at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """`hour`:00 on `day` in `tz`, as an aware instant in UTC (a wall time a DST change skips
    is read with the offset before the change, so it lands just after it)."""
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(ZoneInfo("UTC"))


# --- quiet hours -----------------------------------------------------------------------------


def next_allowed(at: datetime, tz: ZoneInfo, settings: CareSettings) -> datetime:
    """`at` when it is inside the allowed local hours; else the next start of them."""
    local = at.astimezone(tz)
    if settings.quiet_end <= local.time() < settings.quiet_start:
        return at
    day = local.date() if local.time() < settings.quiet_end else local.date() + timedelta(days=1)
    opening = datetime.combine(day, settings.quiet_end, tzinfo=tz)
    return opening.astimezone(ZoneInfo("UTC"))


def follow_up_due(
    resolved_at: datetime, tier: int, tz: ZoneInfo, settings: CareSettings
) -> datetime | None:
    """When a conversation resolved at `resolved_at` gets its follow-up visit, or None when
    its tier gets none (or follow-ups are off)."""
    days = settings.follow_up_days.get(tier)
    if not settings.follow_up_enabled or days is None:
        return None
    return next_allowed(resolved_at + timedelta(days=days), tz, settings)


# --- which channel a greeting takes ----------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """What we know of how to reach a contact for care."""

    preferred_channel: str | None
    # channel -> granted (True) or withdrawn (False); no key: never asked
    consents: Mapping[str, bool]
    sms_opted_out: bool
    has_email: bool
    has_phone: bool


def greeting_channel(reach: Reach) -> tuple[str | None, SkipReason | None]:
    """The channel a greeting goes on: the preferred one when the customer consented to it
    (else none: we do not pick another behind their back); with no preference, e-mail, then
    SMS, whichever they consented to. The reason when there is none."""
    candidates = [reach.preferred_channel] if reach.preferred_channel else ["email", "sms"]
    reason = SkipReason.NO_CONSENT
    for channel in candidates:
        if channel == "web":
            reason = SkipReason.NO_CHANNEL  # nobody can be greeted in a chat they are not in
            continue
        if not reach.consents.get(channel, False):
            continue
        if channel == "sms" and reach.sms_opted_out:
            reason = SkipReason.OPTED_OUT
            continue
        if (channel == "email" and not reach.has_email) or (
            channel == "sms" and not reach.has_phone
        ):
            reason = SkipReason.NO_ADDRESS
            continue
        return channel, None
    return None, reason


def follow_up_refusal(channel: str, reach: Reach) -> SkipReason | None:
    """A follow-up visit goes on the conversation's own channel, as part of the service asked
    for, unless the customer opted out of it (SMS STOP) or withdrew consent to that channel."""
    if channel == "sms" and reach.sms_opted_out:
        return SkipReason.OPTED_OUT
    if reach.consents.get(channel) is False:
        return SkipReason.NO_CONSENT
    return None


# --- what a care message says ----------------------------------------------------------------

SALUTATIONS = {
    "en": ("Dear {name}", "Hello"),
    "zh": ("尊敬的{name}", "您好"),
}


def placeholder_values(
    *,
    name: str | None,
    locale: str,
    agent: str | None = None,
    survey_link: str | None = None,
    reply_digits: str | None = None,
) -> dict[str, str]:
    """The values a template is rendered with; a value we do not have is left out (and renders
    as nothing)."""
    language = locale.split("-")[0].lower()
    with_name, without = SALUTATIONS.get(language, SALUTATIONS["en"])
    clean = " ".join(name.split()) if name else ""
    values = {
        "salutation": with_name.format(name=clean) if clean else without,
        "name": clean,
        "agent": agent or "",
        "survey_link": survey_link or "",
        "reply_digits": reply_digits or "",
    }
    return {key: value for key, value in values.items() if value}
