"""Normalising the ways a contact is reached, so one address is one identity."""

from __future__ import annotations

import phonenumbers

from contactcenter.domain.errors import Invalid


def normalise_email(raw: str) -> str:
    value = raw.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise Invalid(f"{raw!r} is not an e-mail address", code="invalid_email")
    # the domain is case-insensitive; local parts are treated so too, as every big provider does
    return value.lower()


def normalise_phone(raw: str, default_region: str | None = None) -> str:
    """E.164 (+8613800138000); a number without a country code needs a default region."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise Invalid(f"{raw!r} is not a phone number", code="invalid_phone") from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid(f"{raw!r} is not a valid phone number", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
