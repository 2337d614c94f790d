"""What routing reads about a contact besides its tier: tags and the admin's own fields; and
what care reads: birthday, time zone, locale, preferred channel and consent per channel.

Tags are trimmed and lowercased, so a rule's "vip" matches a contact tagged " VIP". Fields are
a flat object of simple values (rules compare them), merged key by key into what a contact
has: a null removes a key.

The care attributes are checked here for PATCH /v1/contacts and the CSV import alike, so both
refuse the same values with the same codes: invalid_birthday, invalid_timezone (by
domain.care.check_timezone), invalid_locale, invalid_channel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from contactcenter.domain.enums import Channel
from contactcenter.domain.errors import Invalid

MAX_TAGS = 50
MAX_TAG_CHARS = 50
MAX_FIELDS = 50
MAX_FIELD_TEXT = 500
FIELD_KEY = re.compile(r"^[a-z0-9_]{1,64}\Z")
# numbers a JSON reader in any language keeps exactly
MAX_SAFE_INTEGER = 2**53 - 1

FieldValue = str | int | float | bool


def _storable(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL nor lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def normalise_tags(raw: Sequence[object]) -> list[str]:
    """Trimmed, lowercased, without repeats (first one kept), or Invalid."""
    tags: list[str] = []
    for position, tag in enumerate(raw):
        if not isinstance(tag, str):
            raise Invalid("tags are strings", code="invalid_tag", details={"index": position})
        clean = tag.strip().lower()
        if not 1 <= len(clean) <= MAX_TAG_CHARS or not clean.isprintable() or not _storable(clean):
            raise Invalid(
                f"a tag is 1 to {MAX_TAG_CHARS} printable characters",
                code="invalid_tag",
                details={"index": position},
            )
        if clean not in tags:
            tags.append(clean)
    if len(tags) > MAX_TAGS:
        raise Invalid(
            f"a contact has at most {MAX_TAGS} tags",
            code="too_many_tags",
            details={"max": MAX_TAGS},
        )
    return tags


def _field_value_ok(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_SAFE_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= MAX_FIELD_TEXT and _storable(value)
    return False  # lists and objects: fields are flat


def check_fields(raw: Mapping[str, object]) -> dict[str, FieldValue | None]:
    """A patch of fields (None removes a key), or Invalid."""
    if len(raw) > MAX_FIELDS:
        raise Invalid(
            f"at most {MAX_FIELDS} fields", code="too_many_fields", details={"max": MAX_FIELDS}
        )
    checked: dict[str, FieldValue | None] = {}
    for key, value in raw.items():
        if not FIELD_KEY.match(key):
            raise Invalid(
                "a field name is 1 to 64 characters of a-z, 0-9 and _",
                code="invalid_field_key",
                details={"key": key[:80]},
            )
        if not _field_value_ok(value):
            raise Invalid(
                f"a field's value is a string of at most {MAX_FIELD_TEXT} characters, a number, "
                "true, false, or null to remove it",
                code="invalid_field_value",
                details={"key": key},
            )
        checked[key] = value  # type: ignore[assignment]  # checked just above
    return checked


def merge_fields(
    existing: Mapping[str, Any], patch: Mapping[str, FieldValue | None]
) -> dict[str, Any]:
    """The contact's fields after the patch, or Invalid when they would be too many."""
    merged = dict(existing)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_FIELDS:
        raise Invalid(
            f"a contact has at most {MAX_FIELDS} fields",
            code="too_many_fields",
            details={"max": MAX_FIELDS},
        )
    return merged


# --- what care reads ------------------------------------------------------------------------

# what care reads of a contact, besides consents (contacts' columns of the same names)
CARE_ATTRIBUTES = ("birthday", "timezone", "locale", "preferred_channel")
# the channels a contact consents to (or not) one by one, in the order the card shows them;
# contact_consents.channel allows the same values
CONSENT_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.WEB)


class ConsentSource(StrEnum):
    """Who recorded a consent (contact_consents.source; the migration names the same)."""

    API = "api"  # a supervisor or admin, PATCH /v1/contacts/{id}
    IMPORT = "import"  # the CSV import
    CUSTOMER = "customer"  # the customer themselves (a survey page, a keyword)


EARLIEST_BIRTHDAY_YEAR = 1900
# YYYY-MM-DD and nothing else (date.fromisoformat would also take "20261123" or "2026-W47-1")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
# a language of 2 or 3 letters (ISO 639), and a region of 2 letters (ISO 3166) or 3 digits
# (UN M49, "es-419"); "_" is taken for "-" as systems often write it
LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}|[0-9]{3}))?\Z")


def parse_birthday(raw: str, field_name: str = "birthday") -> date:
    """A date written YYYY-MM-DD, or Invalid (invalid_birthday)."""
    if ISO_DATE.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass  # 2026-02-30
    raise Invalid(
        f"{field_name} is a date written YYYY-MM-DD",
        code="invalid_birthday",
        details={"field": field_name},
    )


def check_birthday(birthday: date, now: datetime, field_name: str = "birthday") -> date:
    """A birthday that has happened: not after today (the UTC date of `now`, the request's
    clock) and not before 1900; else Invalid (invalid_birthday)."""
    today = now.astimezone(UTC).date()
    if birthday.year < EARLIEST_BIRTHDAY_YEAR or birthday > today:
        raise Invalid(
            f"{field_name} is a day between {EARLIEST_BIRTHDAY_YEAR}-01-01 and today",
            code="invalid_birthday",
            details={"field": field_name, "latest": today.isoformat()},
        )
    return birthday


def normalise_locale(raw: str, field_name: str = "locale") -> str:
    """A locale as templates are picked by: the language lowercased, the region uppercased
    ("zh_cn" -> "zh-CN", "EN" -> "en"), or Invalid (invalid_locale)."""
    found = LOCALE.match(raw.strip())
    if found is None:
        raise Invalid(
            f"{field_name} is a language of 2 or 3 letters with an optional region, such as en, "
            "en-GB or zh-CN",
            code="invalid_locale",
            details={"field": field_name},
        )
    language, region = found.group(1).lower(), found.group(2)
    return language if region is None else f"{language}-{region.upper()}"


def _channel_error(field_name: str) -> Invalid:
    return Invalid(
        f"{field_name} is one of {', '.join(CONSENT_CHANNELS)}",
        code="invalid_channel",
        details={"field": field_name},
    )


def check_channel(raw: str, field_name: str = "preferred_channel") -> Channel:
    """One of email, sms, web (any case), or Invalid (invalid_channel)."""
    clean = raw.strip().lower()
    if clean not in {str(c) for c in CONSENT_CHANNELS}:
        raise _channel_error(field_name)
    return Channel(clean)


def check_consents(raw: Mapping[str, bool | None]) -> dict[Channel, bool | None]:
    """A consent patch keyed by channel (true: granted, false: withdrawn, None: never asked),
    or Invalid (invalid_channel) for a key that is not a channel. Keys are taken as written:
    "Email" is not a channel here, as JSON keys are exact."""
    checked: dict[Channel, bool | None] = {}
    for key, granted in raw.items():
        if key not in {str(c) for c in CONSENT_CHANNELS}:
            raise _channel_error(f"consent.{key[:40]}")
        checked[Channel(key)] = granted
    return checked
