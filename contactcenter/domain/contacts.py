"""What routing reads about a contact besides its tier: tags and the admin's own fields.

Tags are trimmed and lowercased, so a rule's "vip" matches a contact tagged " VIP". Fields are
a flat object of simple values (rules compare them), merged key by key into what a contact
has: a null removes a key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

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
